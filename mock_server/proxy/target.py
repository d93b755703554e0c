"""The proxy's target: checked once at start under the safe-fetch rules, then reached only at the
addresses that were checked.

The rules are those of :mod:`mock_server.fetch` for remote images: ``http`` or ``https`` only,
a valid host, and every address the host resolves to on the public internet (loopback, private,
link-local, metadata and the other refused ranges are refused unless ``allow_private``). The
addresses are resolved once, at start, and every connection goes to one of them, never to the name
again: a name that later resolves elsewhere (DNS rebinding) cannot lead the proxy into a private
range. Redirects are never followed: the proxy hands them to its client as they are.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from mock_server.fetch import IPAddress, refusal_reason, refusal_unless_private, resolve

RESOLVE_TIMEOUT_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the proxy forwards to: its origin (``https://engine.prod.bria-api.com``) and the checked addresses."""

    origin: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def url(self, raw_path: bytes, query: bytes = b"") -> str:
        """The target's URL for the path (and query) the client asked the proxy for, byte for byte:
        never decoded (``%2F`` stays ``%2F``, ``%3F`` never becomes a query)."""
        if not raw_path.startswith(b"/"):
            raise ValueError("the request target must be a path starting with /")
        target = raw_path + (b"?" + query if query else b"")
        return str(httpx.URL(self.origin).copy_with(raw_path=target))


def check_target(url: str, *, allow_private: bool = False) -> Target:
    """The target of ``url``; ValueError saying why when it is missing, malformed or refused.

    ``allow_private`` lets the target be on a loopback or private address (a fake on this machine).
    """
    if not url:
        raise ValueError("--target URL is required: the proxy never guesses where to forward")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"--target {url!r}: expected an http(s) URL such as https://engine.prod.bria-api.com")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"--target {url!r}: give the service's origin only (no path, query or fragment)")
    port = parts.port or (443 if scheme == "https" else 80)
    addresses = _checked_addresses(parts.hostname, port, allow_private)
    origin = f"{scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    return Target(origin=origin, host=parts.hostname, port=port, addresses=tuple(addresses))


def _checked_addresses(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    try:
        addresses = resolve(host, port, RESOLVE_TIMEOUT_SECONDS)
    except (socket.gaierror, TimeoutError) as exc:
        raise ValueError(f"--target: {host} does not resolve ({exc})") from None
    refuse = refusal_unless_private if allow_private else refusal_reason
    for address in addresses:
        reason = refuse(address)
        if reason is not None:
            raise ValueError(
                f"--target: {host} resolves to {address}, {reason}; the proxy refuses it "
                "(pass --allow-private-target to proxy a service on this machine or network)"
            )
    return addresses


def pinned_client(target: Target, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """An async client whose every connection goes to the target's checked addresses.

    httpx has no public seam for where a connection goes; its transport's httpcore pool does
    (``network_backend``), so the pool is replaced by one built on :class:`PinnedBackend`. The
    URL keeps the target's name, so ``Host``, TLS SNI and certificate checks are unchanged.
    """
    transport = httpx.AsyncHTTPTransport(retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=PinnedBackend(target.addresses, target.port),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses, whatever host the URL names (it is never resolved again),
    and only on the target's port."""

    def __init__(self, addresses: Iterable[IPAddress], port: int) -> None:
        self._addresses = list(addresses)
        self._port = port
        self._system = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if port != self._port:
            raise httpcore.ConnectError(f"the proxy connects to its target's port {self._port} only, not {port}")
        error: Exception = httpcore.ConnectError(f"no address to connect to for {host}")
        for address in self._addresses:
            try:
                return await self._system.connect_tcp(
                    str(address), port, timeout=timeout, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the proxy never connects to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._system.sleep(seconds)
