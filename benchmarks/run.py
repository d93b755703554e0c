"""The fake under load, side by side with a bare Starlette app on the same uvicorn settings.

Starts the fake (``create_app(Settings())``) and the baseline (``baseline_app.py``: constant
JSON) as two uvicorn processes on free loopback ports, with identical settings (``serve.py``:
same loop and HTTP implementation, 1 worker, no access log, log level warning), and measures:

1. peers (``peers.py``): WireMock, bria-mock as ``bria-mock serve`` runs it (one process, ``--workers 2``,
   ``--state redis://``) and the bare app on the same stack, on submit and status, in one table;
2. async submit (202, tiny JPEG, full validation, journal on) vs the bare POST;
3. status poll of an existing job vs the bare GET;
4. the error paths, 401 (no token) and 400 (invalid body), vs the bare POST;
5. the submit path's p99 vs its p50 under load;
6. sync remove_background / replace_background on a ~1 MP JPEG over HTTP vs bare Pillow
   (decode the JPEG, encode an RGBA PNG of its size), timed in the same run;
7. start-up (``startup.py``): ``import mock_server`` in a fresh interpreter, the pytest plugin's
   import, ``ServerThread().start()`` until ready, the fixtures' cost per test;
8. memory: RSS of one fake after 10,000 and after 100,000 async jobs (``--skip-memory``: the long one;
   with state on a store: ``memory_store.py``).

Server processes are ``servers.py``; load generators ``loadgen.py``.

Load runs use wrk when it is installed (else a Python asyncio client) at ``--connections``;
the load generator shares the machine's cores with the server, so ratios, not absolute numbers,
are what count. Load scenarios run in interleaved rounds, each right after its own baseline run
(medians reported), and every loop is bounded by time or count. Only loopback addresses are used.

    python benchmarks/run.py [--duration 3] [--rounds 5] [--connections 32] [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run against this checkout even when the package is not installed
sys.path.insert(0, str(HERE))

import bench_imaging  # noqa: E402
import loadgen  # noqa: E402
import peers  # noqa: E402
from loadgen import LoadResult, Request  # noqa: E402
from servers import Served, peak_rss, served  # noqa: E402
from startup import run_startup  # noqa: E402

TOKEN = "bench-token"
SUBMIT_PATH = "/v2/image/edit/remove_background"
REPLACE_PATH = "/v2/image/edit/replace_background"
DEFAULT_JSON = HERE / "results" / "latest.json"
MEMORY_FIRST, MEMORY_TOTAL = 10_000, 100_000
MEMORY_TIME_LIMIT = 900.0  # seconds: the memory scenario stops by then, whatever it has reached


# --- inputs -------------------------------------------------------------------------------


def tiny_jpeg() -> bytes:
    """A 32x32 JPEG: a subject on a plain background, a few hundred bytes."""
    image = Image.new("RGB", (32, 32), (210, 215, 225))
    ImageDraw.Draw(image).ellipse((8, 6, 24, 28), fill=(170, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def json_body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def submit_body(image: bytes, **fields: Any) -> bytes:
    return json_body(image=base64.b64encode(image).decode(), **fields)


def post(path: str, body: bytes, token: str | None = TOKEN) -> Request:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["api_token"] = token
    return Request("POST", path, headers, body)


def get(path: str, token: str | None = TOKEN) -> Request:
    return Request("GET", path, {"api_token": token} if token is not None else {})


# --- load scenarios (2, 3, 4, 5) ------------------------------------------------------------


@dataclass
class Scenario:
    """One load scenario: what to send, where, the status it must get, and its baseline."""

    name: str
    server: str  # "fake" or "baseline"
    make_request: Callable[[Served], Request]
    expect: int
    baseline: str | None = None  # the scenario it is compared with
    target: float | None = None  # ratio to the baseline, at least
    runs: list[LoadResult] = field(default_factory=list)
    paired: list[LoadResult] = field(default_factory=list)  # the baseline run just before each run


def scenarios() -> list[Scenario]:
    tiny = tiny_jpeg()
    valid = submit_body(tiny)
    invalid = json_body(preserve_alpha="yes")  # no image, and a wrong type: 400 naming a field
    return [
        Scenario("bare POST (baseline)", "baseline", lambda _: post(SUBMIT_PATH, valid), 202),
        Scenario("async submit (202)", "fake", lambda _: post(SUBMIT_PATH, valid), 202, "bare POST (baseline)", 0.6),
        Scenario(
            "401, no api_token", "fake", lambda _: post(SUBMIT_PATH, valid, None), 401, "bare POST (baseline)", 0.7
        ),
        Scenario("400, invalid body", "fake", lambda _: post(SUBMIT_PATH, invalid), 400, "bare POST (baseline)", 0.7),
        Scenario("bare GET (baseline)", "baseline", lambda _: get("/v2/status/" + "0" * 32), 200),
        Scenario(
            "status poll (200)",
            "fake",
            lambda fake: get(f"/v2/status/{new_job(fake, tiny)}"),
            200,
            "bare GET (baseline)",
            0.7,
        ),
    ]


def new_job(fake: Served, image: bytes) -> str:
    """A fresh async job on the fake, polled once so that later polls answer COMPLETED."""
    with httpx.Client(base_url=fake.base_url, headers={"api_token": TOKEN}, timeout=30) as client:
        answer = client.post(SUBMIT_PATH, content=submit_body(image), headers={"Content-Type": "application/json"})
        answer.raise_for_status()
        request_id: str = answer.json()["request_id"]
        client.get(f"/v2/status/{request_id}")
        return request_id


def check_once(server: Served, request: Request, expect: int) -> None:
    """One request with a plain client: the scenario really gets the answer it is meant to measure."""
    answer = httpx.request(
        request.method, server.base_url + request.path, headers=dict(request.headers), content=request.body, timeout=30
    )
    if answer.status_code != expect:
        raise RuntimeError(f"{request.method} {request.path}: expected {expect}, got {answer.status_code}")


def drive(base_url: str, request: Request, options: argparse.Namespace, duration: float) -> LoadResult:
    if options.loadgen == "wrk":
        return loadgen.run_wrk(
            base_url, request, connections=options.connections, duration=duration, threads=options.threads
        )
    return loadgen.run_python(base_url, request, connections=options.connections, duration=duration)


def run_load(servers: dict[str, Served], options: argparse.Namespace) -> list[Scenario]:
    """Every load scenario, in ``options.rounds`` interleaved rounds (after one short warm-up each).

    Each scenario with a baseline runs right after its own run of that baseline, so that the pair
    shares the machine's state (other load on shared cores drifts over a round).
    """
    cases = scenarios()
    by_name = {case.name: case for case in cases}
    for round_number in range(options.rounds + 1):
        warm_up = round_number == 0
        for case in cases:
            if case.baseline is None:
                continue
            for each in (by_name[case.baseline], case):
                result = _measure(servers, each, options, warm_up)
                if result is None:
                    continue
                each.runs.append(result)
                if each is case:
                    case.paired.append(by_name[case.baseline].runs[-1])
                    print(
                        f"  round {round_number}: {case.name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms ({result.rps / case.paired[-1].rps:.2f} x its baseline run)",
                        flush=True,
                    )
    return cases


def _measure(
    servers: dict[str, Served], case: Scenario, options: argparse.Namespace, warm_up: bool
) -> LoadResult | None:
    """One load run of a scenario (None for a warm-up run), its answers checked first."""
    server = servers[case.server]
    request = case.make_request(server)
    check_once(server, request, case.expect)
    for each in servers.values():
        each.wait_idle()
    result = drive(server.base_url, request, options, duration=1.0 if warm_up else options.duration)
    if warm_up:
        return None
    wrong = result.requests - result.non_2xx if case.expect >= 400 else result.non_2xx
    if wrong or result.socket_errors:
        print(f"  warning: {case.name}: {wrong} unexpected answers, {result.socket_errors} socket errors")
    return result


def load_rows(cases: list[Scenario]) -> list[dict[str, Any]]:
    """Medians over the runs; a ratio is the median of the ratios to the baseline run just before each run."""
    rows = []
    for case in cases:
        row: dict[str, Any] = {
            "scenario": case.name,
            "rps": statistics.median(run.rps for run in case.runs),
            "p50_ms": statistics.median(run.p50_ms for run in case.runs),
            "p99_ms": statistics.median(run.p99_ms for run in case.runs),
            "rounds": [run.to_json() for run in case.runs],
        }
        if case.baseline is not None:
            pairs = zip(case.runs, case.paired, strict=True)
            ratios = [a.rps / b.rps for a, b in pairs]
            row.update(baseline=case.baseline, ratio=statistics.median(ratios), ratio_range=[min(ratios), max(ratios)])
            row.update(target=f">= {case.target}", met=row["ratio"] >= (case.target or 0))
        rows.append(row)
    return rows


# --- sync imaging over HTTP (6) ---------------------------------------------------------------


def run_sync(fake: Served, runs: int) -> list[dict[str, Any]]:
    """Sequential sync calls on a ~1 MP JPEG, interleaved with the bare Pillow baseline."""
    data = bench_imaging.make_jpeg()
    image = base64.b64encode(data).decode()
    with httpx.Client(base_url=fake.base_url, headers={"api_token": TOKEN}, timeout=120) as client:

        def call(path: str, **fields: Any) -> None:
            answer = client.post(path, json={"image": image, "sync": True, **fields})
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: expected 200, got {answer.status_code}: {answer.text[:200]}")

        cases: dict[str, Callable[[], object]] = {
            "bare Pillow: decode JPEG + encode RGBA PNG": lambda: bench_imaging.baseline(data),
            "sync remove_background over HTTP": lambda: call(SUBMIT_PATH),
            "sync replace_background over HTTP (text, base)": lambda: call(
                REPLACE_PATH, prompt="a red car in a parking lot at night", mode="base", seed=42
            ),
        }
        fake.wait_idle()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for run in range(runs + 1):
            for name, case in cases.items():
                seconds = bench_imaging.seconds(case)
                if run:  # the first round warms up
                    times[name].append(seconds)
    base = statistics.median(times[next(iter(cases))])
    rows = []
    for number, (name, samples) in enumerate(times.items()):
        ms = 1000 * statistics.median(samples)
        row: dict[str, Any] = {"case": name, "ms": ms, "ratio": ms / 1000 / base}
        if number:
            row.update(target="<= 1.5", met=row["ratio"] <= 1.5)
        rows.append(row)
    return rows


# --- memory (8) -----------------------------------------------------------------------------------


def run_memory(loop: str, http: str, connections: int) -> dict[str, Any]:
    """RSS of one fake after 10,000 and after 100,000 async jobs with tiny images."""
    request = post(SUBMIT_PATH, submit_body(tiny_jpeg()))
    stages = [(f"after {MEMORY_FIRST:,}", MEMORY_FIRST), (f"after {MEMORY_TOTAL:,}", MEMORY_TOTAL - MEMORY_FIRST)]
    with served("fake", loop, http) as fake:
        rss = {"start": fake.rss_mb()}
        results: list[LoadResult] = []
        started = time.monotonic()
        with peak_rss(fake) as peak:
            for label, count in stages:
                left = MEMORY_TIME_LIMIT - (time.monotonic() - started)
                results.append(
                    loadgen.run_python(fake.base_url, request, connections=connections, duration=left, count=count)
                )
                fake.wait_idle()  # background jobs done: what is left is what is kept
                rss[label] = fake.rss_mb()
                print(f"  memory: {label} jobs: {rss[label]:.1f} MB RSS", flush=True)
    jobs = sum(result.requests for result in results)
    seconds = sum(result.seconds for result in results)
    growth = rss[stages[1][0]] - rss[stages[0][0]]
    return {
        "jobs": jobs,
        "accepted_202": sum(result.statuses.get("202", 0) for result in results),
        "rps": jobs / seconds if seconds else 0.0,
        "rss_mb": rss,
        "peak_rss_mb": max(peak[0], *rss.values()),
        "growth_mb": growth,
        "target": "<= 50 MB growth",
        "met": jobs >= MEMORY_TOTAL and growth <= 50,
    }


# --- report ---------------------------------------------------------------------------------------


def machine(servers: dict[str, Served], options: argparse.Namespace) -> dict[str, Any]:
    info = bench_imaging.machine()
    fake = servers["fake"]
    info.update(
        uvicorn=version("uvicorn"),
        uvloop=_version_of("uvloop"),
        httptools=_version_of("httptools"),
        starlette=version("starlette"),
        loop=fake.loop,
        http=fake.http,
        loadgen=f"wrk -t{options.threads}" if options.loadgen == "wrk" else "python asyncio client",
        connections=options.connections,
        duration_s=options.duration,
        rounds=options.rounds,
    )
    return info


def _version_of(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def tables(report: dict[str, Any]) -> str:
    out = []
    if "peers" in report:
        out += [peers.peers_table(report["peers"]), ""]
    if "load" in report:
        out += ["| scenario | req/s | p50 ms | p99 ms | ratio | target | met |", "|---|---:|---:|---:|---:|---|---|"]
        for row in report["load"]:
            ratio = ""
            if "ratio" in row:
                low, high = row["ratio_range"]
                ratio = f"{row['ratio']:.2f} x {row['baseline'].split(' (')[0]} ({low:.2f}-{high:.2f})"
            met = _yes(row["met"]) if "met" in row else ""
            out.append(
                f"| {row['scenario']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
                f"{ratio} | {row.get('target', '')} | {met} |"
            )
        tail = report["tail_latency"]
        out.append(f"| submit p99 / p50 | | | | {tail['ratio']:.2f} | {tail['target']} | {_yes(tail['met'])} |")
        out.append("")
    if "sync" in report:
        out += ["| sync call, ~1 MP JPEG | ms (median) | x bare Pillow | target | met |", "|---|---:|---:|---|---|"]
        for row in report["sync"]:
            met = _yes(row["met"]) if "met" in row else ""
            out.append(f"| {row['case']} | {row['ms']:.1f} | {row['ratio']:.2f} | {row.get('target', '')} | {met} |")
        out.append("")
    if "startup" in report:
        out += ["| start-up | ms (median) | target |", "|---|---:|---|"]
        targets = {
            "import mock_server": "< 300",
            "import mock_server.server + first start (the session fixture)": "< 300",
            "create_app + SyncASGITransport client, open and close (bria_client, per test)": "< 2",
        }
        out += [f"| {name} | {1000 * s:.2f} | {targets.get(name, '')} |" for name, s in report["startup"].items()]
        out.append("")
    if "memory" in report:
        memory = report["memory"]
        out += ["| memory (one fake, async jobs, tiny images) | RSS MB |", "|---|---:|"]
        out += [f"| {label} | {mb:.1f} |" for label, mb in memory["rss_mb"].items()]
        out.append(f"| peak | {memory['peak_rss_mb']:.1f} |")
        out.append(
            f"| growth from 10,000 to 100,000 jobs (target {memory['target']}) | {memory['growth_mb']:+.1f} "
            f"({_yes(memory['met'])}) |"
        )
        out.append(
            f"| jobs sent / accepted, req/s | {memory['jobs']:,} / {memory['accepted_202']:,}, {memory['rps']:,.0f} |"
        )
    return "\n".join(out)


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def tail_latency(rows: list[dict[str, Any]]) -> dict[str, Any]:
    submit = next(row for row in rows if row["scenario"] == "async submit (202)")
    ratio = statistics.median(run["p99_ms"] / run["p50_ms"] for run in submit["rounds"])
    return {"p50_ms": submit["p50_ms"], "p99_ms": submit["p99_ms"], "ratio": ratio, "target": "<= 3", "met": ratio <= 3}


# --- main -------------------------------------------------------------------------------------------

SECTIONS = ("peers", "load", "sync", "startup", "memory")


def options_from(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load run (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of load runs, medians reported")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: it shares the cores)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop for both apps (auto: uvloop when installed)")
    parser.add_argument("--http", default="auto", help="uvicorn --http for both apps (auto: httptools when installed)")
    parser.add_argument("--sync-runs", type=int, default=7, help="sequential sync calls per case (median reported)")
    parser.add_argument("--startup-runs", type=int, default=7, help="fresh interpreters / server starts to time")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[], help="leave a section out")
    parser.add_argument("--skip-memory", action="store_true", help="same as --skip memory (the long one)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s, 1 round, 3 sync runs, no memory")
    parser.add_argument("--wiremock-jar", type=Path, help=f"WireMock's jar (default: npm's in {peers.WIREMOCK_CACHE})")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help=f"default {DEFAULT_JSON}")
    options = parser.parse_args(argv)
    if options.quick:
        options.duration, options.rounds, options.sync_runs, options.startup_runs = 2.0, 1, 3, 3
        options.skip_memory = True
    if options.skip_memory:
        options.skip.append("memory")
    if options.loadgen == "auto":
        options.loadgen = "wrk" if loadgen.wrk_available() else "python"
    return options


def main(argv: list[str] | None = None) -> None:
    """Measure every section not skipped, print the tables, write the JSON report."""
    options = options_from(argv)
    # SIGTERM ends the run as Ctrl-C does: every server it started (WireMock, workers, stores) is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    found = "" if loadgen.wrk_available() else " (wrk not found)"
    print(f"load generator: {'wrk' if options.loadgen == 'wrk' else 'python asyncio client' + found}")
    report: dict[str, Any] = {}
    if "peers" not in options.skip:
        print("peers: WireMock, bria-mock serve (1 process, --workers 2, --state redis://), bare Starlette")
        report["peers"] = peers.run_peers(options, drive)
    with served("fake", options.loop, options.http) as fake, served("baseline", options.loop, options.http) as bare:
        servers = {"fake": fake, "baseline": bare}
        report["machine"] = machine(servers, options)
        print(
            f"uvicorn: loop {fake.loop}, http {fake.http}, 1 worker, access log off; {options.connections} connections"
        )
        if "load" not in options.skip:
            report["load"] = load_rows(run_load(servers, options))
            report["tail_latency"] = tail_latency(report["load"])
        if "sync" not in options.skip:
            bare.stop()  # sequential calls: nothing else should run
            report["sync"] = run_sync(fake, options.sync_runs)
    if "startup" not in options.skip:
        report["startup"] = run_startup(options.startup_runs)
    if "memory" not in options.skip:
        report["memory"] = run_memory(options.loop, options.http, options.connections)
    info = report["machine"]
    print(
        f"\n{info['cpu']}, {info['cores']} cores; Python {info['python']}, uvicorn {info['uvicorn']}, "
        f"uvloop {info['uvloop']}, httptools {info['httptools']}, "
        f"starlette {info['starlette']}; loop {info['loop']}, http {info['http']}; load: {info['loadgen']}, "
        f"{info['connections']} connections, {info['rounds']} x {info['duration_s']:g} s\n"
    )
    print(tables(report))
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {options.json}")


if __name__ == "__main__":
    main()
