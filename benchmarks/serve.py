"""Serve the fake or the baseline for ``run.py``: one uvicorn process on a free loopback port.

    python benchmarks/serve.py fake|baseline [--loop auto] [--http auto] [--log-like-serve]

Both apps get identical uvicorn settings (the ones below) on the same stack: by default the fake's
own (uvloop + httptools, which ``pip install .`` installs); the fake is served through
``mock_server.server.uvicorn_config`` as ``bria-mock serve`` serves it, with its deadline on request
heads. ``--http h11 --loop asyncio`` measures the pure-Python stack instead. The first line on stdout
is JSON: the port and the event loop and HTTP implementation uvicorn resolved. ``--log-like-serve``
logs as ``bria-mock serve`` does (level info, no access log; to /dev/null after that first line).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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


def server_config(loop: str, http: str, like_serve: bool) -> dict[str, object]:
    """The one set of server settings every benchmarked app runs under."""
    level = "info" if like_serve else "warning"
    return {"loop": loop, "http": http, "workers": 1, "access_log": False, "log_level": level}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=["fake", "baseline"])
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--log-like-serve", action="store_true", help="level info, no access log (as bria-mock serve)")
    arguments = parser.parse_args()
    from mock_server import Settings

    if arguments.app == "fake":
        from mock_server import create_app

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
    options = server_config(loop, http, arguments.log_like_serve)
    if arguments.log_like_serve:  # what it logs goes where bria-mock serve's goes in a benchmark: nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    if arguments.app == "fake":  # as bria-mock serve runs it: its HTTP protocol, with the deadline on heads
        from mock_server.server import uvicorn_config

        config = uvicorn_config(app, Settings(), **options)  # type: ignore[arg-type]
    else:
        config = uvicorn.Config(app, lifespan="on", **options)  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
