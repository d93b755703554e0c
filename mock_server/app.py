"""``create_app``: the route table and the one request path every request takes.

A request is matched by the :class:`~mock_server.routing.Router`; API traffic (the operations,
status polls, result images, samples, unknown paths) then goes through the traffic policy
(:class:`~mock_server.traffic.Exchange`), the fake's own controls under ``/bria-mock/`` straight
to their endpoint. Either way, an error becomes an answer in ``errors.error_answer`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request

from mock_server import admin, connection_faults, handlers, inspector, operations
from mock_server.backend import BriaBackend
from mock_server.config import Settings
from mock_server.context import context_of
from mock_server.errors import error_answer, is_crash
from mock_server.routing import Route, Router
from mock_server.traffic import Exchange

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from mock_server.playback import Playback


def api_routes() -> list[Route]:
    """The API as the real service has it: one route per operation, and the status service."""
    submits = [Route(op.method, op.path, handlers.submit_endpoint(op), traffic=op.name) for op in operations.OPERATIONS]
    return [
        *submits,
        Route("GET", f"{operations.STATUS_PATH}{{request_id}}", handlers.status, traffic=operations.STATUS),
    ]


def routes() -> list[Route]:
    """Every route the fake serves."""
    return [
        *api_routes(),
        Route("GET", "/results/{name}", handlers.result_image, traffic=operations.RESULT),
        Route("GET", "/samples/{name}", handlers.sample_image, traffic=operations.SAMPLE),
        Route("GET", "/uploads/{name}", handlers.uploaded_image, traffic=operations.OTHER),
        Route("GET", "/openapi.json", handlers.openapi_document),
        *admin.ROUTES,
        *inspector.ROUTES,
    ]


class BriaMockApp(Starlette):
    """Starlette for its lifespan and ``state``; every request is served by :class:`RequestPath`."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestPath(Router(routes(), controls_prefix=admin.PREFIX), self.state.backend, self.router)


class RequestPath:
    """ASGI: match the route, then the traffic policy (API traffic) or the control itself."""

    def __init__(self, router: Router, backend: BriaBackend, lifespan: ASGIApp) -> None:
        self.router = router
        self.backend = backend
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1000})
            return
        match = self.router.match(scope)
        if match.traffic is not None:
            await Exchange(self.backend, scope, match).serve(receive, send)
            return
        crash: Exception | None = None
        try:
            if match.error is not None:
                raise match.error
            assert match.route is not None
            scope["path_params"] = match.params
            response = await match.route.endpoint(Request(scope, receive))
        except Exception as exc:
            where = f"on {scope['method']} {scope['path']}"
            response = error_answer(exc, context_of(scope).request_id, self.backend.crashes, where)
            crash = exc if is_crash(exc) else None
        await response(scope, receive, send)
        connection_faults.raise_in_process(crash, send)


def create_app(settings: Settings | None = None) -> Starlette:
    """A new fake. Settings come from ``settings`` or, when omitted, from ``BRIA_MOCK_*`` variables."""
    settings = settings if settings is not None else Settings.from_env()
    backend = BriaBackend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # (imported here: it brings uvicorn's HTTP protocols, which an app used in-process never needs)
        from mock_server.connection_limits import quiet_accept_errors

        app.state.loop = asyncio.get_running_loop()  # for thread-safe calls from tests (ServerThread)
        quiet_accept_errors(app.state.loop)  # served over sockets: a flood of clients must not flood the log
        backend.scheduler.start()  # job ends and webhook deliveries on the fake's clock
        yield
        await backend.aclose()

    app = BriaMockApp(lifespan=lifespan)
    app.state.backend = backend
    # Answers from a recording, read by the submit endpoint before the operation runs (handlers._submit).
    backend.playback = _playback(settings)
    return app


def _playback(settings: Settings) -> Playback | None:
    """The recording that answers first (``--playback``), read at start; None without one."""
    if not settings.playback:
        return None
    from mock_server.playback import Playback  # (here: it reads recordings through drift, which imports the server)

    return Playback.load(settings.playback, strict=settings.playback_strict)
