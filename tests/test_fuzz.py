"""Property-based fuzzing: Schemathesis against the fake's own ``/openapi.json``, and Hypothesis
over the image decoder and the request validator.

The everyday budget is small and derandomized (the same examples every run, so CI stays
deterministic); ``BRIA_MOCK_FUZZ=large`` runs a larger, random search:

    BRIA_MOCK_FUZZ=large pytest -p no:cacheprovider tests/test_fuzz.py

Generated strings include lone surrogates: the fake answers them with 400 (not valid Unicode).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from mock_server.app import create_app
from mock_server.config import Settings
from mock_server.contract import load_schema, validate_request
from mock_server.errors import BadRequest, BriaError, UnsupportedMediaType
from mock_server.image_factory import make_image
from mock_server.inputs import decode_base64, decode_image
from mock_server.server import ServerThread

PROFILE = os.environ.get("BRIA_MOCK_FUZZ", "small")
if PROFILE not in {"small", "large"}:
    raise pytest.UsageError(f"BRIA_MOCK_FUZZ={PROFILE!r}: expected small or large")
LARGE = PROFILE == "large"
TOKEN = "fuzz-token"
ACCEPTED = frozenset({"JPEG", "PNG", "WEBP"})


def budget(small: int, large: int) -> settings:
    """Hypothesis settings for one property: ``small`` examples every day, ``large`` on demand."""
    return settings(
        max_examples=large if LARGE else small,
        deadline=None,
        database=None,
        derandomize=not LARGE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --- Schemathesis: the fake against its own OpenAPI document, in-process (ASGI) --------------------


@pytest.fixture(scope="module")
def fuzzed_app() -> Starlette:
    return create_app(Settings())


@pytest.fixture(scope="module")
def openapi(fuzzed_app: Starlette) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


OPERATIONS = [
    ("/v2/image/edit/remove_background", "POST"),
    ("/v2/image/edit/replace_background", "POST"),
    ("/v2/status/{request_id}", "GET"),
]
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, negative_data_rejection]
# Generated image strings are garbage (415, as documented); some cases get a real one, so the
# 200 and 202 answers are exercised too. "localhost" is the fake's own host: no network.
REAL_IMAGES = [f"http://localhost/samples/{name}" for name in ("subject.jpg", "subject.png", "subject.webp")]


def with_image(case: Any, image: str | None) -> Any:
    if image is not None and isinstance(case.body, dict) and "image" in case.body:
        case.body["image"] = image
    return case


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_schemathesis(openapi: Any, fuzzed_app: Starlette, path: str, method: str, mode: GenerationMode) -> None:
    """No 5XX, every answer conforms to its schema and its documented status codes, and
    schema-breaking requests are rejected; and nothing crashed inside the fake."""
    backend = fuzzed_app.state.backend
    cases = openapi[path][method].as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:  # a negative case's image may be the very thing it breaks
        cases = st.builds(with_image, cases, st.sampled_from([None, *REAL_IMAGES]))

    @given(case=cases)
    @budget(small=12, large=400)
    def run(case: Any) -> None:
        case.call_and_validate(headers={"api_token": TOKEN}, checks=CHECKS)
        assert not backend.crashes, backend.crashes

    run()


# --- Hypothesis: the request parser, end to end, in-process ------------------------------------------

TEXT = st.text(max_size=40)
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
    )


def request_bodies(endpoint: str) -> st.SearchStrategy[Any]:
    """Mostly objects with the schema's own field names (so validation goes deep), values of any
    type; sometimes any JSON at all."""
    fields = list(load_schema(f"{endpoint}.request")["properties"])
    images = st.sampled_from([*REAL_IMAGES, "", "not base64!", "http://[::1", "https://images.test/a.jpg"])
    objects = st.fixed_dictionaries(
        {}, optional={field: (images | json_values()) if field == "image" else json_values() for field in fields}
    )
    return objects | json_values()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[httpx.Client, ServerThread]]:
    """A fake of this module's own over a real socket, and a client without keep-alive (a fresh
    connection answers in milliseconds; see ``shared_client`` in test_hostile_inputs.py)."""
    with (
        ServerThread(Settings()) as server,
        httpx.Client(
            base_url=server.base_url,
            headers={"api_token": TOKEN, "content-type": "application/json"},
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=30,
        ) as client,
    ):
        yield client, server


def local(body: Any, base_url: str) -> Any:
    """Point the sample URLs at this server (the fake resolves its own URLs locally)."""
    if isinstance(body, dict) and isinstance(body.get("image"), str):
        body["image"] = body["image"].replace("http://localhost", base_url)
    return body


@pytest.mark.parametrize("endpoint", ["remove_background", "replace_background"])
def test_any_json_body_gets_a_documented_answer(served: tuple[httpx.Client, ServerThread], endpoint: str) -> None:
    client, server = served

    @given(body=request_bodies(endpoint), sync=st.booleans())
    @budget(small=25, large=1000)
    def run(body: Any, sync: bool) -> None:
        body = local(body, server.base_url)
        if sync and isinstance(body, dict):
            body = {**body, "sync": True}
        response = client.post(f"/v2/image/edit/{endpoint}", content=json.dumps(body).encode())
        assert response.status_code in {200, 202, 400, 404, 415, 422, 460}, response.text
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] == response.status_code and error["details"]
        assert not server.backend.crashes

    run()


@given(raw=st.binary(max_size=256) | TEXT.map(str.encode))
@budget(small=50, large=2000)
def test_any_bytes_as_a_body_get_a_documented_answer(served: tuple[httpx.Client, ServerThread], raw: bytes) -> None:
    client, server = served
    response = client.post("/v2/image/edit/remove_background", content=raw)
    assert response.status_code in {202, 400, 415, 460}, response.text
    assert response.json()["error"]["code"] == response.status_code or response.status_code == 202
    assert not server.backend.crashes


# --- Hypothesis: the validator, the base64 decoder and the image decoder ------------------------------


@pytest.mark.parametrize("endpoint", ["remove_background", "replace_background"])
def test_the_validator_raises_only_400_naming_a_field(endpoint: str) -> None:
    @given(body=request_bodies(endpoint))
    @budget(small=60, large=5000)
    def run(body: Any) -> None:
        try:
            validate_request(f"{endpoint}.request", body)
        except BadRequest as exc:
            field, sep, problem = exc.details.partition(": ")
            assert sep and field and problem, exc.details
            return
        assert isinstance(body, dict) and isinstance(body.get("image"), str) and body["image"]

    run()


@given(value=TEXT | st.text(alphabet="ABCDEFabcdef0123456789+/=-_ \n", max_size=60))
@budget(small=200, large=5000)
def test_decode_base64_returns_bytes_or_a_documented_error(value: str) -> None:
    for candidate in (value, "data:image/png;base64," + value):
        try:
            assert isinstance(decode_base64(candidate, "image"), bytes)
        except (UnsupportedMediaType, BadRequest) as exc:
            assert exc.details.startswith("image: ")


@given(
    data=st.binary(min_size=1, max_size=300),
    urlsafe=st.booleans(),
    unpadded=st.booleans(),
    wrapped=st.booleans(),
    prefixed=st.booleans(),
)
@budget(small=150, large=5000)
def test_base64_in_every_client_spelling_decodes_to_the_same_bytes(
    data: bytes, urlsafe: bool, unpadded: bool, wrapped: bool, prefixed: bool
) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    text = text.rstrip("=") if unpadded else text
    text = "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) if wrapped else text
    text = "data:image/png;base64," + text if prefixed else text
    assert decode_base64(text, "image") == data


def _seed_images() -> list[bytes]:
    formats_and_modes = (
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("JPEG", "RGB"),
        ("WEBP", "RGB"),
        ("GIF", "P"),
        ("JPEG", "CMYK"),
    )
    return [make_image(fmt, mode, (24, 16)).data for fmt, mode in formats_and_modes]


SEEDS = _seed_images()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real small image, then truncated, overwritten in places, or spliced with random bytes."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@given(data=st.binary(max_size=400) | mutated_images())
@budget(small=300, large=20000)
def test_decode_image_returns_an_image_or_raises_415(data: bytes) -> None:
    """Only :class:`UnsupportedMediaType` may escape, whatever the bytes (never struct.error,
    EOFError, IndexError, ...). A small pixel limit keeps mutated headers from costing memory."""
    try:
        image = decode_image(data, "image", formats=ACCEPTED, max_pixels=100_000)
    except BriaError as exc:
        assert isinstance(exc, UnsupportedMediaType), repr(exc)
        assert exc.details.startswith("image: ")
        return
    assert image.format in ACCEPTED and image.mode in {"RGB", "RGBA", "CMYK"}
    assert image.width * image.height <= 100_000
    assert isinstance(image, Image.Image) and len(image.tobytes()) > 0  # the pixels really are there
