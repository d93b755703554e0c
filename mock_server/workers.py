"""``bria-mock serve --workers N``: N uvicorn worker processes on one port, acting as one fake.

The parent process checks the settings, binds the port, starts a private Valkey/Redis server when
the state would otherwise be each process's own memory (:mod:`mock_server.state_server`), then runs
uvicorn's supervisor (:class:`uvicorn.supervisors.Multiprocess`) and prints the banner once every
worker serves. Each worker is a spawned process that receives the parent's :class:`Settings` as
they are, pickled with its :class:`WorkerConfig` (with ``state`` naming the shared store), and
builds its own app from them (``create_app(settings)``) when uvicorn loads its configuration.

The private server is stopped when serving ends, whichever way: Ctrl-C, SIGTERM, a worker that
cannot start, or an error in the parent; if the parent is killed outright, the workers and the
server end with it (:mod:`mock_server.parent_death`, on Linux).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from mock_server import parent_death
from mock_server.app import create_app
from mock_server.banner import banner, base_url
from mock_server.server import uvicorn_config
from mock_server.state_server import PrivateStateServer

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from mock_server.config import Settings

logger = logging.getLogger("uvicorn.error")
READY_TIMEOUT_SECONDS = 60.0  # for every worker to import the fake and answer; the banner waits for them


class WorkerConfig(uvicorn.Config):
    """uvicorn's configuration of every worker: pickled into each (spawn), carrying the parent's settings as they are.

    In the worker, :meth:`load` builds the app from those settings and serves it over the fake's own
    HTTP stack (``uvicorn_config``'s protocol, with its deadline on request heads): both are made
    there, because neither pickles.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        # The app named here is a placeholder for uvicorn's checks: load() builds the app from ``settings``.
        super().__init__(
            create_app,
            factory=True,
            lifespan="on",
            log_level="info",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **options,
        )
        self.settings = settings
        self.parent = os.getpid()

    def load(self) -> None:
        parent_death.end_with_parent(self.parent)  # killed outright, the parent takes its workers along
        try:
            fake = uvicorn_config(create_app(self.settings), self.settings, log_config=None)
        except Exception as exc:  # a worker that cannot build the fake would fail the same way on every restart
            logger.error("bria-mock worker could not start: %s", exc)
            sys.exit(STARTUP_FAILURE)
        self.app, self.factory, self.http = fake.app, False, fake.http
        super().load()


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which calls ``announce`` once every worker serves and knows whether one could not start."""

    def __init__(self, config: WorkerConfig, sockets: list[socket.socket], announce: Callable[[], None]) -> None:
        super().__init__(config, sockets)
        self.announce = announce

    def init_processes(self) -> None:
        super().init_processes()
        if all(process.wait_until_ready(READY_TIMEOUT_SECONDS, self.should_exit) for process in self.processes):
            self.announce()

    @property
    def failed_to_start(self) -> bool:
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def serve_workers(settings: Settings) -> None:
    """Serve with ``settings.workers`` processes until Ctrl-C or SIGTERM (then each drains, as one process does).

    Raises ValueError for a bad setting, and :class:`~mock_server.state_server.NoServerBinary` when
    the state is memory and no Valkey/Redis server can be started, both before anything starts.
    Exits 1 when the port is taken or a worker cannot start.
    """
    # A bad setting or rules file, or a store that cannot be reached, is said here, before anything starts.
    create_app(settings).state.backend.state.close()
    private = PrivateStateServer() if settings.state == "memory" else None
    listening = _bind(settings)
    with _sigterm_as_interrupt(), listening:
        try:
            _supervise(settings, listening, private)
        except KeyboardInterrupt:  # before the supervisor took the signals over: a clean stop all the same
            return


def _bind(settings: Settings) -> socket.socket:
    """The listening socket every worker accepts on; exits 1 when the port is taken (uvicorn logs why)."""
    try:
        return WorkerConfig(settings).bind_socket()
    except SystemExit:
        raise SystemExit(1) from None


def _supervise(settings: Settings, listening: socket.socket, private: PrivateStateServer | None) -> None:
    try:
        where = None
        if private is not None:
            settings = settings.replace(state=private.start())
            where = private.description
        host, port = listening.getsockname()[:2]
        text = banner(settings, base_url(str(host), int(port)), state=where)
        config = WorkerConfig(settings, access_log=settings.access_log)
        supervisor = Supervisor(config, [listening], functools.partial(_announce, text))
        supervisor.run()
        if supervisor.failed_to_start:
            raise SystemExit(1)
    finally:
        if private is not None:
            private.stop()


def _announce(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, until the supervisor takes the signals over.

    So a SIGTERM while the private server starts still stops it (Python's default would end the
    process on the spot). The previous handlers are back afterwards.
    """
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
