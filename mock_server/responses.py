"""JSON answers, rendered with orjson: on the fake's busiest routes, rendering JSON with the
standard library costs more than everything else in an error answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from starlette import responses


class JSONResponse(responses.JSONResponse):
    """Starlette's ``JSONResponse``, rendered by orjson; same JSON (compact, UTF-8)."""

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        if headers is not None or self.media_type != "application/json" or self.status_code in _NO_LENGTH:
            super().init_headers(headers)
            return
        # The common case, the same two headers Starlette's own code writes, without its general path.
        self.raw_headers = [(b"content-length", str(len(self.body)).encode()), _JSON_CONTENT_TYPE]

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits (a seed): the standard encoder
            return _STANDARD.encode(content).encode("utf-8")


_JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_NO_LENGTH = frozenset({*range(100, 200), 204, 304})  # answers Starlette gives no content-length
_STANDARD = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
