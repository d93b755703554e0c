"""``bria-mock serve --workers N`` as a user runs it: real processes on one port, a real Valkey/Redis server.

Which worker answered a connection is read from ``/proc`` (the worker holding the accepted socket),
so these tests need Linux.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server.state_server import NO_SERVER, PrivateStateServer, find_server_binary
from tests.conftest import free_port

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads processes and sockets from Linux's /proc"),
    pytest.mark.skipif(find_server_binary() is None, reason=NO_SERVER),
]

TOKEN = "cli,token"  # a comma: the workers get the parent's settings as they are, not through a comma-split variable
PUBLIC_URL = "http://fake.example.test:9"
SERVING = "bria-mock is serving on "
SERVER_NAMES = ("valkey-server", "redis-server")


class Served:
    """A ``bria-mock serve`` process: its output (in a file, read at any time), its port, its children."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = folder / "serve.log"
        self.connections: list[http.client.HTTPConnection] = []  # closed by close()
        # TMPDIR: the private state server's folder is made there, where the test can look for it.
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-", dir="/tmp"))
        environment = {**os.environ, "TMPDIR": str(self.tmp), **(env or {})}
        command = [sys.executable, "-m", "mock_server", "serve", "--port", str(self.port), *args]
        with self.log.open("wb") as out:
            # Its own session, as in a terminal: "Ctrl-C" is SIGINT to its whole process group.
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_banner(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while SERVING not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)
        return self.output

    def children(self) -> list[int]:
        return children_of(self.process.pid)

    def workers(self) -> list[int]:
        return [pid for pid in self.children() if "spawn_main" in command_line(pid)]

    def state_servers(self) -> list[int]:
        return [pid for pid in self.children() if program(pid) in SERVER_NAMES]

    def stop(self, number: int = signal.SIGINT, *, group: bool = False) -> str:
        if group:
            os.killpg(self.process.pid, number)
        else:
            self.process.send_signal(number)
        self.process.wait(timeout=20)
        return self.output

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        if self.process.poll() is None:  # (a test that failed half-way): stopped as a user stops it
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Served]]:
    """``serve(*args, env=..., port=...)``: start ``bria-mock serve`` (on a free port); killed after the test."""
    started: list[Served] = []

    class Started(Served):
        def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
            super().__init__(tmp_path, *args, env=env, port=port)
            started.append(self)

    yield Started
    for served in started:
        served.close()


# --- /proc ----------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def program(pid: int) -> str:
    """The program's name as the process shows it (Valkey and Redis rewrite their command line, keeping it)."""
    words = command_line(pid).split()
    return Path(words[0]).name if words else ""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def processes_inside(folder: Path) -> list[int]:
    """Processes working in ``folder`` (the state server runs in its own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(folder)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def socket_owner(port: int, client_port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` holds the server side of the loopback connection from ``client_port`` to ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if (local, remote) == (port, client_port):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None


def connection_to_each_worker(served: Served, attempts: int = 300) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection answered by each worker (new connections until every worker has taken one)."""
    workers = served.workers()
    taken: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    for _ in range(attempts):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        assert request(connection, "GET", "/bria-mock/health")[0] == 200
        owner = socket_owner(served.port, connection.sock.getsockname()[1], workers)
        if owner is None or owner in taken:
            spare.append(connection)
        else:
            taken[owner] = connection
        if len(taken) == len(workers):
            break
    for connection in spare:
        connection.close()
    served.connections += taken.values()
    return taken


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: object = None, token: str = TOKEN
) -> tuple[int, bytes]:
    headers = {"api_token": token}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_signal", "group"),
    # Ctrl-C in a terminal: SIGINT to the process group; SIGTERM: to the parent only, as a process manager sends it.
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "SIGTERM"],
)
def test_two_workers_serve_one_port_and_stop_with_their_private_state_server(
    serve: type[Served], stop_signal: int, group: bool
) -> None:
    served = serve("--workers", "2", "--token", TOKEN, "--public-url", PUBLIC_URL)
    banner = served.wait_for_banner()
    workers = served.workers()
    [state_server] = served.state_servers()
    folder = Path(re.search(r"unix socket (\S+)/state\.sock", banner)[1])  # type: ignore[index]

    by_worker = connection_to_each_worker(served)
    job = {"image": f"{PUBLIC_URL}/samples/subject.jpg"}
    answers = {
        pid: (
            request(connection, "POST", "/v2/image/edit/remove_background", job, token="other")[0],
            json.loads(request(connection, "POST", "/v2/image/edit/remove_background", job)[1])["status_url"],
        )
        for pid, connection in by_worker.items()
    }
    assert folder.parent == served.tmp and (folder / "state.sock").is_socket()
    assert alive(state_server)
    output = served.stop(stop_signal, group=group)

    assert len(workers) == 2 and sorted(by_worker) == sorted(workers)  # each worker answered a connection
    # Both got the command line's settings: the token (with its comma) and the public URL.
    assert all(refused == 401 and status_url.startswith(PUBLIC_URL) for refused, status_url in answers.values())
    assert "  workers:  2 processes on this port" in banner
    assert f"  state:    a private Valkey server (unix socket {folder}/state.sock)" in banner
    assert served.process.returncode == 0, output
    assert output.count(SERVING) == 1  # the banner is the parent's, printed once
    assert "Traceback" not in output and TOKEN not in output
    assert not alive(state_server) and not folder.exists()
    assert not any(alive(pid) for pid in workers)


def test_a_job_submitted_on_one_worker_is_polled_and_downloaded_on_another(serve: type[Served]) -> None:
    served = serve("--workers", "2", "--token", TOKEN, "--progress-polls", "2")
    served.wait_for_banner()
    first, second = connection_to_each_worker(served).values()
    job = {"image": f"http://127.0.0.1:{served.port}/samples/subject.jpg"}

    submitted = json.loads(request(first, "POST", "/v2/image/edit/remove_background", job)[1])
    status_path = "/" + submitted["status_url"].split("/", 3)[3]
    polls = [request(connection, "GET", status_path) for connection in (second, first, second, first)]
    statuses = [json.loads(body).get("status") for _, body in polls]

    assert [status for status, _ in polls] == [200] * 4
    assert statuses == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED", "COMPLETED"]
    image_path = "/" + json.loads(polls[-1][1])["result"]["image_url"].split("/", 3)[3]
    assert request(second, "GET", image_path)[1].startswith(b"\x89PNG")


def test_with_a_state_url_the_workers_use_it_and_nothing_is_started(serve: type[Served]) -> None:
    with PrivateStateServer(tcp=True) as store:
        served = serve("--workers", "2", "--state", store.url, "--header-timeout-seconds", "0.5")
        banner = served.wait_for_banner()
        children = served.state_servers()
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as silent:
            started = time.monotonic()
            closed = silent.recv(1) == b""  # the workers keep the deadline on request heads
            waited = time.monotonic() - started
        served.stop()

    assert closed and 0.3 < waited < 4
    assert children == []
    assert f"  state:    {store.url} (shared by every process that names it)" in banner
    assert served.process.returncode == 0
    assert list(served.tmp.iterdir()) == []


def test_killed_outright_it_takes_its_workers_and_state_server_along(serve: type[Served]) -> None:
    served = serve("--workers", "2")
    served.wait_for_banner()
    started = [*served.workers(), *served.state_servers()]

    served.process.kill()
    served.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert len(started) == 3
    assert not any(alive(pid) for pid in started)  # (only the server's folder is left: nothing ran to remove it)
