"""Load generators for the HTTP benchmark: ``wrk`` when installed, else a Python asyncio client.

Both keep ``connections`` keep-alive connections busy against one loopback URL and report
requests per second and latency percentiles. Every run stops by itself: wrk after
``duration`` seconds; the Python client after ``duration`` seconds or ``count`` requests,
whichever comes first.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

# wrk reports through its ``done`` hook: one JSON line, easy to find in its output.
_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Request:
    """One request, sent over and over."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class LoadResult:
    """What one load run measured."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # answers outside 2xx/3xx (expected for the error scenarios)
    socket_errors: int
    statuses: dict[str, int] = field(default_factory=dict)  # by status code; the Python client only

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def check_loopback(base_url: str) -> None:
    """Refuse any target that is not on this machine."""
    host = urlsplit(base_url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise ValueError(f"load is only ever sent to loopback addresses, not {host!r}")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, request: Request, *, connections: int, duration: float, threads: int = 1) -> LoadResult:
    """Drive ``request`` with wrk for ``duration`` seconds (whole seconds, at least 1)."""
    check_loopback(base_url)
    script = _wrk_script(request)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = Path(handle.name)
    seconds = max(1, round(duration))
    command = [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script_path),
        base_url.rstrip("/") + request.path,
    ]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    finally:
        script_path.unlink(missing_ok=True)
    output = finished.stdout
    if finished.stderr.strip():  # e.g. a Lua error: wrk would go on with a plain GET
        raise RuntimeError(f"wrk: {finished.stderr.strip()}")
    line = next((line for line in output.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH "))
    elapsed = data["duration_us"] / 1e6
    return LoadResult(
        requests=data["requests"],
        seconds=elapsed,
        rps=data["requests"] / elapsed,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
    )


def _wrk_script(request: Request) -> str:
    lines = [f"wrk.method = {_lua_string(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {_lua_string(request.body.decode())}")
    lines += [f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}" for name, value in request.headers.items()]
    return "\n".join(lines) + "\n" + _WRK_DONE


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def run_python(
    base_url: str,
    request: Request,
    *,
    connections: int,
    duration: float,
    count: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Drive ``request`` with the asyncio client until ``duration`` passes or ``count`` answers arrive."""
    check_loopback(base_url)
    return asyncio.run(_drive(base_url, request, connections, duration, count, on_progress))


async def _drive(
    base_url: str,
    request: Request,
    connections: int,
    duration: float,
    count: int | None,
    on_progress: Callable[[int], None] | None,
) -> LoadResult:
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    wire = _wire(request, f"{host}:{port}")
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    issued = 0
    deadline = time.perf_counter() + duration

    def may_send() -> bool:
        nonlocal issued
        if time.perf_counter() >= deadline or (count is not None and issued >= count):
            return False
        issued += 1
        return True

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while may_send():
                started = time.perf_counter()
                try:
                    writer.write(wire)
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if on_progress is not None:
                    on_progress(len(latencies))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed else 0.0,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        non_2xx=sum(n for status, n in statuses.items() if status >= 400),
        socket_errors=errors,
        statuses={str(status): n for status, n in sorted(statuses.items())},
    )


def _wire(request: Request, host: str) -> bytes:
    headers = {"Host": host, **request.headers}
    if request.method != "GET" or request.body:
        headers["Content-Length"] = str(len(request.body))
    head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + request.body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one whole response; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of a sorted list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
