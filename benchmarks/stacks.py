"""Which server stack serves the fake fastest: uvicorn on asyncio + h11, uvicorn on uvloop + httptools,
granian (an ASGI server in Rust; measured only when it is installed), each serving the fake AND the bare
Starlette app, so that every ratio compares the two on the same stack.

    python benchmarks/stacks.py [--rounds 3] [--duration 3] [--connections 32]

The fake is served as ``bria-mock serve`` serves it on uvicorn (``serve.py fake``: its own protocol,
with the deadline on request heads); on granian, ``create_app`` with the default settings (granian
has its own header timeout). Access logs are off everywhere. Each round runs every stack's fake and
baseline on submit and status, back to back; medians are reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import peers  # noqa: E402
import run  # noqa: E402

UVICORN_STACKS = {"uvicorn, asyncio + h11": ("asyncio", "h11"), "uvicorn, uvloop + httptools": ("uvloop", "httptools")}


@contextmanager
def uvicorn_served(app: str, loop: str, http: str) -> Iterator[str]:
    command = [sys.executable, str(HERE / "serve.py"), app, "--loop", loop, "--http", http]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert started.stdout is not None
        base_url = f"http://127.0.0.1:{json.loads(started.stdout.readline())['port']}"
        peers.wait_ready(base_url + "/", started)
        yield base_url
    finally:
        peers.stop(started)


@contextmanager
def granian_served(app: str) -> Iterator[str]:
    port = peers.free_port()
    target = "mock_server.app:create_app" if app == "fake" else "baseline_app:create_app"
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning"]
    command += ["--no-access-log", target]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIA_MOCK_")}
    base_url = f"http://127.0.0.1:{port}"
    with peers.process(command, base_url + "/", env=environment, cwd=HERE):  # (baseline_app is imported from here)
        yield base_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    stacks = dict(UVICORN_STACKS)
    if importlib.util.find_spec("granian"):
        stacks["granian (uvloop)"] = ("granian", "")
    tiny = run.tiny_jpeg()
    submit = run.post(run.SUBMIT_PATH, run.submit_body(tiny))
    rates: dict[tuple[str, str, str], list[float]] = {}
    for number in range(options.rounds + 1):
        for stack, (loop, http) in stacks.items():
            for app in ("fake", "baseline"):
                serving = granian_served(app) if loop == "granian" else uvicorn_served(app, loop, http)
                with serving as base_url:
                    for route in ("submit", "status"):
                        request = submit
                        if route == "status":
                            request_id = peers.new_job_id(base_url, tiny) if app == "fake" else peers.ZEROS
                            request = run.get(f"/v2/status/{request_id}")
                        peers.check_once(base_url, request, 202 if route == "submit" else 200)
                        result = drive(base_url, request, options, 1.0 if number == 0 else options.duration)
                        if number:
                            rates.setdefault((stack, app, route), []).append(result.rps)
                            print(f"  round {number}: {stack}, {app}, {route}: {result.rps:,.0f} req/s", flush=True)
    print("\n| stack | route | fake req/s | bare req/s | fake / bare (range) |\n|---|---|---:|---:|---:|")
    for stack in stacks:
        for route in ("submit", "status"):
            fake, bare = rates[(stack, "fake", route)], rates[(stack, "baseline", route)]
            ratios = [a / b for a, b in zip(fake, bare, strict=True)]
            print(
                f"| {stack} | {route} | {statistics.median(fake):,.0f} | {statistics.median(bare):,.0f} | "
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
            )


def drive(base_url: str, request: loadgen.Request, options: argparse.Namespace, duration: float) -> loadgen.LoadResult:
    if loadgen.wrk_available():
        return loadgen.run_wrk(base_url, request, connections=options.connections, duration=duration)
    return loadgen.run_python(base_url, request, connections=options.connections, duration=duration)


if __name__ == "__main__":
    main()
