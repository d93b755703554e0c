"""The fake's own cost per request, in-process: the ASGI app called directly, no sockets, no server.

    python benchmarks/request_path.py [--requests 5000] [--rounds 5] [--profile submit|status] [--state URL]
    py-spy record -r 2000 -f raw -o /tmp/submit.txt -- python benchmarks/request_path.py --only submit --requests 9000

Times the async submit (a 32x32 JPEG in base64, as ``run.py`` sends it) and a status poll of a
finished job on the fake (``create_app(Settings())``, its lifespan started) and on the bare
Starlette app, and prints CPU µs per request for each and the fake's extra. ``--profile`` runs one
path under cProfile and prints its top functions (own time and cumulative, µs per request).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import baseline_app  # noqa: E402
import run  # noqa: E402

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """An ASGI scope as uvicorn's httptools protocol builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "state": {},
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
    }


async def call(app: App, request: run.Request) -> int:
    """One request through the app; its status."""
    body = {"type": "http.request", "body": request.body, "more_body": False}
    received = False
    status = 0
    headers = dict(request.headers)
    if request.body:
        headers["content-length"] = str(len(request.body))

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.sleep(3600)  # (never: the app reads the body once)
        received = True
        return body

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope(request.method, request.path, headers), receive, send)
    return status


async def lifespan_started(app: App) -> Callable[[], Awaitable[None]]:
    """Run the app's lifespan start-up; the coroutine that shuts it down."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(lifespan, inbox.get, outbox.put))
    await outbox.get()

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return shutdown


async def per_request_us(app: App, request: run.Request, expect: int, count: int) -> float:
    assert await call(app, request) == expect, f"{request.method} {request.path}: not {expect}"
    started = time.process_time()  # CPU time: other processes on shared cores do not count
    for _ in range(count):
        await call(app, request)
    return (time.process_time() - started) / count * 1e6


async def new_job(app: App, image: bytes) -> str:
    """A finished job's id (submitted, then polled once so that it completes)."""
    import orjson

    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    request = run.post(run.SUBMIT_PATH, run.submit_body(image))
    headers = {**request.headers, "content-length": str(len(request.body))}
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            await asyncio.sleep(3600)
        done = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    await app(scope("POST", run.SUBMIT_PATH, headers), receive, send)
    request_id: str = orjson.loads(b"".join(sent))["request_id"]
    await call(app, run.get(f"/v2/status/{request_id}"))
    await asyncio.sleep(0.2)  # the job's work runs in the thread pool
    return request_id


async def measure(options: argparse.Namespace) -> None:
    from mock_server import Settings, create_app

    fake: App = create_app(Settings(state=options.state))  # type: ignore[assignment]
    bare: App = baseline_app.create_app()  # type: ignore[assignment]
    stop_fake, stop_bare = await lifespan_started(fake), await lifespan_started(bare)
    image = run.tiny_jpeg()
    submit = run.post(run.SUBMIT_PATH, run.submit_body(image))
    status = run.get(f"/v2/status/{await new_job(fake, image)}")
    bare_status = run.get("/v2/status/" + "0" * 32)
    if options.only:  # one path, nothing else: for a sampling profiler (py-spy record -- python ...)
        request, expect = (submit, 202) if options.only == "submit" else (status, 200)
        print(f"{options.only}: {await per_request_us(fake, request, expect, options.requests):.1f} CPU µs/request")
    elif options.profile:
        request, expect = (submit, 202) if options.profile == "submit" else (status, 200)
        await per_request_us(fake, request, expect, 500)  # warm
        profiler = cProfile.Profile()
        profiler.enable()
        await per_request_us(fake, request, expect, options.requests)
        profiler.disable()
        print_profile(profiler, options.requests, options.top)
    else:
        times: dict[str, list[float]] = {"submit": [], "bare POST": [], "status": [], "bare GET": []}
        for _ in range(options.rounds):
            times["bare POST"].append(await per_request_us(bare, submit, 202, options.requests))
            times["submit"].append(await per_request_us(fake, submit, 202, options.requests))
            times["bare GET"].append(await per_request_us(bare, bare_status, 200, options.requests))
            status = run.get(f"/v2/status/{await new_job(fake, image)}")  # (max_jobs: the last one may be gone)
            times["status"].append(await per_request_us(fake, status, 200, options.requests))
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, values in times.items():
            print(f"{name:10} {medians[name]:7.1f} µs/request (rounds: {', '.join(f'{v:.1f}' for v in values)})")
        print(
            f"the fake's own cost: submit +{medians['submit'] - medians['bare POST']:.1f} µs, "
            f"status +{medians['status'] - medians['bare GET']:.1f} µs over the bare app"
        )
    await stop_fake()
    await stop_bare()


def print_profile(profiler: cProfile.Profile, count: int, top: int) -> None:
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}({name})" if line else name
        rows.append((own / count * 1e6, cumulative / count * 1e6, calls / count, where))
    print(f"{'own µs':>8} {'cum µs':>8} {'calls':>6}  function (per request, {count} requests; cProfile inflates)")
    for own, cumulative, calls, where in sorted(rows, reverse=True)[:top]:
        print(f"{own:8.2f} {cumulative:8.2f} {calls:6.1f}  {where}")
    print("\nby cumulative:")
    for own, cumulative, calls, where in sorted(rows, key=lambda row: -row[1])[:top]:
        print(f"{own:8.2f} {cumulative:8.2f} {calls:6.1f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per timing (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, medians reported")
    parser.add_argument("--profile", choices=["submit", "status"], help="one path under cProfile instead")
    parser.add_argument("--only", choices=["submit", "status"], help="one path only (for py-spy)")
    parser.add_argument("--state", default="memory", help="the fake's state: memory, or a Redis/Valkey URL")
    parser.add_argument("--top", type=int, default=30, help="functions listed with --profile")
    options = parser.parse_args()
    import uvloop

    uvloop.run(measure(options))


if __name__ == "__main__":
    main()
