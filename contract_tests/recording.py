"""Recording a run's exchanges to a folder, to re-check them offline and compare them with the fake.

Layout of a recording::

    manifest.json      {"format": "bria-mock-recording/1", "target": ..., "live": ..., "created": ...}
    exchanges.jsonl    one exchange per line, in the order they happened
    files/<sha256>.<ext>  request images (so the requests can be replayed) and result images

Tokens are redacted (trigger tokens such as ``bria-mock-429`` are kept: they are not secrets and a
replay needs them). Image payloads in JSON bodies become ``{"$file", "sha256", "bytes", "prefix"}``;
other long strings become ``{"$digest", "chars"}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx

from mock_server import operations
from mock_server.drift import EXCHANGES, FILES, MANIFEST, RECORDING_FORMAT, REDACTED, image_properties
from mock_server.triggers import is_trigger_token
from mock_server.verify_report import RESULT_IMAGE

IMAGE_FIELDS = tuple(operations.image_summary_fields())  # every field of the table that holds images
_SECRET_HEADERS = ("api_token", "authorization", "cookie", "set-cookie")
_DATA_PREFIX = re.compile(r"^data:[^,;]*;base64,", re.IGNORECASE)
_LONG_STRING = 1024
_KEPT_UNREADABLE = 256


class Recorder:
    """Appends every exchange of a run to a recording folder."""

    def __init__(self, directory: Path, *, target: str, live: bool) -> None:
        self.directory = directory
        (directory / FILES).mkdir(parents=True, exist_ok=True)
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        manifest = {"format": RECORDING_FORMAT, "target": target, "live": live, "created": created}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (directory / EXCHANGES).write_text("", encoding="utf-8")
        self.count = 0

    def record(self, response: httpx.Response, *, operation: str, test: str, attempt: int = 0) -> None:
        """Write one exchange (the response must have been read)."""
        self.count += 1
        entry = {
            "index": self.count,
            "test": test,
            "operation": operation,
            "attempt": attempt,
            "request": self._request(response.request),
            "response": self._response(response, operation),
        }
        with (self.directory / EXCHANGES).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=True) + "\n")

    def _request(self, request: httpx.Request) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": request.method,
            "url": str(request.url),
            "path": request.url.path,
            "headers": redact(request.headers),
        }
        content = request.content
        if content:
            try:
                body = json.loads(content)
            except ValueError:
                out["text"] = content.decode("utf-8", "replace")
            else:
                out["json"] = self._externalise_request(body)
        return out

    def _response(self, response: httpx.Response, operation: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": response.status_code, "headers": redact(response.headers)}
        out["elapsed_ms"] = round(response.elapsed.total_seconds() * 1000, 1)
        if operation == RESULT_IMAGE:
            out["image"] = self.save_image(response.content)
            return out
        try:
            out["json"] = digest_long_strings(response.json())
        except ValueError:
            out["text"] = response.text[:_LONG_STRING]
        return out

    def _externalise_request(self, body: Any) -> Any:
        if not isinstance(body, dict):
            return digest_long_strings(body)
        out = {key: digest_long_strings(value) for key, value in body.items()}
        for field in IMAGE_FIELDS:
            value = body.get(field)
            if isinstance(value, str):
                out[field] = self._externalise_image(value)
            elif isinstance(value, list):
                out[field] = [self._externalise_image(item) if isinstance(item, str) else item for item in value]
        return out

    def _externalise_image(self, value: str) -> Any:
        if value.lower().startswith(("http://", "https://")):
            return value
        match = _DATA_PREFIX.match(value)
        prefix = match.group(0) if match else ""
        try:
            data = base64.b64decode(_padded(value[len(prefix) :]), validate=True)
        except (binascii.Error, ValueError):
            return value if len(value) <= _KEPT_UNREADABLE else digest_long_strings(value)
        saved = self.save_file(data, image_extension(data))
        return {"$file": saved["file"], "sha256": saved["sha256"], "bytes": len(data), "prefix": prefix}

    def save_file(self, data: bytes, extension: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{FILES}/{digest}.{extension}"
        path = self.directory / relative
        if not path.exists():
            path.write_bytes(data)
        return {"file": relative, "sha256": digest, "bytes": len(data)}

    def save_image(self, data: bytes) -> dict[str, Any]:
        """Save a downloaded image with its digest and its properties (format, mode, size)."""
        return {**self.save_file(data, image_extension(data)), **image_properties(data)}


def redact(headers: httpx.Headers) -> dict[str, str]:
    """Headers as a dict, secrets replaced (trigger tokens are kept: a replay needs them)."""
    out = {}
    for name, value in headers.items():
        lowered = name.lower()
        # An empty or trigger token is no secret, and a replay needs it to get the same answer.
        keep = lowered not in _SECRET_HEADERS or not value or (lowered == "api_token" and is_trigger_token(value))
        out[lowered] = value if keep else REDACTED
    return out


def digest_long_strings(value: Any) -> Any:
    """A JSON value with every string over 1 KiB replaced by its digest and length."""
    if isinstance(value, str) and len(value) > _LONG_STRING:
        return {"$digest": hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(), "chars": len(value)}
    if isinstance(value, dict):
        return {key: digest_long_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [digest_long_strings(item) for item in value]
    return value


def image_extension(data: bytes) -> str:
    found = image_properties(data)["format"]
    return {"JPEG": "jpg"}.get(found, str(found).lower()) if found else "bin"


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)
