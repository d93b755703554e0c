"""The schema files: valid Draft 7, complete with the documentation's fields and defaults, and
assembled into the OpenAPI document the fake serves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft7Validator

from mock_server.contract import defaults, load_schema, schema_names, validate_request
from mock_server.errors import BadRequest
from mock_server.fixtures.plugin import BriaMock
from mock_server.operations import OPERATIONS

DOCUMENTED_DEFAULTS = {
    "remove_background.request": {
        "preserve_alpha": True,
        "sync": False,
        "visual_input_content_moderation": False,
        "visual_output_content_moderation": False,
    },
    "replace_background.request": {
        "mode": "high_control",
        "enhance_ref_images": True,
        "refine_prompt": True,
        "prompt_content_moderation": True,
        "original_quality": False,
        "force_background_detection": False,
        "sync": False,
        "visual_output_content_moderation": False,
        # The page describes input image moderation without naming its field; the fake accepts
        # remove_background's field name for it.
        "visual_input_content_moderation": False,
    },
}
DOCUMENTED_WITHOUT_DEFAULT = {
    "remove_background.request": {"image"},
    "replace_background.request": {"image", "ref_images", "prompt", "negative_prompt", "seed"},
}
EXPECTED = {
    *(op.request_schema for op in OPERATIONS),
    *(op.result_schema for op in OPERATIONS),
    "accepted.202",
    "error",
    "status.in_progress",
    "status.completed",
    "status.error",
    "status.unknown",
    "status.not_found",
}


def test_there_is_a_schema_for_every_request_and_response_shape() -> None:
    assert set(schema_names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_schema_is_valid_draft_7_with_a_title(name: str) -> None:
    schema = load_schema(name)

    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["title"]


@pytest.mark.parametrize("name", sorted(DOCUMENTED_DEFAULTS))
def test_request_schemas_carry_every_documented_field_and_default(name: str) -> None:
    properties = load_schema(name)["properties"]

    assert dict(defaults(name)) == DOCUMENTED_DEFAULTS[name]
    assert DOCUMENTED_WITHOUT_DEFAULT[name] <= set(properties)


def test_error_envelope_requires_all_four_members_with_their_types() -> None:
    validator = Draft7Validator(load_schema("error"))
    good = {"error": {"code": 400, "message": "Bad Request", "details": "image: required"}, "request_id": "r"}

    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "request_id": None})
    assert not validator.is_valid({"error": {**good["error"], "code": "400"}, "request_id": "r"})  # type: ignore[dict-item]


def test_status_schemas_reject_failed() -> None:
    for name in ("status.in_progress", "status.completed", "status.error", "status.unknown"):
        assert not Draft7Validator(load_schema(name)).is_valid({"request_id": "r", "status": "FAILED"})


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_openapi_document_is_built_from_the_schema_files(bria_mock: BriaMock) -> None:
    document = httpx.get(bria_mock.url("/openapi.json")).json()

    components = document["components"]["schemas"]
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {*(op.path for op in OPERATIONS), "/v2/status/{request_id}"}
    assert components["RemoveBackgroundRequest"]["properties"] == load_schema("remove_background.request")["properties"]
    for ref in _refs(document["paths"]):
        assert ref.removeprefix("#/components/schemas/") in components
    rmbg = document["paths"]["/v2/image/edit/remove_background"]["post"]["responses"]
    assert set(rmbg) == {
        "200",
        "202",
        "400",
        "401",
        "403",
        "404",
        "405",
        "408",
        "413",
        "415",
        "422",
        "429",
        "460",
        "5XX",
    }


# --- the compiled request validators -------------------------------------------------------------

ALL_REQUESTS = sorted(op.request_schema for op in OPERATIONS)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def near_valid_bodies(name: str) -> st.SearchStrategy[Any]:
    """Objects using the schema's own field names (and some others) with any JSON values, and
    now and then not an object at all: where the two validators could disagree."""
    fields = st.sampled_from(sorted(load_schema(name)["properties"])) | st.text(max_size=5)
    return st.dictionaries(fields, JSON_VALUES | st.sampled_from(["", "x", "base", "true"]), max_size=6) | JSON_VALUES


def compiled_accepts(name: str, body: Any) -> bool:
    try:
        validate_request(name, body)
    except BadRequest:
        return False
    return True


# 15 examples a schema on every run (new ones each time: the examples differ from run to run).
@pytest.mark.parametrize("name", ALL_REQUESTS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_compiled_validator_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    body = data.draw(from_schema(dict(load_schema(name))) | near_valid_bodies(name))

    assert compiled_accepts(name, body) == Draft7Validator(load_schema(name)).is_valid(body)


@pytest.mark.parametrize(
    ("name", "body", "details"),
    [
        ("remove_background.request", [1], "body: expected object, got array"),
        ("remove_background.request", {"preserve_alpha": "yes"}, "image: this field is required"),
        ("remove_background.request", {"image": 7, "sync": "no"}, "image: expected string, got integer"),
        ("remove_background.request", {"image": "", "sync": "no"}, "image: must not be empty"),
        ("remove_background.request", {"image": "x", "sync": "no"}, "sync: expected boolean, got string"),
        ("replace_background.request", {"image": 7, "mode": "turbo"}, "image: expected string, got integer"),
        (
            "replace_background.request",
            {"image": "x", "prompt": 5},
            "prompt: expected string or null, got integer",
        ),
        (
            "replace_background.request",
            {"image": "x", "mode": "turbo"},
            "mode: must be one of base, high_control, fast",
        ),
        (
            "replace_background.request",
            {"image": "x", "prompt": "a beach", "ref_images": "x"},
            "prompt, ref_images: exactly one of the two must be provided",
        ),
        (
            "replace_background.request",
            {"prompt": "a beach", "mode": "turbo"},
            "image: this field is required",
        ),
        ("replace_background.request", {"mode": "turbo"}, "image: this field is required"),
        ("replace_background.request", "a beach", "body: expected object, got string"),
        (
            "replace_background.request",
            {"image": "x", "prompt": "a beach", "mode": "turbo", "seed": "1"},
            "mode: must be one of base, high_control, fast",
        ),
        (
            "replace_background.request",
            {"image": "x", "ref_images": ["x", ""]},
            "ref_images: expected a string or a list of non-empty strings",
        ),
        (
            "replace_background.request",
            {"image": "x", "prompt": "a beach", "fast": "yes"},
            'fast: expected a boolean, or the string "true" or "false"',
        ),
    ],
)
def test_a_body_that_breaks_several_rules_is_told_the_first_in_the_documented_order(
    name: str, body: Any, details: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        validate_request(name, body)

    assert raised.value.details == details
