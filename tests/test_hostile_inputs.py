"""The hostile-input table (docs/limits-and-security.md): garbage in, a documented 4xx envelope out, never a 500.

Every row is a request to the fake over HTTP. Through the ``api`` fixture every answer is
checked against ``schemas/`` as it arrives, and the plugin fails the test if the fake
crashed while serving it. Rows that show a bug today are ``xfail(strict=True)`` and run
against a separate server, so their crash does not leak into other tests.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft7Validator
from PIL import Image

from mock_server import samples
from mock_server.config import Settings
from mock_server.contract import load_schema, response_errors, response_schema
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import draw_subject
from mock_server.server import ServerThread

ENDPOINTS = ("remove_background", "replace_background")
TOKEN = "test-token"
MiB = 1024 * 1024


def path_of(endpoint: str) -> str:
    return f"/v2/image/edit/{endpoint}"


def valid_body(endpoint: str, image: str) -> dict[str, Any]:
    return {"image": image, "prompt": "a beach"} if endpoint == "replace_background" else {"image": image}


def post_raw(api: httpx.Client, endpoint: str, content: bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type is not None else {}
    return api.post(path_of(endpoint), content=content, headers=headers)


def post_json(api: httpx.Client, endpoint: str, body: Any) -> httpx.Response:
    # json.dumps escapes non-ASCII (and lone surrogates), so any Python value goes out as valid JSON text.
    return post_raw(api, endpoint, json.dumps(body).encode())


def expect_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """The answer is the envelope with this status; its details contain every fragment."""
    assert response.status_code == status, response.text[:500]
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == status
    for fragment in fragments:
        assert fragment in body["error"]["details"], body["error"]["details"][:500]
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_answer(response: httpx.Response) -> None:
    """Every API answer conforms to its schema in ``schemas/`` (the check of conftest's ``api``)."""
    path = response.request.url.path
    operation = path.rsplit("/", 1)[-1] if path.startswith("/v2/image/edit/") else None
    operation = "status" if path.startswith("/v2/status/") else operation
    if operation is None:
        return
    response.read()
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    name = response_schema(operation, response.status_code, body)
    assert response_errors(name, body) == [], f"{response.status_code} breaks schemas/{name}.json: {body}"


@pytest.fixture(scope="module")
def shared_client(bria_mock_server: ServerThread) -> Iterator[httpx.Client]:
    """One schema-checking client for the module: making an httpx client costs ~50 ms (its
    TLS context), which over this table's ~250 rows would be most of the time it takes.

    No keep-alive: ``ServerThread``'s accepted sockets lack TCP_NODELAY, so a second request
    on a connection waits ~40 ms for a delayed ACK; a fresh connection answers in ~5 ms.
    """
    with httpx.Client(
        base_url=bria_mock_server.base_url,
        headers={"api_token": TOKEN},
        event_hooks={"response": [check_answer]},
        limits=httpx.Limits(max_keepalive_connections=0),
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def api(bria_mock: BriaMock, shared_client: httpx.Client) -> httpx.Client:
    """conftest's ``api``, shared: the session fake reset before the test (and failing it if the
    fake crashed), with a client that checks every answer against its schema."""
    return shared_client


@pytest.fixture
def sample_url(bria_mock: BriaMock) -> str:
    return bria_mock.url("/samples/subject.jpg")


# --- the body as a whole --------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b'{"image": ', "body: malformed JSON", id="malformed-json"),
    pytest.param(b"", "body: malformed JSON", id="empty-body"),
    pytest.param(b'{"image": "x"} trailing', "body: malformed JSON", id="trailing-garbage"),
    pytest.param(b"[]", "body: expected object, got array", id="json-array"),
    pytest.param(b'[{"image": "x"}]', "body: expected object, got array", id="array-of-the-body"),
    pytest.param(b"42", "body: expected object, got integer", id="json-number"),
    pytest.param(b'"image"', "body: expected object, got string", id="json-string"),
    pytest.param(b"true", "body: expected object, got boolean", id="json-true"),
    pytest.param(b"null", "body: expected object, got null", id="json-null"),
    pytest.param(b'{"image": "\xff\xfe\xfd"}', "body: not valid UTF-8", id="invalid-utf8"),
    pytest.param(b'{"image": "ok", "prompt": "caf\xe9"}', "body: not valid UTF-8", id="latin1-not-utf8"),
    pytest.param(b'{"image": NaN}', "body: NaN is not a JSON number", id="nan-literal"),
    pytest.param(b'{"image": Infinity}', "body: Infinity is not a JSON number", id="infinity-literal"),
    pytest.param(b'{"image": "x", "extra": 1e400}', "body: 1e400 is not a JSON number", id="float-past-infinity"),
    pytest.param(
        b'{"image": "x", "extra": ' + b"7" * 5000 + b"}", "body: a number with too many digits", id="int-digits"
    ),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("content", "details"), BAD_BODIES)
def test_bodies_that_are_not_a_json_object_are_400(api: httpx.Client, endpoint: str, content: bytes, details: str):
    expect_error(post_raw(api, endpoint, content), 400, details)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "image/png", ""],
)
def test_a_non_json_content_type_is_400(api: httpx.Client, sample_url: str, endpoint: str, content_type: str):
    body = json.dumps(valid_body(endpoint, sample_url)).encode()
    expect_error(post_raw(api, endpoint, body, content_type), 400, "Content-Type: expected application/json")


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "text/json", "application/vnd.bria+json", None]
)
def test_json_content_types_and_a_missing_one_are_accepted(api: httpx.Client, sample_url: str, content_type: str):
    """A missing Content-Type is read as JSON (real clients forget it); JSON and ``+json`` types too."""
    response = post_raw(api, "remove_background", json.dumps({"image": sample_url}).encode(), content_type)
    assert response.status_code == 202


# --- every field, every wrong type (generated from the schemas) -------------------------------------

WRONG_VALUES: dict[str, Any] = {
    "string": "not-a-valid-value",
    "integer": 7,
    "number": 2.5,
    "boolean": True,
    "array": [7],
    "object": {"nested": "value"},
    "null": None,
}


def wrong_type_cases() -> Iterator[Any]:
    """For every property of both request schemas, every JSON type its schema refuses."""
    for endpoint in ENDPOINTS:
        for field, schema in load_schema(f"{endpoint}.request")["properties"].items():
            for kind, value in WRONG_VALUES.items():
                if not Draft7Validator(schema).is_valid(value):
                    yield pytest.param(endpoint, field, value, id=f"{endpoint}-{field}-{kind}")


WRONG_TYPE_CASES = list(wrong_type_cases())


def test_every_field_of_both_schemas_gets_wrong_types() -> None:
    covered = {(case.values[0], case.values[1]) for case in WRONG_TYPE_CASES}
    for endpoint in ENDPOINTS:
        for field in load_schema(f"{endpoint}.request")["properties"]:
            assert (endpoint, field) in covered


@pytest.mark.parametrize(("endpoint", "field", "value"), WRONG_TYPE_CASES)
def test_a_wrong_type_for_any_field_is_400_naming_it(
    api: httpx.Client, sample_url: str, endpoint: str, field: str, value: Any
) -> None:
    body = expect_error(post_json(api, endpoint, {**valid_body(endpoint, sample_url), field: value}), 400)
    named = body["error"]["details"].split(":", 1)[0]
    assert field in named, body["error"]["details"]


def test_a_wrong_type_inside_a_list_is_400_naming_the_field(api: httpx.Client, sample_url: str) -> None:
    body = {"image": sample_url, "ref_images": [sample_url, 7]}
    expect_error(post_json(api, "replace_background", body), 400, "ref_images")


# --- unknown fields, empty and enormous strings -----------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_fields_are_accepted(api: httpx.Client, sample_url: str, endpoint: str) -> None:
    """On purpose: real clients send fields beyond the documentation (API_NOTES), and a fake
    that refused them would break those clients. ``null`` counts as absent."""
    extras = {
        "unknown_field": {"nested": [1, 2, {"deep": None}]},
        "__proto__": {"polluted": True},
        "webhook_url": "https://hooks.test/bria",
        "negative_prompt": None,
        "seed": 5,
        "": "an empty key",
    }
    response = post_json(api, endpoint, {**valid_body(endpoint, sample_url), **extras})
    assert response.status_code == 202


EMPTY_STRINGS = [
    ("remove_background", "image", 400),
    ("remove_background", "webhook_url", 202),
    ("replace_background", "image", 400),
    ("replace_background", "prompt", 400),
    ("replace_background", "ref_images", 400),
    ("replace_background", "mode", 400),
    ("replace_background", "fast", 400),
    ("replace_background", "negative_prompt", 202),
    ("replace_background", "webhook_url", 202),
]


def test_the_empty_string_table_covers_every_string_field() -> None:
    string_fields = {
        (endpoint, field)
        for endpoint in ENDPOINTS
        for field, schema in load_schema(f"{endpoint}.request")["properties"].items()
        if "string" in json.dumps(schema)
    }
    assert string_fields == {(endpoint, field) for endpoint, field, _ in EMPTY_STRINGS}


@pytest.mark.parametrize(("endpoint", "field", "status"), EMPTY_STRINGS)
def test_empty_strings(api: httpx.Client, sample_url: str, endpoint: str, field: str, status: int) -> None:
    response = post_json(api, endpoint, {**valid_body(endpoint, sample_url), field: ""})
    if status == 202:
        assert response.status_code == 202
    else:
        assert field in expect_error(response, status)["error"]["details"].split(":", 1)[0]


MEGA = "x" * MiB


def test_a_one_megabyte_prompt_is_answered(api: httpx.Client, sample_url: str) -> None:
    """No prompt length is documented: the fake answers as usual (and echoes it, as refined_prompt)."""
    body = {"image": sample_url, "prompt": MEGA, "refine_prompt": False, "sync": True}
    response = post_json(api, "replace_background", body)
    assert response.status_code == 200
    assert response.json()["result"]["refined_prompt"] == MEGA


@pytest.mark.parametrize(
    ("endpoint", "field", "status"),
    [
        ("replace_background", "negative_prompt", 202),
        ("replace_background", "webhook_url", 400),  # not an http(s) URL (and over 2,048 characters)
        ("remove_background", "webhook_url", 400),
        ("replace_background", "mode", 400),
        ("replace_background", "fast", 400),
        ("remove_background", "image", 415),  # not a URL, not base64
    ],
)
def test_one_megabyte_strings_in_other_fields(
    api: httpx.Client, sample_url: str, endpoint: str, field: str, status: int
) -> None:
    response = post_json(api, endpoint, {**valid_body(endpoint, sample_url), field: MEGA})
    assert response.status_code == status


def test_a_one_megabyte_unknown_field_is_accepted(api: httpx.Client, sample_url: str) -> None:
    response = post_json(api, "remove_background", {"image": sample_url, MEGA: MEGA})
    assert response.status_code == 202


def test_a_ten_megabyte_base64_image_of_garbage_is_415(api: httpx.Client) -> None:
    expect_error(post_json(api, "remove_background", {"image": "A" * (10 * MiB)}), 415, "not an image")


def test_a_one_megabyte_url_is_460(api: httpx.Client) -> None:
    url = "https://images.test/" + "a" * MiB
    expect_error(post_json(api, "remove_background", {"image": url}), 460)


# --- oversized bodies: 413 before the body is read ----------------------------------------------------


class RawClient:
    """A bare socket client: sends exactly what the test says, reads one HTTP/1.1 answer."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)

    def send(self, data: bytes) -> bool:
        """False once the server has hung up (it may close after answering early)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def answer(self) -> tuple[int, dict[str, str], Any]:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed without answering: {raw!r}"
            raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            chunk = self.sock.recv(65536)
            assert chunk, "the answer was cut short"
            body += chunk
        return int(lines[0].split()[1]), headers, json.loads(body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client() -> Iterator[Callable[[str], RawClient]]:
    clients: list[RawClient] = []

    def make(base_url: str) -> RawClient:
        clients.append(RawClient(base_url))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def request_head(client: RawClient, path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {client.host}", f"api_token: {TOKEN}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_envelope(status: int, body: Any, expected: int) -> None:
    assert status == expected and response_errors("error", body) == [] and body["error"]["code"] == expected, body


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(
    bria_mock: BriaMock, raw_client: Callable[[str], RawClient]
) -> None:
    """1 GB declared, 1 KiB sent: the 413 arrives although the body never will."""
    client = raw_client(bria_mock.base_url)
    head = request_head(client, path_of("remove_background"), "Content-Type: application/json",
                        "Content-Length: 1000000000")  # fmt: skip
    assert client.send(head + b'{"image": "' + b"A" * 1024)
    status, _, body = client.answer()
    assert_envelope(status, body, 413)
    assert "1000000000 bytes is over the limit of 16777216 bytes" in body["error"]["details"]


def test_a_chunked_body_over_the_limit_is_413_before_it_ends(
    make_server: Callable[..., ServerThread], raw_client: Callable[[str], RawClient]
) -> None:
    """No Content-Length to judge by: the limit is counted as chunks arrive, and the body never ends."""
    server = make_server(max_body_bytes=64 * 1024)
    client = raw_client(server.base_url)
    assert client.send(request_head(client, path_of("replace_background"), "Content-Type: application/json",
                                    "Transfer-Encoding: chunked"))  # fmt: skip
    piece = b"A" * (16 * 1024)
    for _ in range(5):  # 80 KiB, and never the terminating zero-length chunk
        if not client.send(b"%x\r\n%b\r\n" % (len(piece), piece)):
            break
    status, _, body = client.answer()
    assert_envelope(status, body, 413)
    assert "over the limit of 65536 bytes" in body["error"]["details"]


def test_the_body_limit_is_exact(make_server: Callable[..., ServerThread], client_for: Callable[..., httpx.Client]):
    server = make_server(max_body_bytes=4096)
    api = client_for(server.base_url)
    padding = {"image": "https://images.test/cat.jpg", "pad": ""}
    at_limit = json.dumps({**padding, "pad": "p" * (4096 - len(json.dumps(padding)))}).encode()
    assert len(at_limit) == 4096
    assert post_raw(api, "remove_background", at_limit).status_code == 460  # read, and answered on its merits
    over = post_raw(api, "remove_background", at_limit[:-1] + b" }")
    expect_error(over, 413, "4097 bytes is over the limit of 4096 bytes")


# --- images -------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """The subject JPEG with its frame header (SOF0) rewritten to declare another size."""
    data = bytearray(samples.sample("subject.jpg") or b"")
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def subject_png() -> bytes:
    return samples.sample("subject.png") or b""


def subject_jpeg() -> bytes:
    return samples.sample("subject.jpg") or b""


BAD_IMAGES = [
    pytest.param(lambda: subject_png()[: len(subject_png()) // 2], "truncated or corrupt", id="truncated-png"),
    pytest.param(lambda: subject_jpeg()[: len(subject_jpeg()) // 2], "truncated or corrupt", id="truncated-jpeg"),
    pytest.param(lambda: b"\x00" * 8 + subject_png()[8:], "not an image", id="png-with-wrong-magic"),
    pytest.param(lambda: b"GIF89a" + subject_png()[6:], "image: ", id="png-behind-a-gif-magic"),
    pytest.param(lambda: os.urandom(4096), "not an image", id="random-bytes"),
    pytest.param(lambda: samples.sample("animated.gif"), "GIF files are not supported", id="animated-gif"),
    pytest.param(
        lambda: encode(Image.new("RGB", (8, 8)), "TIFF", save_all=True, append_images=[Image.new("RGB", (8, 8))]),
        "TIFF files are not supported",
        id="multi-frame-tiff",
    ),
    pytest.param(lambda: encode(Image.new("RGB", (8, 8)), "BMP"), "BMP files are not supported", id="bmp"),
    pytest.param(lambda: samples.sample("grayscale.png"), "colour mode L", id="greyscale-png"),
    pytest.param(lambda: png_declaring(50_000, 50_000), "too many pixels", id="png-bomb-50000x50000"),
    pytest.param(lambda: png_declaring(10_000, 10_000), "pixels", id="png-bomb-10000x10000"),
    pytest.param(lambda: png_declaring(9_000, 9_000), "over the limit of 64000000 pixels", id="png-9000x9000"),
    pytest.param(lambda: jpeg_declaring(65_000, 65_000), "too many pixels", id="jpeg-bomb-65000x65000"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("make", "details"), BAD_IMAGES)
def test_bad_images_are_415(api: httpx.Client, endpoint: str, make: Callable[[], bytes], details: str) -> None:
    response = post_json(api, endpoint, valid_body(endpoint, b64(make())))
    expect_error(response, 415, "image: ", details)


@pytest.mark.parametrize(
    ("image", "status", "details"),
    [
        ("!!!! not base64 !!!!", 415, "not an http(s) URL and not valid base64"),
        ("data:image/png;base64,@@@@", 415, "not valid base64"),
        ("====", 415, "not valid base64"),
        ("data:image/png;base64,", 400, "decodes to nothing"),
        ("javascript:alert(1)", 415, "not valid base64"),
        (b64(b"\x89PNG\r\n\x1a\n" + os.urandom(256)), 415, "image: "),
    ],
)
def test_base64_garbage(api: httpx.Client, image: str, status: int, details: str) -> None:
    expect_error(post_json(api, "remove_background", {"image": image}), status, details)


def test_the_data_url_media_type_is_ignored_the_bytes_decide(api: httpx.Client) -> None:
    response = post_json(api, "remove_background", {"image": "data:image/png;base64," + b64(subject_jpeg())})
    assert response.status_code == 202


def vm_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_decompression_bomb_costs_no_memory(api: httpx.Client) -> None:
    """50,000 x 50,000 RGB would be 7.5 GB decoded; the server runs in this process, on a thread."""
    bomb = b64(png_declaring(50_000, 50_000))
    assert len(bomb) < 1024
    before = vm_rss_mib()
    for endpoint in ENDPOINTS:
        expect_error(post_json(api, endpoint, valid_body(endpoint, bomb)), 415, "too many pixels")
    assert vm_rss_mib() - before < 100


FIRST, SECOND = (250, 20, 20), (20, 20, 250)


def animated(fmt: str, **options: Any) -> bytes:
    first = draw_subject((64, 48))
    first.paste(FIRST, (28, 20, 36, 28))  # a red square at the centre of frame 1 only
    second = Image.new("RGB", (64, 48), SECOND)
    return encode(first, fmt, save_all=True, append_images=[second], duration=100, **options)


@pytest.mark.parametrize(
    "data", [pytest.param(animated("PNG"), id="apng"), pytest.param(animated("WEBP", lossless=True), id="webp")]
)
def test_animated_png_and_webp_use_their_first_frame(api: httpx.Client, data: bytes) -> None:
    frames = Image.open(io.BytesIO(data))
    assert getattr(frames, "n_frames", 1) == 2  # really animated
    response = post_json(api, "remove_background", {"image": b64(data), "sync": True})
    assert response.status_code == 200
    result = Image.open(io.BytesIO(api.get(response.json()["result"]["image_url"]).content))
    assert result.size == (64, 48)
    assert result.getpixel((32, 24))[:3] == FIRST  # the first frame's centre, not the second's blue


# --- URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "details"),
    [
        ("file:///etc/passwd", 400, "only http and https URLs are supported, not file"),
        ("ftp://images.test/cat.jpg", 400, "not ftp"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", 400, "not gopher"),
        ("http:///cat.jpg", 400, "the URL has no host"),
        ("http://10.0.0.1/cat.jpg", 460, "could not download"),  # never fetched: 460 without a connection
        ("http://169.254.169.254/latest/meta-data/", 460, "could not download"),
        ("https://images.test/cat.jpg", 460, "could not download"),
        ("http://not-found.invalid/cat.jpg", 404, "no image at"),
        ("http://127.0.0.1:1/samples/missing.png", 404, "no image at"),
    ],
)
def test_image_urls(api: httpx.Client, url: str, status: int, details: str) -> None:
    expect_error(post_json(api, "remove_background", {"image": url}), status, "image: ", details)


# --- other routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", ["x" * 4000, "%00", "..%2F..%2Fetc%2Fpasswd", "%F0%9F%92%A5"])
def test_hostile_status_ids_are_404(api: httpx.Client, request_id: str) -> None:
    assert api.get(f"/v2/status/{request_id}").status_code == 404


def test_a_wrong_method_is_405_in_the_envelope(api: httpx.Client) -> None:
    expect_error(api.get(path_of("remove_background")), 405, "GET is not allowed")


# --- once bugs: each reproduced a crash or a hang; on a fake of its own, checked for crashes ------


@pytest.fixture(scope="module")
def separate_server() -> Iterator[ServerThread]:
    """A fake of its own for the rows that crash it today (the session fake stays clean)."""
    with ServerThread(Settings()) as server:
        yield server


@pytest.fixture
def separate(separate_server: ServerThread, client_for: Callable[..., httpx.Client]) -> Iterator[httpx.Client]:
    separate_server.reset()
    yield client_for(separate_server.base_url)
    separate_server.reset()  # forget this row's crash


def settle(server: ServerThread) -> None:
    """Wait until the server's loop has finished what it was doing (logging a crash).

    CPython 3.11 keeps the ast module's recursion counter in shared state (gh-106905): a
    traceback formatted on the server thread while pytest formats this test's failure can
    raise SystemError and end the whole run. So these tests wait for the server's loop, and
    fail with ``pytrace=False`` (no source is parsed for the report).
    """
    for _ in range(2):
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.01), server.app.state.loop).result(timeout=5)


def expect_fixed(server: ServerThread, ok: bool, what: str) -> None:
    settle(server)
    crashed = list(server.backend.crashes)
    if not ok or crashed:
        pytest.fail(f"{what}; crashes: {crashed!r}"[:1000], pytrace=False)


@pytest.mark.parametrize("path", [path_of("remove_background"), "/bria-mock/rules"])
def test_deeply_nested_json_is_400(separate: httpx.Client, separate_server: ServerThread, path: str) -> None:
    response = separate.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
    expect_fixed(separate_server, response.status_code == 400, f"answered {response.status_code}")


@pytest.mark.parametrize("url", ["http://[::1/cat.jpg", "http://[not-an-address]/cat.jpg"])
def test_an_unparsable_url_is_400(separate: httpx.Client, separate_server: ServerThread, url: str) -> None:
    response = post_json(separate, "remove_background", {"image": url})
    expect_fixed(separate_server, response.status_code == 400, f"answered {response.status_code}")


LONE_SURROGATE = "\ud800"  # valid JSON ("\ud800" escape), but not encodable as UTF-8


def test_a_lone_surrogate_in_the_prompt_is_400(separate: httpx.Client, separate_server: ServerThread) -> None:
    image = f"{separate_server.base_url}/samples/subject.jpg"
    body = {"image": image, "prompt": f"a {LONE_SURROGATE} beach", "sync": True}
    response = post_json(separate, "replace_background", body)
    expect_fixed(separate_server, response.status_code == 400, f"answered {response.status_code}")
    assert "lone UTF-16 surrogate" in response.json()["error"]["details"]


def test_a_lone_surrogate_in_the_image_is_400_and_recorded(
    separate: httpx.Client, separate_server: ServerThread
) -> None:
    response = post_json(separate, "remove_background", {"image": LONE_SURROGATE})
    recorded = len(separate_server.backend.journal)
    expect_fixed(separate_server, response.status_code == 400 and recorded == 1, f"journal entries: {recorded}")


def test_a_lone_surrogate_anywhere_leaves_the_journal_readable(
    separate: httpx.Client, separate_server: ServerThread
) -> None:
    image = f"{separate_server.base_url}/samples/subject.jpg"
    assert post_json(separate, "remove_background", {"image": image, LONE_SURROGATE: 1}).status_code == 400
    journal = separate.get("/bria-mock/journal")
    expect_fixed(separate_server, journal.status_code == 200, f"the journal answered {journal.status_code}")


def test_an_admin_upload_over_the_body_limit_is_413(
    separate_server: ServerThread, raw_client: Callable[[str], RawClient]
) -> None:
    client = raw_client(separate_server.base_url)
    client.sock.settimeout(1)
    head = request_head(client, "/bria-mock/uploads", "Content-Type: image/png", "Content-Length: 1000000000")
    assert client.send(head + b"\x89PNG" + b"\0" * 1024)
    try:
        status, _, _ = client.answer()
    except TimeoutError:
        status = 0
    finally:
        client.close()  # the server now sees the client go away
    time.sleep(0.05)
    expect_fixed(separate_server, status == 413, f"answered {status or 'nothing within 1 s'}")
