"""Side by side in one run: WireMock, bria-mock as ``bria-mock serve`` runs it (one process, two workers,
a Redis/Valkey store) and the bare Starlette app on the same stack, on the two hot routes.

Every server is its own process on a free loopback port, started as its users start it:

- **WireMock**: the standalone jar from the npm package ``wiremock`` (installed with npm into
  ``~/.cache/bria-mock/wiremock`` on first use, or ``--wiremock-jar``), ``java -jar`` with its defaults
  (request journal on, its own thread pool) and two stub mappings read from its ``mappings`` folder:
  the submit answers 202 with a ``request_id`` and ``status_url``, the status a ``COMPLETED`` body.
- **bria-mock**: ``python -m mock_server serve --port P`` (the README's command: default settings,
  output to /dev/null), plus ``--workers 2`` and ``--state redis://...`` (a private server from
  :class:`mock_server.state_server.PrivateStateServer`). A row whose option the installed bria-mock does not
  have yet, or does not act on, is reported "not available". One more row adds ``--access-log true``
  (a line per request, as uvicorn logs by default): what that line costs.
- **bare Starlette**: ``serve.py baseline`` on the fake's stack (uvloop + httptools) with the same
  uvicorn logging as ``bria-mock serve`` (level info, no access log).

Each round runs every server on each route, back to back, with the same wrk (or Python client)
settings and the same request body as ``run.py``'s scenarios; a first round of 10 s per server and
route warms them up (WireMock's JIT) and is not reported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
WIREMOCK_CACHE = Path.home() / ".cache" / "bria-mock" / "wiremock"
READY_TIMEOUT = 60.0
WORKERS_TIMEOUT = 10.0  # after the first answer, for the workers to show as processes
# Every server's first round on each route, not reported: WireMock's JVM compiles its hot code over
# the first seconds of load (its first 3-second run measured a tenth of its later ones), and the
# Python servers get the same warm-up.
WARM_UP_SECONDS = 10.0
ZEROS = "0" * 32


@dataclass
class Peer:
    """One server of the table: its name, and its base URL once running (None: not available, and why)."""

    name: str
    base_url: str | None = None
    unavailable: str = ""
    runs: dict[str, list[Any]] = field(default_factory=dict)  # route -> LoadResults


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def process(command: list[str], ready_url: str, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own session, until ``ready_url`` answers; stopped (its whole group) after."""
    started = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **popen
    )
    try:
        wait_ready(ready_url, started)
        yield started
    finally:
        stop(started)


def wait_ready(url: str, started: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if started.poll() is not None:
            raise RuntimeError(f"{started.args!r} stopped at start (exit {started.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{started.args!r} was not ready within {READY_TIMEOUT} s")


def stop(started: subprocess.Popen[bytes]) -> None:
    if started.poll() is None:
        os.killpg(started.pid, signal.SIGTERM)  # the group: uvicorn's workers, the JVM's own children
        try:
            started.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait()


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


# --- WireMock -------------------------------------------------------------------------------


def wiremock_jar(given: Path | None) -> Path:
    """The standalone jar: ``given``, else the npm package's in the cache (installed there on first use)."""
    if given is not None:
        return given
    found = sorted(WIREMOCK_CACHE.glob("node_modules/wiremock/build/wiremock-standalone-*.jar"))
    if not found:
        if shutil.which("npm") is None:
            raise RuntimeError("WireMock: no jar in the cache and no npm to install it (pass --wiremock-jar)")
        WIREMOCK_CACHE.mkdir(parents=True, exist_ok=True)
        print(f"  installing the npm package wiremock into {WIREMOCK_CACHE}", flush=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(WIREMOCK_CACHE), "--no-audit", "--no-fund", "wiremock"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        found = sorted(WIREMOCK_CACHE.glob("node_modules/wiremock/build/wiremock-standalone-*.jar"))
    if not found:
        raise RuntimeError(f"WireMock: the npm package installed no standalone jar under {WIREMOCK_CACHE}")
    return found[-1]


def wiremock_mappings(root: Path, submit_path: str, base_url: str) -> None:
    """Canned answers like the fake's: 202 with a request id and status URL; a COMPLETED status."""
    accepted = {"request_id": ZEROS, "status_url": f"{base_url}/v2/status/{ZEROS}"}
    completed = {"request_id": ZEROS, "status": "COMPLETED", "result": {"image_url": f"{base_url}/results/x.png"}}
    json_header = {"Content-Type": "application/json"}
    mappings = {
        "submit.json": {
            "request": {"method": "POST", "urlPath": submit_path},
            "response": {"status": 202, "jsonBody": accepted, "headers": json_header},
        },
        "status.json": {
            "request": {"method": "GET", "urlPathPattern": "/v2/status/[0-9a-f]+"},
            "response": {"status": 200, "jsonBody": completed, "headers": json_header},
        },
    }
    folder = root / "mappings"
    folder.mkdir(parents=True)
    for name, mapping in mappings.items():
        (folder / name).write_text(json.dumps(mapping))


@contextmanager
def wiremock(jar: Path, submit_path: str) -> Iterator[str]:
    """WireMock with its default settings and the two canned answers; its base URL."""
    if shutil.which("java") is None:
        raise RuntimeError("WireMock: no java on PATH")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-wiremock-") as root:
        wiremock_mappings(Path(root), submit_path, base_url)
        command = ["java", "-jar", str(jar), "--port", str(port), "--bind-address", "127.0.0.1", "--root-dir", root]
        with process(command, f"{base_url}/__admin/mappings"):
            yield base_url


# --- bria-mock and the baseline -------------------------------------------------------------------


def serve_command(port: int, *options: str) -> list[str]:
    """``bria-mock serve`` as the README runs it (``python -m mock_server`` is the same command)."""
    return [sys.executable, "-m", "mock_server", "serve", "--port", str(port), *options]


@contextmanager
def bria_mock(*options: str) -> Iterator[str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIA_MOCK_")}  # defaults only
    with process(serve_command(port, *options), f"{base_url}/bria-mock/health", env=environment):
        yield base_url


@contextmanager
def bria_mock_workers(workers: int) -> Iterator[str]:
    """``bria-mock serve --workers N``; not available where the installed bria-mock serves one process anyway."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIA_MOCK_")}
    command = serve_command(port, "--workers", str(workers))
    with process(command, f"{base_url}/bria-mock/health", env=environment) as started:
        deadline = time.monotonic() + WORKERS_TIMEOUT
        # uvicorn's supervisor starts the workers as its children (a private state server is one more).
        while len(children(started.pid)) < workers:
            if time.monotonic() > deadline:
                raise Unavailable(f"--workers {workers} is accepted but serves one process")
            time.sleep(0.2)
        wait_shared(base_url)
        yield base_url


@contextmanager
def bria_mock_redis() -> Iterator[str]:
    """One ``bria-mock serve --state redis://...`` on a private Valkey/Redis server over TCP."""
    from mock_server.state_server import PrivateStateServer

    with PrivateStateServer(tcp=True) as store, bria_mock("--state", store.url) as base_url:
        if not store_used(store.url, base_url):
            raise Unavailable("--state is accepted but the state stays in memory")
        yield base_url


class Unavailable(RuntimeError):
    """The row's option is not in the installed bria-mock (or does nothing there)."""


def store_used(url: str, base_url: str) -> bool:
    """Whether a job submitted to the fake left anything in the store."""
    import redis
    import run

    new_job_id(base_url, run.tiny_jpeg())
    client = redis.Redis.from_url(url)
    try:
        return int(client.dbsize()) > 0
    finally:
        client.close()


def wait_shared(base_url: str) -> None:
    """A job submitted through one connection is found on fresh connections (whichever worker takes them)."""
    import run

    request_id = new_job_id(base_url, run.tiny_jpeg())
    for _ in range(8):
        answer = httpx.get(f"{base_url}/v2/status/{request_id}", headers={"api_token": run.TOKEN}, timeout=10)
        if answer.status_code != 200:
            raise Unavailable(f"--workers: a job was {answer.status_code} on another connection (state not shared)")


def check_once(base_url: str, request: Any, expect: int) -> None:
    """One request with a plain client: the row really gets the answer it is measured on."""
    answer = httpx.request(
        request.method, base_url + request.path, headers=dict(request.headers), content=request.body, timeout=30
    )
    if answer.status_code != expect:
        raise RuntimeError(f"{base_url}: {request.method} {request.path}: expected {expect}, got {answer.status_code}")


def new_job_id(base_url: str, image: bytes) -> str:
    import run

    with httpx.Client(base_url=base_url, headers={"api_token": run.TOKEN}, timeout=30) as client:
        body = run.submit_body(image)
        answer = client.post(run.SUBMIT_PATH, content=body, headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        request_id: str = answer.json()["request_id"]
        client.get(f"/v2/status/{request_id}")  # the first due poll ends the job: later ones answer COMPLETED
        return request_id


@contextmanager
def baseline(loop: str, http: str) -> Iterator[str]:
    """The bare Starlette app on the given stack, logging as ``bria-mock serve`` does."""
    command = [sys.executable, str(HERE / "serve.py"), "baseline", "--loop", loop, "--http", http, "--log-like-serve"]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert started.stdout is not None
        info = json.loads(started.stdout.readline() or "{}")
        started.stdout.close()  # the first line only: its log goes nowhere
        base_url = f"http://127.0.0.1:{info['port']}"
        wait_ready(base_url + "/", started)  # type: ignore[arg-type]
        yield base_url
    finally:
        stop(started)  # type: ignore[arg-type]


# --- the run ------------------------------------------------------------------------------------------

ROWS = (
    "WireMock",
    "bria-mock, 1 process",
    "bria-mock, 1 process, --access-log",
    "bria-mock, --workers 2 (shared state)",
    "bria-mock, 1 process, --state redis://",
    "bare Starlette, same stack",
)


def run_peers(options: Any, drive: Callable[..., Any]) -> dict[str, Any]:
    """Every row on submit and status, ``options.rounds`` rounds (after a warm-up round); the table's data."""
    import run

    tiny = run.tiny_jpeg()
    submit = run.post(run.SUBMIT_PATH, run.submit_body(tiny))
    peers = {name: Peer(name) for name in ROWS}
    starters: dict[str, Callable[[], Any]] = {
        "WireMock": lambda: wiremock(wiremock_jar(options.wiremock_jar), run.SUBMIT_PATH),
        "bria-mock, 1 process": lambda: bria_mock(),
        "bria-mock, 1 process, --access-log": lambda: bria_mock("--access-log", "true"),
        "bria-mock, --workers 2 (shared state)": lambda: bria_mock_workers(2),
        "bria-mock, 1 process, --state redis://": bria_mock_redis,
        "bare Starlette, same stack": lambda: baseline(options.loop, options.http),
    }
    with ExitStack() as running:
        for name, start in starters.items():
            try:
                peers[name].base_url = running.enter_context(start())
            except (Unavailable, RuntimeError, subprocess.SubprocessError, OSError) as exc:
                peers[name].unavailable = str(exc).splitlines()[0][:200]
                print(f"  {name}: not available ({peers[name].unavailable})", flush=True)
        live = [peer for peer in peers.values() if peer.base_url]
        for round_number in range(options.rounds + 1):
            warm_up = round_number == 0
            for route in ("submit", "status"):
                for peer in live:
                    assert peer.base_url is not None
                    if route == "submit":
                        request = submit
                    elif peer.name.startswith("bria-mock"):
                        request = run.get(f"/v2/status/{new_job_id(peer.base_url, tiny)}")
                    else:
                        request = run.get(f"/v2/status/{ZEROS}")
                    expect = 202 if route == "submit" else 200
                    check_once(peer.base_url, request, expect)
                    result = drive(peer.base_url, request, options, WARM_UP_SECONDS if warm_up else options.duration)
                    if warm_up:
                        continue
                    if result.non_2xx or result.socket_errors:
                        wrong = f"{result.non_2xx} non-2xx, {result.socket_errors} socket errors"
                        print(f"  warning: {peer.name} {route}: {wrong}")
                    peer.runs.setdefault(route, []).append(result)
                    print(f"  round {round_number}: {peer.name}, {route}: {result.rps:,.0f} req/s", flush=True)
    return peers_report(peers)


def peers_report(peers: dict[str, Peer]) -> dict[str, Any]:
    rows = []
    for peer in peers.values():
        row: dict[str, Any] = {"server": peer.name}
        if not peer.base_url:
            row["unavailable"] = peer.unavailable
        for route, runs in peer.runs.items():
            rates = [result.rps for result in runs]
            row[route] = {
                "rps": statistics.median(rates),
                "range": [min(rates), max(rates)],
                "p50_ms": statistics.median(result.p50_ms for result in runs),
                "p99_ms": statistics.median(result.p99_ms for result in runs),
                "rounds": rates,
            }
        rows.append(row)
    return {"rows": rows, "targets": targets(peers)}


# (numerator, denominator, route, at least): the targets (docs/performance.md), as ratios of per-round rates.
TARGETS = (
    ("bria-mock, 1 process", "bare Starlette, same stack", "submit", 0.6),
    ("bria-mock, 1 process", "bare Starlette, same stack", "status", 0.7),
    ("bria-mock, --workers 2 (shared state)", "WireMock", "submit", 1.0),
    ("bria-mock, --workers 2 (shared state)", "WireMock", "status", 1.0),
    ("bria-mock, 1 process, --state redis://", "bria-mock, 1 process", "submit", 0.7),
    ("bria-mock, 1 process, --state redis://", "bria-mock, 1 process", "status", 0.7),
)


def targets(peers: dict[str, Peer]) -> list[dict[str, Any]]:
    """Each target as the median of its per-round ratios (the two runs of a round are minutes apart at most)."""
    out = []
    for top, bottom, route, least in TARGETS:
        row: dict[str, Any] = {"ratio_of": f"{top} / {bottom}", "route": route, "target": f">= {least}"}
        a, b = peers[top].runs.get(route), peers[bottom].runs.get(route)
        if a and b:
            ratios = [x.rps / y.rps for x, y in zip(a, b, strict=True)]
            row.update(ratio=statistics.median(ratios), range=[min(ratios), max(ratios)])
            row["met"] = row["ratio"] >= least
        else:
            row["ratio"] = None
        out.append(row)
    return out


def peers_table(report: dict[str, Any]) -> str:
    out = [
        "| server | submit req/s (range) | submit p50 / p99 ms | status req/s (range) | status p50 / p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        if "unavailable" in row:
            out.append(f"| {row['server']} | not available | | not available | |")
            continue
        cells = []
        for route in ("submit", "status"):
            data = row[route]
            low, high = data["range"]
            cells.append(f"{data['rps']:,.0f} ({low:,.0f}-{high:,.0f})")
            cells.append(f"{data['p50_ms']:.2f} / {data['p99_ms']:.2f}")
        out.append(f"| {row['server']} | " + " | ".join(cells) + " |")
    out += ["", "| ratio | route | median (range) | target | met |", "|---|---|---:|---|---|"]
    for row in report["targets"]:
        if row["ratio"] is None:
            out.append(f"| {row['ratio_of']} | {row['route']} | not available | {row['target']} | |")
            continue
        low, high = row["range"]
        met = "yes" if row["met"] else "**no**"
        ratio = f"{row['ratio']:.2f} ({low:.2f}-{high:.2f})"
        out.append(f"| {row['ratio_of']} | {row['route']} | {ratio} | {row['target']} | {met} |")
    return "\n".join(out)
