"""Faults below HTTP: resets, empty answers, malformed chunks, garbage, truncation, stalls.

They need the raw socket, which uvicorn hands the ASGI app only through ``send``'s
request-response cycle; an in-process (socket-less) app cannot emulate them and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from typing import Any

from starlette.types import Receive, Send

from mock_server.errors import ServerError

DEFAULT_STALL_SECONDS = 300.0


class NoSocket(ServerError):
    """A connection fault was asked for where there is no socket (an in-process client): answered
    as a 500 saying so, not a crash of the fake."""


def has_socket(send: Send) -> bool:
    """Whether ``send`` writes to a real connection (uvicorn) rather than an in-process client."""
    return getattr(getattr(send, "__self__", None), "transport", None) is not None


def raise_in_process(crash: BaseException | None, send: Send) -> None:
    """After a crash has been answered: raise it again for an in-process client, whose transport
    raises it in the test at the call (over a socket, re-raising would only drop the connection)."""
    if crash is not None and not has_socket(send):
        raise crash


def transport_of(send: Send) -> asyncio.Transport:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise NoSocket("bria-mock: connection faults need the fake served over a real socket (uvicorn)")
    return transport  # type: ignore[no-any-return]


async def inject(fault: dict[str, Any], receive: Receive, send: Send, response: bytes = b"") -> None:
    """Break the connection as ``fault`` says; ``response`` is the full raw answer (for ``truncate``)."""
    transport = transport_of(send)
    kind = fault["fault"]
    if kind == "stall":
        await _stall(receive, fault.get("stall_seconds", DEFAULT_STALL_SECONDS))
    elif kind == "reset":
        _reset(transport)
    else:
        transport.write(_bytes_for(kind, fault, response))
    transport.close()
    await _until_disconnected(receive)


def _bytes_for(kind: str, fault: dict[str, Any], response: bytes) -> bytes:
    if kind == "empty":
        return b""
    if kind == "garbage":
        return random.Random(0).randbytes(64)
    if kind == "malformed_chunked":
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        return head + b'zz\r\n{"result\r\n'  # "zz" is not a hexadecimal chunk size
    head, _, body = response.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n" + body[: fault.get("bytes", 0)]


def _reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger 0: closing sends RST, so the client sees "connection reset by peer"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _stall(receive: Receive, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnected(receive), timeout=seconds)


async def _until_disconnected(receive: Receive) -> None:
    # Waiting for uvicorn's disconnect message keeps it from answering 500 on a dead connection.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (await receive())["type"] != "http.disconnect":
                pass


def raw_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """An HTTP/1.1 response as bytes, for faults that write to the socket themselves."""
    lines = [f"HTTP/1.1 {status} X".encode()] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
