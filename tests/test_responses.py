"""JSON answers: rendered by orjson, byte for byte what Starlette's own rendering gives."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette import responses

from mock_server.responses import JSONResponse


@pytest.mark.parametrize(
    "content",
    [
        {"error": {"code": 401, "message": "Unauthorized", "details": "api_token: missing"}, "request_id": "0" * 32},
        {"result": {"image_url": "http://127.0.0.1/results/x.png", "seed": 7, "refined_prompt": "café, 海 \u2028"}},
        {"status": "IN_PROGRESS", "nested": [True, None, 1.5, -0.25, {"a": []}]},
        {"seed": 2**70},  # past orjson's 64-bit integers: the standard encoder takes over
    ],
)
def test_the_rendering_is_starlettes(content: Any) -> None:
    assert JSONResponse(content).body == responses.JSONResponse(content).body


def test_a_seed_past_64_bits_comes_back_as_sent(api: httpx.Client, subject_jpeg_b64: str) -> None:
    body = {"image": subject_jpeg_b64, "prompt": "#336699", "seed": 2**70, "sync": True}
    answer = api.post("/v2/image/edit/replace_background", json=body)

    assert answer.status_code == 200
    assert answer.json()["result"]["seed"] == 2**70
