"""Deadlines on connections uvicorn alone leaves open: a client that connects and sends nothing, or
dribbles its request head a byte at a time, holds a file descriptor for as long as it likes.

uvicorn closes an idle keep-alive connection between requests (``timeout_keep_alive``) but sets no
deadline on a request's head. :class:`GuardedHttpToolsProtocol` (httptools: what the fake runs on)
and :class:`GuardedH11Protocol` (h11: uvicorn's pure-Python parser, for comparison) are uvicorn's own
HTTP/1.1 protocols with one: a connection must finish a request head within ``header_timeout`` of
being opened, or of its previous answer; past it, it is closed. The body's deadline is the traffic
policy's (``body_timeout_seconds``, a 408).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


HTTP_PARSERS = ("httptools", "h11")
# The most a request head (request line and headers) may hold. h11 bounds what it buffers of a head
# (uvicorn's h11_max_incomplete_event_size); httptools keeps every header it is given, so the guarded
# httptools protocol bounds the head itself.
MAX_HEAD_BYTES = 64 * 1024


def guarded_protocol(header_timeout: float, http: str = "httptools") -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (``http``: httptools or h11) with a deadline on every request head.

    httptools is the default: it parses several times faster than h11 (see docs/performance.md).
    """
    bases: dict[str, type[asyncio.Protocol]] = {"httptools": GuardedHttpToolsProtocol, "h11": GuardedH11Protocol}
    if http not in bases:
        raise ValueError(f"http={http!r}: expected one of {', '.join(HTTP_PARSERS)}")
    return type("Guarded", (bases[http],), {"header_timeout_seconds": header_timeout})


class _HeadDeadline:
    """A timer that closes the connection unless disarmed in time; shared by both protocols."""

    header_timeout_seconds = 10.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _head_deadline: asyncio.TimerHandle | None = None

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout_seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()  # quietly: no answer is owed to a request that never arrived

    def _waiting_for_head(self) -> bool:
        raise NotImplementedError


class GuardedHttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes a connection whose request head does not arrive in time.

    The deadline runs from the connection's start, and from each answer after which no request is
    queued (a pipelined request whose head is already in owes nothing); a complete head stops it.
    A head still incomplete after ``MAX_HEAD_BYTES`` is answered 400, as a malformed one is, and the
    connection closed (one that arrives whole in a single read, at most the loop's read size, is parsed).
    """

    def __init__(self, config: Config, server_state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, *args, **kwargs)
        self._heads_in = 0  # complete request heads so far
        self._heads_in_when_armed = 0
        self._reading_head = True  # what arrives now is a request head (not a body)
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            # httptools buffers a header value whole: the head is bounded here, by what arrived while reading it.
            self.logger.warning("A request head over %d bytes received.", MAX_HEAD_BYTES)
            self.send_400_response(f"Request head over {MAX_HEAD_BYTES} bytes.")

    def on_headers_complete(self) -> None:
        self._heads_in += 1
        self._reading_head = False
        self._head_bytes = 0
        self._disarm_head_deadline()  # the request runs under its own deadlines
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True  # anything after a whole request is the next one's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        next_head_owed = not self.pipeline
        super().on_response_complete()
        if next_head_owed and not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head (an idle wait is timeout_keep_alive's)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._heads_in_when_armed = self._heads_in
        super()._arm_head_deadline()

    def _waiting_for_head(self) -> bool:
        return self._heads_in == self._heads_in_when_armed


class GuardedH11Protocol(_HeadDeadline, H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request head does not arrive in time."""

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

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE
