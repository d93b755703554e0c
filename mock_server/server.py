"""Serving the fake with uvicorn: in the foreground (``bria-mock serve``) or on a thread (tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn

from mock_server.app import create_app
from mock_server.config import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mock_server.backend import BriaBackend


def uvicorn_config(app: Starlette, settings: Settings, **options: Any) -> uvicorn.Config:
    """How uvicorn serves the fake: on the fast stack, with a deadline on every request head.

    The fast stack is uvloop's event loop (where it is installed: not on Windows) and httptools'
    parser, with the fake's deadline on request heads (``header_timeout_seconds``); both are
    dependencies. See docs/performance.md for what it measures against asyncio and h11.
    """
    from mock_server.connection_limits import guarded_protocol

    http = guarded_protocol(settings.header_timeout_seconds, options.pop("http", "httptools"))
    options.setdefault("loop", "auto")  # uvloop when installed, as uvicorn decides
    return uvicorn.Config(app, http=http, lifespan="on", **options)


def serve(settings: Settings) -> None:
    """Run until Ctrl-C (uvicorn drains in-flight requests, then the lifespan closes the backend).

    Once listening, it prints where the API, samples, controls and OpenAPI document are, and the
    token rule in force. Raises ValueError for a bad setting (e.g. an unreadable rules file) before listening.
    With ``workers`` over 1, several processes serve (:func:`mock_server.workers.serve_workers`).
    """
    from mock_server.banner import AnnouncingServer

    if settings.workers > 1:
        from mock_server.workers import serve_workers

        serve_workers(settings)
        return

    app = create_app(settings)
    options = {"host": settings.host, "port": settings.port, "log_level": "info", "access_log": settings.access_log}
    config = uvicorn_config(app, settings, **options)
    server = AnnouncingServer(config, settings)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: that is a clean stop
        return
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        raise SystemExit(1)


class ServerThread:
    """The fake on a daemon thread over a pre-bound socket (port 0 picks a free one).

    Use as a context manager, or call ``start()`` / ``stop()``. ``base_url`` is known once started.
    It runs on the stack ``bria-mock serve`` runs on (:func:`uvicorn_config`); ``http="h11"`` swaps
    httptools for uvicorn's pure-Python parser (the tests of connection deadlines run on both).
    """

    def __init__(
        self, settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 0, http: str = "httptools"
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.app: Starlette = create_app(self.settings)
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
        # without it every keep-alive request waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn_config(self.app, self.settings, log_level="warning", http=http))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("bria-mock did not start")
            time.sleep(0.005)
        return self

    @property
    def backend(self) -> BriaBackend:
        backend: BriaBackend = self.app.state.backend
        return backend

    def reset(self) -> None:
        """Reset the backend on the server's own event loop (its tasks belong to that loop)."""

        async def reset() -> None:
            self.backend.reset()

        asyncio.run_coroutine_threadsafe(reset(), self.app.state.loop).result(timeout=10)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
