"""Serve the fake or the baseline for ``run.py``: one uvicorn process on a free loopback port.

    python benchmarks/serve.py fake|baseline [--loop auto] [--http auto]

Both apps get identical uvicorn settings (the ones below); the fake is served as ``bria-mock serve``
serves it, with its deadline on request heads (on h11, the stack ``pip install .`` gives). The first
line on stdout is JSON: the port and the event loop and HTTP implementation uvicorn resolved.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import sys
from pathlib import Path

import uvicorn

# Run against this checkout even when the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def resolved(loop: str, http: str) -> tuple[str, str]:
    """What uvicorn picks for ``auto``: uvloop and httptools when importable (uvicorn's own rule)."""
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def server_config(app: object, loop: str, http: str) -> uvicorn.Config:
    """The one set of server settings every benchmarked app runs under."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop=loop,  # type: ignore[arg-type]
        http=http,  # type: ignore[arg-type]
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=["fake", "baseline"])
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    arguments = parser.parse_args()
    if arguments.app == "fake":
        from mock_server import Settings, create_app

        app = create_app(Settings())  # defaults only: BRIA_MOCK_* variables must not change the numbers
    else:
        import baseline_app

        app = baseline_app.create_app()
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, so a proto-0 listener gets Nagle + delayed ACK, about 40 ms per keep-alive answer.
    # This is the socket uvicorn itself makes for --host/--port (bria-mock serve).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    loop, http = resolved(arguments.loop, arguments.http)
    print(json.dumps({"port": listener.getsockname()[1], "loop": loop, "http": http}), flush=True)
    config = server_config(app, arguments.loop, arguments.http)
    if arguments.app == "fake" and http == "h11":  # as bria-mock serve runs it (mock_server.server.uvicorn_config)
        from mock_server.connection_limits import guarded_protocol

        config.http = guarded_protocol(Settings().header_timeout_seconds)
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
