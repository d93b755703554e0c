"""The input images of an exchange, as the inspector shows them.

The journal keeps a request body of up to 4 KiB as its raw bytes and a larger one as a summary
(each base64 image as its digest, size and format). So the page shows the pixels of an input
that was either in a body the journal kept whole, or a URL on the fake (a result, a sample or an
upload: read here, not through the API, so looking never adds to the journal or meets a rule).
A base64 input of a larger body shows its pixels while ``BriaBackend.recent_inputs`` still has
its payload (the last 32 MiB of them); any other input shows its digest, or its URL as a link.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mock_server import operations
from mock_server.journal import summarise_body

if TYPE_CHECKING:
    from mock_server.backend import BriaBackend
    from mock_server.journal import Entry

# Every field any operation reads as an image, in the table's order (``image`` first).
IMAGE_FIELDS = tuple(dict.fromkeys(field for op in operations.OPERATIONS for field in op.image_fields))
LOCAL_PREFIXES = ("/results/", "/samples/", "/uploads/")
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"))


def image_inputs(entry: Entry) -> list[tuple[str, str]]:
    """(field label, value) for each image value in the request body, e.g. ``("ref_images[1]", "...")``."""
    body = _raw_body(entry)
    if body is None:
        body = entry.body
    if not isinstance(body, dict):
        return []
    found: list[tuple[str, str]] = []
    for field in IMAGE_FIELDS:
        value = body.get(field)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            label = f"{field}[{index}]" if isinstance(value, list) else field
            if isinstance(item, str | dict):
                found.append((label, item))  # type: ignore[arg-type]  # a summary stays a dict
    return found


def describe(entry: Entry, backend: BriaBackend) -> list[dict[str, Any]]:
    """What the page shows of each input: where its pixels are, or why they are not kept."""
    described = []
    for number, (label, value) in enumerate(image_inputs(entry)):
        item: dict[str, Any] = {"field": label}
        if isinstance(value, str) and _is_url(value):
            item["url"] = value
            shown = _local_path(entry, value) is not None
        else:  # the payload itself (a body kept whole), or its summary and maybe its recent payload
            shown = isinstance(value, str) or _recent_payload(value, backend) is not None
            item["summary"] = summarise_body({"image": value})["image"] if isinstance(value, str) else value
        if shown:
            item["src"] = f"/bria-mock/exchanges/{entry.id}/inputs/{number}"
        described.append(item)
    return described


def _recent_payload(summary: Any, backend: BriaBackend) -> str | None:
    """The base64 payload behind an input's summary, while the fake still has it (``recent_inputs``)."""
    digest = summary.get("sha256") if isinstance(summary, dict) else None
    return backend.recent_inputs.get(digest) if isinstance(digest, str) else None


def input_bytes(entry: Entry, number: int, backend: BriaBackend) -> bytes | None:
    """The bytes of an exchange's input ``number``, when the journal or the fake still has them."""
    inputs = image_inputs(entry)
    if not 0 <= number < len(inputs):
        return None
    value = inputs[number][1]
    if not isinstance(value, str):
        value = _recent_payload(value, backend)
        if value is None:
            return None
    elif _is_url(value):
        path = _local_path(entry, value)
        return backend.local_file(path) if path is not None else None
    payload = value.split(",", 1)[-1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None


def media_type(data: bytes) -> str:
    """The image type its magic bytes tell (the fake takes only images as inputs)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), "application/octet-stream")


def _raw_body(entry: Entry) -> Any:
    if not isinstance(entry.request_body, bytes):
        return None
    from mock_server.bodies import parse_json_or_error
    from mock_server.errors import BadRequest

    parsed = parse_json_or_error(entry.request_body)
    return None if isinstance(parsed, BadRequest) else parsed


def _is_url(value: str) -> bool:
    return "://" in value[:12]


def _local_path(entry: Entry, url: str) -> str | None:
    """The path of a URL on the fake, as the request named the fake (its Host), or None."""
    parts = urlsplit(url)
    on_the_fake = parts.netloc.lower() == entry.request_headers.get("host", "").lower()
    return parts.path if on_the_fake and parts.path.startswith(LOCAL_PREFIXES) else None
