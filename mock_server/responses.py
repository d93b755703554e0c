"""JSON answers, rendered with orjson: on the fake's busiest routes, rendering JSON with the
standard library costs more than everything else in an error answer."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette import responses


class JSONResponse(responses.JSONResponse):
    """Starlette's ``JSONResponse``, rendered by orjson; same JSON (compact, UTF-8)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits (a seed): the standard encoder
            return _STANDARD.encode(content).encode("utf-8")


_STANDARD = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
