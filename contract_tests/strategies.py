"""Hypothesis strategies for the contract suite: small real images, valid requests drawn from the
request schemas, and invalid mutations of them that name the field they break."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from mock_server import operations
from mock_server.contract import load_schema, validator
from mock_server.image_factory import TestImage, make_image
from mock_server.triggers import prompt_is_unsafe

# Inputs stay tiny: every example is an HTTP call and, against a live service, a billable one.
SIDES = st.integers(min_value=8, max_value=64)
FORMATS = ("JPEG", "PNG", "WEBP")
JSON_TYPES = ("string", "integer", "boolean", "array", "object", "null")
_SAMPLE_VALUES: Mapping[str, Any] = {
    "string": "bria-mock",
    "integer": 7,
    "boolean": True,
    "array": [1],
    "object": {"bria": "mock"},
    "null": None,
}
MAX_REF_IMAGES = 2
# The fields that carry images (base64 or URL), as the request schemas describe them.
IMAGE_FIELDS = tuple(operations.image_summary_fields())  # every field of the table that holds images


@st.composite
def input_images(draw: st.DrawFn, formats: tuple[str, ...] = FORMATS) -> TestImage:
    """A small JPEG, PNG or WEBP, with or without alpha (softly edged), from the one image factory."""
    fmt = draw(st.sampled_from(formats))
    alpha = fmt != "JPEG" and draw(st.booleans())
    return make_image(fmt, "RGBA" if alpha else "RGB", (draw(SIDES), draw(SIDES)), soft_edges=alpha)


@st.composite
def image_payloads(draw: st.DrawFn) -> str:
    """An image field's value: base64, or base64 behind a ``data:image/...;base64,`` prefix."""
    image = draw(input_images())
    return image.data_url if draw(st.booleans()) else image.base64


@functools.cache
def _request_strategy(operation: str) -> st.SearchStrategy[Any]:
    return from_schema(dict(load_schema(f"{operation}.request")))


@st.composite
def valid_requests(draw: st.DrawFn, operation: str) -> dict[str, Any]:
    """A body the request schema accepts, with real images in the operation's image fields.

    Drawn from the schema itself (documented and unknown fields alike), then: the image fields
    of the operation's example (``image``, ``images``, a ``mask``) get one small real image, so
    that a mask fits its image; other image fields are left out, but ``ref_images`` gets at most
    two real images; fields whose valid values depend on each other (the operation's
    ``constrained_fields``) come from its example; no ``webhook_url`` (a live service would call
    it), and no text that moderation refuses (a 422 by design, tested apart).
    """
    op = operations.operation(operation)
    body = dict(draw(_request_strategy(operation)))
    example = op.example_request(draw(image_payloads()))
    for field in (*op.image_fields, *op.constrained_fields):
        if field != "ref_images":
            body.pop(field, None)
        if field in example:
            body[field] = example[field]
    refs = body.get("ref_images")
    if isinstance(refs, str):
        body["ref_images"] = draw(image_payloads())
    elif isinstance(refs, list) and refs:
        body["ref_images"] = [draw(image_payloads()) for _ in refs[:MAX_REF_IMAGES]]
    if body.get("webhook_url") is not None:
        del body["webhook_url"]
    assume(not _moderated_text(body))
    assume(validator(f"{operation}.request").is_valid(body))  # e.g. a drawn field beside a constrained one
    return body


def _moderated_text(body: Mapping[str, Any]) -> bool:
    """Whether any text of the body is one moderation may refuse (prompts, instructions, names)."""
    return any(isinstance(value, str) and prompt_is_unsafe(value) for value in body.values())


@dataclasses.dataclass(frozen=True)
class InvalidCase:
    """A request that breaks its schema, and the fields an error must name."""

    body: dict[str, Any]
    fields: tuple[str, ...]
    mutation: str


def allowed_types(spec: Mapping[str, Any]) -> set[str]:
    """The JSON types a property's schema admits (``type`` or the union of its ``anyOf``)."""
    declared = spec.get("type")
    if declared is not None:
        types = {declared} if isinstance(declared, str) else set(declared)
    else:
        types = set().union(*(allowed_types(branch) for branch in spec.get("anyOf", [{}])))
    return types | ({"integer"} if "number" in types else set())


@st.composite
def invalid_requests(draw: st.DrawFn, operation: str) -> InvalidCase:
    """A valid request with one mutation: a wrong type, a missing required field, a bad enum
    value, or (where the schema says exactly one of two fields) both or neither."""
    name = f"{operation}.request"
    schema = load_schema(name)
    body = draw(valid_requests(operation))
    mutations = ["wrong_type", "missing_required"]
    if _enum_fields(schema):
        mutations.append("bad_enum")
    if _exactly_one_of(schema):
        mutations.append("both_or_neither")
    mutation = draw(st.sampled_from(mutations))
    if mutation == "wrong_type":
        field = draw(st.sampled_from(sorted(schema["properties"])))
        wrong = sorted(set(JSON_TYPES) - allowed_types(schema["properties"][field]))
        body[field] = _SAMPLE_VALUES[draw(st.sampled_from(wrong))]
        fields: tuple[str, ...] = (field,)
    elif mutation == "missing_required":
        field = draw(st.sampled_from(sorted(schema["required"])))
        del body[field]
        fields = (field,)
    elif mutation == "bad_enum":
        field = draw(st.sampled_from(_enum_fields(schema)))
        allowed = _enum_values(schema["properties"][field])
        words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
        body[field] = draw(words.filter(lambda value: value not in allowed))
        fields = (field,)
    else:
        fields = _exactly_one_of(schema)
        if draw(st.booleans()):
            for field in fields:
                body.pop(field, None)
        else:
            for field in fields:
                body[field] = draw(image_payloads()) if field in IMAGE_FIELDS else "a beach at dusk"
    assume(not validator(name).is_valid(body))
    return InvalidCase(body, fields, mutation)


def _enum_fields(schema: Mapping[str, Any]) -> list[str]:
    return sorted(field for field, spec in schema["properties"].items() if _enum_values(spec))


def _enum_values(spec: Mapping[str, Any]) -> set[Any]:
    values = set(spec.get("enum", []))
    for branch in spec.get("anyOf", []):
        values |= set(branch.get("enum", []))
    return values


def _exactly_one_of(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of a top-level ``oneOf`` whose branches each require one field."""
    branches = schema.get("oneOf", [])
    names = tuple(branch["required"][0] for branch in branches if len(branch.get("required", [])) == 1)
    return names if len(names) == len(branches) == 2 else ()
