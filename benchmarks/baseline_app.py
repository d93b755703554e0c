"""The baseline: a bare Starlette app that answers constant JSON on the fake's two hot routes.

It does what a canned-response mock does and nothing more: no body reading, no validation,
no journal. ``run.py`` serves it with exactly the uvicorn settings it gives the fake.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCEPTED = {"request_id": "0" * 32, "status_url": "http://127.0.0.1/v2/status/" + "0" * 32}
STATUS = {"request_id": "0" * 32, "status": "IN_PROGRESS"}


async def submit(request: Request) -> Response:
    return JSONResponse(ACCEPTED, status_code=202)


async def status(request: Request) -> Response:
    return JSONResponse(STATUS)


def create_app() -> Starlette:
    """A new baseline app."""
    return Starlette(
        routes=[
            Route("/v2/image/edit/remove_background", submit, methods=["POST"]),
            Route("/v2/status/{request_id}", status, methods=["GET"]),
        ]
    )
