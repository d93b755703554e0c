"""Deadlines on connections: a client that sends no request, dribbles its request head or stalls
its body gives its connection back; many such clients never shut others out."""

from __future__ import annotations

import json
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from mock_server.app import create_app
from mock_server.config import Settings
from mock_server.connection_limits import HTTP_PARSERS, GuardedHttpToolsProtocol
from mock_server.server import ServerThread, uvicorn_config

pytestmark = pytest.mark.socket


@pytest.fixture(params=HTTP_PARSERS)
def make_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerThread]]:
    """A dedicated fake with some settings changed, on each HTTP parser the fake can run on."""
    started: list[ServerThread] = []

    def make(**changes: Any) -> ServerThread:
        server = ServerThread(Settings(**changes), http=request.param).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def test_the_fake_is_served_on_httptools_and_uvloop() -> None:
    config = uvicorn_config(create_app(Settings()), Settings())
    config.load()
    assert issubclass(config.http_protocol_class, GuardedHttpToolsProtocol)
    assert config.get_loop_factory() is uvloop.new_event_loop


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None when it is still open after ``seconds``."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    return received


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(header_timeout_seconds=0.3)
    with socket.create_connection((server.host, server.port)) as idle:
        assert closed_within(idle, 3) == b""  # closed, with nothing said
    assert httpx.get(f"{server.base_url}/bria-mock/health").status_code == 200


def test_a_dribbled_request_head_is_cut_off(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(header_timeout_seconds=0.5)
    with socket.create_connection((server.host, server.port)) as slow:
        started = time.monotonic()
        for piece in (b"GET /v2/status/x HTTP/1.1\r\n", b"Host: a\r\n", b"api_token: t\r\n"):
            slow.sendall(piece)
            time.sleep(0.2)  # each piece in time for nothing: the deadline is on the whole head
        assert closed_within(slow, 3) == b""
    assert time.monotonic() - started < 2.5


def test_a_stalled_body_is_408_and_runs_nothing(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(body_timeout_seconds=0.3)
    body = json.dumps({"image": f"{server.base_url}/samples/subject.jpg"}).encode()
    head = (
        "POST /v2/image/edit/remove_background HTTP/1.1\r\nHost: a\r\napi_token: t\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body) + 50}\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port)) as stalled:
        stalled.sendall(head.encode() + body)  # 50 bytes short, and then nothing
        stalled.settimeout(3)
        answer = b""
        while b"body_timeout_seconds" not in answer and (chunk := stalled.recv(65536)):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 408")
    assert b"body_timeout_seconds" in answer
    assert server.backend.jobs.count() == 0


def test_keep_alive_requests_in_time_are_served_on_one_connection(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(header_timeout_seconds=0.5)
    with httpx.Client(base_url=server.base_url, headers={"api_token": "t"}) as client:
        for _ in range(3):
            assert client.get("/v2/status/x").status_code == 404
            time.sleep(0.3)  # under the deadline each time, over it in all


@pytest.mark.subprocess
def test_a_thousand_idle_sockets_never_shut_out_the_health_check(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        pytest.skip(f"this test opens 1,100 sockets; the hard limit on open files here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--header-timeout-seconds", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)),
    )
    idle: list[socket.socket] = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/bria-mock/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the fake did not come up"
                time.sleep(0.05)
        for _ in range(1100):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            idle.append(sock)
        started = time.monotonic()
        answered = None
        while answered is None and time.monotonic() - started < 10:
            try:
                answered = httpx.get(f"{base_url}/bria-mock/health", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.2)
        log_size = (tmp_path / "serve.log").stat().st_size
    finally:
        for sock in idle:
            sock.close()
        server.terminate()
        server.wait(timeout=15)
        log.close()

    assert answered == 200  # the idle ones were closed after the header timeout: descriptors came back
    assert log_size < 200_000, f"the log grew by {log_size} bytes"


def test_pipelined_requests_are_all_answered_then_an_idle_connection_is_closed(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(header_timeout_seconds=0.5)
    request = b"GET /bria-mock/health HTTP/1.1\r\nHost: a\r\n\r\n"
    with socket.create_connection((server.host, server.port)) as pipelined:
        pipelined.sendall(request * 3)  # three heads in one write: none is owed a deadline after it arrives
        received = closed_within(pipelined, 3)
    assert received is not None  # closed: after the last answer, no head came
    assert received.count(b"HTTP/1.1 200") == 3


@pytest.mark.parametrize(
    "headers", [b"X-Big: " + b"a" * 200_000 + b"\r\n", b"X-Small: a\r\n" * 20_000], ids=["one-header", "many-headers"]
)
def test_an_oversized_request_head_is_400_and_the_connection_closed(headers: bytes) -> None:
    """httptools keeps whatever head it is sent; the fake's protocol stops at MAX_HEAD_BYTES."""
    head = b"GET /bria-mock/health HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n"
    with ServerThread(Settings()) as server, socket.create_connection((server.host, server.port)) as big:
        sent = 0
        # In pieces, each read by the server before the next: once it answers, nothing unread is left
        # in its socket, so it closes cleanly (a reset would drop its answer) and the rest is not sent.
        while sent < len(head) and not select.select([big], [], [], 0.02)[0]:
            big.sendall(head[sent : sent + 8192])
            sent += 8192
        received = closed_within(big, 5)
    assert sent < len(head)
    assert received is not None and received.startswith(b"HTTP/1.1 400")
