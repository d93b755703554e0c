"""Serving the proxy with uvicorn: in the foreground (``bria-mock proxy``) or on a thread (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from mock_server.proxy.forward import CONTROL_PATH, ProxyApp
from mock_server.proxy.options import ProxyOptions
from mock_server.proxy.target import Target


def serve_proxy(options: ProxyOptions) -> None:
    """Run until Ctrl-C. Raises ValueError (no target, a refused target) before listening."""
    app = ProxyApp(options)
    print(
        f"bria-mock proxy: forwarding http://{options.host}:{options.port} to {app.target.origin}"
        f"{' (strict)' if options.strict else ''}; tally at {CONTROL_PATH}"
        + (f"; recording to {options.record}" if options.record else ""),
        flush=True,
    )
    # The target's own Date and Server headers go through: uvicorn adds neither of its own.
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="info",
        lifespan="on",
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        return
    if not server.started:
        raise SystemExit(1)


class ProxyThread:
    """The proxy on a daemon thread over a pre-bound loopback socket (port 0: a free one), like ``ServerThread``."""

    def __init__(self, options: ProxyOptions, target: Target | None = None) -> None:
        self.app = ProxyApp(options, target)
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP (see ServerThread).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((options.host, options.port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="on", server_header=False, date_header=False)
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ProxyThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("bria-mock proxy did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
