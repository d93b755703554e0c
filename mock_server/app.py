"""``create_app``: the Starlette application, its routes, and the one place errors become responses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route

from mock_server import admin, handlers
from mock_server.backend import BriaBackend
from mock_server.config import Settings
from mock_server.errors import (
    BadRequest,
    BriaError,
    ImageNotFound,
    MethodNotAllowed,
    error_for_code,
    error_response,
    internal_error,
)
from mock_server.traffic import TrafficLayer

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("mock_server")

# The API routes: the app serves them without Starlette's router and exception middleware
# (see DirectRoutes).
API_ROUTES = [
    Route("/v2/image/edit/remove_background", handlers.remove_background, methods=["POST"]),
    Route("/v2/image/edit/replace_background", handlers.replace_background, methods=["POST"]),
    Route("/v2/status/{request_id}", handlers.status, methods=["GET"]),
]
ROUTES = [
    *API_ROUTES,
    Route("/results/{name}", handlers.result_image, methods=["GET"]),
    Route("/samples/{name}", handlers.sample_image, methods=["GET"]),
    Route("/uploads/{name}", handlers.uploaded_image, methods=["GET"]),
    Route("/openapi.json", handlers.openapi_document, methods=["GET"]),
    *admin.ROUTES,
]


class BriaMockApp(Starlette):
    """Starlette with the traffic layer (rules, rate limits, journal) outside everything else."""

    def build_middleware_stack(self) -> ASGIApp:
        return TrafficLayer(DirectRoutes(API_ROUTES, super().build_middleware_stack()), self.state.backend)


class DirectRoutes:
    """ASGI: the routes given, served directly; every other request goes on to ``app``.

    For the API routes, which carry the load: Starlette's router, its two exception
    middlewares and the endpoint wrapper were a third of what the fake adds to a 401 (see
    benchmarks/). A ``BriaError`` is answered here by the app's own handler; anything else is
    answered as a crash by the traffic layer outside, in the same envelope.
    """

    def __init__(self, routes: list[Route], app: ASGIApp) -> None:
        self.routes = routes
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                request = Request(scope, receive)
                try:
                    response = await route.endpoint(request)
                except BriaError as exc:
                    response = await bria_error_response(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)  # also a known path with the wrong method: Starlette's 405


def create_app(settings: Settings | None = None) -> Starlette:
    """A new fake. Settings come from ``settings`` or, when omitted, from ``BRIA_MOCK_*`` variables."""
    settings = settings if settings is not None else Settings.from_env()
    backend = BriaBackend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.loop = asyncio.get_running_loop()  # for thread-safe calls from tests (ServerThread)
        yield
        await backend.aclose()

    app = BriaMockApp(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            BriaError: bria_error_response,
            HTTPException: http_error_response,
            Exception: crash_response,
        },
    )
    app.state.backend = backend
    return app


async def bria_error_response(request: Request, exc: Exception) -> Response:
    """Render any ``BriaError`` in the vendor's envelope (or the status service's own 404 body)."""
    assert isinstance(exc, BriaError)
    return error_response(exc, handlers.request_id_of(request))


async def http_error_response(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) in the same envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error: BriaError = ImageNotFound(f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}", headers=exc.headers)
    else:
        error = error_for_code(exc.status_code, str(exc.detail))
    return await bria_error_response(request, error)


async def crash_response(request: Request, exc: Exception) -> Response:
    """A bug in the fake: still the envelope, never a bare traceback (the server log has it)."""
    if isinstance(exc, ClientDisconnect):  # the client left mid-body: nobody to answer, no bug
        return await bria_error_response(request, BadRequest("body: the client disconnected"))
    logger.error("bria-mock crashed on %s %s", request.method, request.url.path, exc_info=exc)
    request.app.state.backend.crashes.append(exc)  # for the pytest plugin to re-raise in the test
    return await bria_error_response(request, internal_error(exc))
