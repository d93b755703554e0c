"""``bria-mock verify`` run as users run it, in child processes, all at once (the runs are mostly
start-up; two cores overlap them):

- the live path without the real service: the fake started as a separate process and verified by
  URL, as ``bria-mock verify --target URL --token T`` would verify production; the same with no token;
- seeded drift: a proxy in front of the fake breaks one thing, and the report must name exactly that
  deviation, its kind and its field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from mock_server.config import Settings
from mock_server.drift import compare_recording
from mock_server.server import ServerThread
from mock_server.verify import HYPOTHESIS_PLUGIN, suite_directory
from tests.conftest import free_port

pytestmark = pytest.mark.subprocess  # the suite and verify run in their own processes

LIVE_TOKEN = "live-token-3c9e"
LIVE_SELECTION = "conformance or remove_background"
# Variables that would change which target or profile the child runs choose.
_CHOOSERS = ("BRIA_BASE_URL", "BRIA_API_TOKEN", "HYPOTHESIS_PROFILE", "PYTEST_ADDOPTS")
SKIP_REASONS = ("fake only:", "moderation-triggering or deliberately broken", "spend cap reached")
Breakage = Callable[[str, int, str, bytes], tuple[str, bytes]]
_HOP_BY_HOP = {"content-length", "connection", "transfer-encoding", "keep-alive"}


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _CHOOSERS and not k.startswith("BRIA_MOCK_")}


# --- seeded drift: one breakage per proxy ---------------------------------------------------


def edit_json(change: Callable[[Any], None]) -> Callable[[bytes], bytes]:
    def edit(content: bytes) -> bytes:
        body = json.loads(content)
        change(body)
        return json.dumps(body).encode()

    return edit


def drop_status_url(path: str, status: int, content_type: str, content: bytes) -> tuple[str, bytes]:
    if status != 202:
        return content_type, content
    return content_type, edit_json(lambda body: body.pop("status_url"))(content)


def code_as_string(path: str, status: int, content_type: str, content: bytes) -> tuple[str, bytes]:
    if status < 400 or not path.startswith("/v2/"):
        return content_type, content
    return content_type, edit_json(lambda body: body["error"].update(code=str(body["error"]["code"])))(content)


def undocumented_result_field(path: str, status: int, content_type: str, content: bytes) -> tuple[str, bytes]:
    if status != 200 or not path.startswith("/v2/image/edit/"):
        return content_type, content
    return content_type, edit_json(lambda body: body["result"].update(debug=True))(content)


def text_plain(path: str, status: int, content_type: str, content: bytes) -> tuple[str, bytes]:
    return ("text/plain", content) if path.startswith("/v2/") else (content_type, content)


def completed_is_done(path: str, status: int, content_type: str, content: bytes) -> tuple[str, bytes]:
    if not path.startswith("/v2/status/") or b'"COMPLETED"' not in content:
        return content_type, content
    return content_type, edit_json(lambda body: body.update(status="DONE"))(content)


@dataclasses.dataclass(frozen=True)
class Drift:
    breakage: Breakage
    keyword: str  # the few tests that meet it: one verify run stays short
    expected: frozenset[tuple[str, str]]


DRIFTS = {
    "202-without-status_url": Drift(
        drop_status_url, "test_an_async_call_answers_202", frozenset({("missing_field", "status_url")})
    ),
    "error-code-as-string": Drift(code_as_string, "test_a_missing_token", frozenset({("type_mismatch", "error.code")})),
    "undocumented-result-field": Drift(
        undocumented_result_field, "test_a_sync_call_answers_200", frozenset({("extra_field", "result.debug")})
    ),
    "text-plain": Drift(
        text_plain, "test_the_status_of_an_id_never_issued", frozenset({("wrong_content_type", "Content-Type")})
    ),
    "job-state-renamed": Drift(
        completed_is_done, "test_an_async_call_answers_202", frozenset({("enum_mismatch", "status")})
    ),
}


class BreakingProxy:
    """An ASGI app that forwards everything to the fake and breaks its answers one way."""

    def __init__(self, upstream: str, breakage: Breakage) -> None:
        self.upstream = upstream
        self.breakage = breakage

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        # The Host header goes through: the fake then hands out URLs on the proxy.
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in _HOP_BY_HOP]
        query = f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        # Plain HTTP to loopback: no TLS context to build (that costs ~50 ms of CPU per client).
        async with httpx.AsyncClient(timeout=60, verify=False, trust_env=False) as client:
            answer = await client.request(
                scope["method"], f"{self.upstream}{scope['path']}{query}", headers=headers, content=body
            )
        content_type, content = self.breakage(
            scope["path"], answer.status_code, answer.headers.get("content-type", ""), answer.content
        )
        out = [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
        if "retry-after" in answer.headers:
            out.append((b"retry-after", answer.headers["retry-after"].encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": content})


class Served:
    """An ASGI app on uvicorn on a daemon thread, on a free port."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


# --- the runs -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished child run: where it ran, its exit status and output, and its report if it wrote one."""

    work: Path
    exit_status: int
    output: str

    @property
    def report(self) -> dict[str, Any]:
        path = self.work / "report" / "report.json"
        return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture(scope="module")
def served_fake() -> Iterator[str]:
    """``python -m mock_server serve`` on a free port, up and answering."""
    port = free_port()
    command = [sys.executable, "-m", "mock_server", "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_environment())
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()[0]
        try:
            httpx.get(f"{base_url}/bria-mock/health", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the fake did not come up"
            time.sleep(0.05)
    yield base_url
    process.terminate()
    process.communicate(timeout=15)


def commands(served_fake: str, proxies: dict[str, Served]) -> dict[str, list[str]]:
    """Every child run: verify of the "live" fake (with a recording), the suite with no token, each drift."""
    verify = [sys.executable, "-m", "mock_server.verify", "--report-dir", "report"]
    runs = {
        # The conformance tests and remove_background's properties: past the spend cap, with every kind of skip.
        "live": [
            *verify,
            "--target",
            served_fake,
            "--token",
            LIVE_TOKEN,
            "--record",
            "recording",
            "-k",
            LIVE_SELECTION,
        ],
        "tokenless": [
            *[sys.executable, "-m", "pytest", str(suite_directory()), "-p", "no:cacheprovider", "-rs"],
            *["-o", "addopts="],  # not the project's own options (-n needs xdist, which autoload would bring)
            *["--disable-plugin-autoload", "-p", HYPOTHESIS_PLUGIN, "--bria-target", served_fake],
            *["--bria-report-dir", "report"],
        ],
    }
    for name, drift in DRIFTS.items():
        runs[name] = [*verify, "--target", proxies[name].base_url, "--token", "drift-token", "-k", drift.keyword]
    return runs


def run_all(pending: dict[str, tuple[Path, list[str]]], logs: Path) -> dict[str, Run]:
    """Start every command at once, then wait for each. Output goes to files: a child never blocks
    on a full pipe while another is awaited."""
    started = {}
    for name, (work, command) in pending.items():
        log = (logs / f"{name}.log").open("w")
        process = subprocess.Popen(command, cwd=work, env=clean_environment(), stdout=log, stderr=subprocess.STDOUT)
        started[name] = (work, process, log)
    done = {}
    for name, (work, process, log) in started.items():
        process.wait(timeout=600)
        log.close()
        done[name] = Run(work, process.returncode, (logs / f"{name}.log").read_text())
    return done


@pytest.fixture(scope="module")
def runs(served_fake: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """All the child runs, started together and awaited."""
    with ServerThread(Settings()) as fake:
        proxies = {name: Served(BreakingProxy(fake.base_url, drift.breakage)) for name, drift in DRIFTS.items()}
        try:
            pending = {
                name: (tmp_path_factory.mktemp(name), command)
                for name, command in commands(served_fake, proxies).items()
            }
            done = run_all(pending, tmp_path_factory.mktemp("logs"))
        finally:
            for proxy in proxies.values():
                proxy.stop()
    yield done


# --- the live path ----------------------------------------------------------------------------


def test_the_suite_passes_against_a_live_url_and_reports_what_it_spent(runs: dict[str, Run], served_fake: str) -> None:
    run = runs["live"]
    report = run.report

    assert run.exit_status == 0, run.output
    # Live by the rules it runs under, and named for what it is: a bria-mock served at that URL.
    assert report["target"] == {"url": served_fake, "live": True, "source": "--bria-target", "bria_mock": True}
    assert (
        run.output.splitlines()[0]
        == f"bria-mock verify: target: {served_fake} (a bria-mock, not Bria's service, from --target)"
    )
    assert report["summary"]["ok"] and report["summary"]["tests"]["failed"] == 0
    assert report["summary"]["tests"]["passed"] >= 10
    # The default cap of 20 is reached, and the tests after it are skipped saying so.
    assert (report["spend"]["billable_calls"], report["spend"]["max_calls"]) == (20, 20)
    assert report["spend"]["refused_by_cap"] > 0
    assert "spent: 20 billable call(s) (cap 20)" in run.output
    skipped = [test["message"] for test in report["tests"] if test["outcome"] == "skipped"]
    assert skipped and all(message.startswith(SKIP_REASONS) for message in skipped), skipped
    assert any(message.startswith("fake only:") for message in skipped)
    assert sorted(path.name for path in run.work.iterdir()) == ["recording", "report"]  # nothing else in the cwd


def test_the_recording_of_a_live_run_compared_with_a_fresh_fake_shows_no_drift(runs: dict[str, Run]) -> None:
    recording = runs["live"].work / "recording"

    report = compare_recording(recording)

    assert report["ok"], report["differences"]
    assert report["compared"] > 20
    assert LIVE_TOKEN not in (recording / "exchanges.jsonl").read_text()


def test_a_live_target_without_a_token_skips_every_test_saying_why(runs: dict[str, Run], served_fake: str) -> None:
    run = runs["tokenless"]
    report = run.report

    assert run.exit_status == 0, run.output
    assert report["summary"]["tests"]["passed"] == 0 and report["summary"]["responses"] == 0
    assert {test["message"] for test in report["tests"]} == {
        f"live target {served_fake} chosen (--bria-target) but no token: pass --bria-token or set BRIA_API_TOKEN"
    }
    assert report["summary"]["ok"] is False  # nothing was verified


# --- seeded drift ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DRIFTS))
def test_verify_names_exactly_the_seeded_deviation(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    report = run.report

    assert run.exit_status == 1, run.output
    assert report["summary"]["ok"] is False
    assert {(entry["kind"], entry["field"]) for entry in report["deviations"]} == DRIFTS[name].expected, run.output
    assert any(row["result"] == "fail" for row in report["endpoints"])
