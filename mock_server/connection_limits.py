"""Deadlines on connections uvicorn alone leaves open: a client that connects and sends nothing, or
dribbles its request head a byte at a time, holds a file descriptor for as long as it likes.

uvicorn closes an idle keep-alive connection between requests (``timeout_keep_alive``) but sets no
deadline on a request's head. :class:`GuardedH11Protocol` is uvicorn's own HTTP/1.1 protocol with
one: a connection must finish a request head within ``header_timeout`` of being opened, or of its
previous answer; past it, it is closed. The body's deadline is the traffic policy's
(``body_timeout_seconds``, a 408).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState


logger = logging.getLogger("mock_server")
OUT_OF_DESCRIPTORS_EVERY_SECONDS = 10.0
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Say "out of file descriptors" once every few seconds instead of asyncio's traceback per accept.

    Out of descriptors, asyncio logs a traceback for every connection it cannot accept (megabytes a
    second under a flood of idle clients), and one more for every retry it scheduled once the
    listening socket is closed at shutdown. The first is said in one line now and then; the second
    is no news. Anything else goes to the loop's default handler.
    """
    last_said = -OUT_OF_DESCRIPTORS_EVERY_SECONDS

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last_said
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS:
            now = time.monotonic()
            if now - last_said >= OUT_OF_DESCRIPTORS_EVERY_SECONDS:
                last_said = now
                logger.warning("bria-mock cannot accept connections (%s); it will as idle ones are closed", exc)
            return
        if isinstance(exc, ValueError) and "Invalid file descriptor" in str(exc):
            return  # a retry of accept() after the listening socket was closed (shutdown)
        loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def guarded_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline of ``header_timeout`` seconds on every request head."""

    class Guarded(GuardedH11Protocol):
        header_timeout_seconds = header_timeout

    return Guarded


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head does not arrive in time."""

    header_timeout_seconds = 10.0

    def __init__(self, config: Config, server_state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, *args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in: the request runs under its own deadlines
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head (an idle wait is timeout_keep_alive's)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout_seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # quietly: no answer is owed to a request that never arrived
