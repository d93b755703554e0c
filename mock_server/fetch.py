"""Opt-in fetching of remote image URLs, refusing every address that is not on the public internet.

The fake answers 460 for remote URLs unless remote fetching is turned on; then
:func:`fetch_image` downloads them, safe by construction against server-side request
forgery:

- only ``http`` and ``https``;
- the host is resolved once per hop and every address it resolves to is checked: loopback,
  private, link-local, multicast, unspecified, reserved, carrier-grade NAT and cloud metadata
  addresses are refused (one refused address refuses the host), IPv6 forms that embed an
  IPv4 address are judged by it;
- the TCP connection goes to the checked address itself, never to the name again, so there
  is no DNS-rebinding window; the URL's own host still goes into the ``Host`` header, the TLS
  SNI and the certificate check;
- redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop resolved and checked anew;
- the body is read in chunks and abandoned as soon as it passes ``max_bytes``; one deadline
  bounds the whole fetch: resolving, connecting, the TLS handshake, every read and write, every hop;
- no proxy from the environment, no cookies, no credentials, no content decoding
  (``Accept-Encoding: identity``; an encoded answer is refused rather than inflated).

It is built on httpcore, the transport under httpx (installed with it), rather than on an
``httpx.Client``: httpcore's documented ``NetworkBackend`` interface decides where each TCP
connection goes and how long each socket operation may wait. That is exactly the seam
needed: the request keeps its real URL (so Host, SNI and certificate verification are right
with no special case) while the connection is pinned to the checked address and every
operation shares one deadline. An ``httpx.Client`` would need the URL rewritten to the
address with Host and SNI set by hand, ``trust_env`` off, and its timeouts bound each socket
operation rather than the whole fetch.

Failures are the vendor's errors: 400 for a URL that is not ``http(s)`` or has no valid host,
404 when the remote server answers 404 or 410, 460 for everything else, with ``details``
naming the field and the reason.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpcore

from mock_server.bodies import is_whole_number
from mock_server.errors import BadRequest, BriaError, DownloadFailed, ImageNotFound

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Cloud instance-metadata endpoints, named in refusals (all of them are refused anyway as
# link-local, private or shared addresses).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HOST_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$")
_SAFE_IN_TARGET = "!#$%&'()*+,/:;=?@[]~"  # kept as they are in a request target; the rest is %-quoted
_REQUEST_HEADERS = [(b"Accept", b"image/*"), (b"Accept-Encoding", b"identity"), (b"User-Agent", b"bria-mock")]
_SHOWN_URL_CHARS = 200


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be fetched from (e.g. ``"a private address"``), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal_reason(address.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    embedded = _embedded_ipv4(address)
    inner = refusal_reason(embedded) if embedded is not None else None
    if inner is not None:
        return f"{inner} inside an IPv6 address"
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address in _SHARED_ADDRESS_SPACE, "a carrier-grade NAT (shared) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


# Address kinds never reached, whatever a setting allows: no service under test lives there.
ALWAYS_REFUSED = frozenset(
    {
        "a cloud metadata address",
        "a link-local address",
        "a multicast address",
        "the unspecified address",
        "a reserved address",
    }
)


def refusal_unless_private(address: IPAddress) -> str | None:
    """Why ``address`` is refused when loopback and private addresses are allowed (a service on this
    machine or network): metadata, link-local, multicast, unspecified and reserved addresses still are."""
    reason = refusal_reason(address)
    kind = reason.removesuffix(" inside an IPv6 address") if reason else None
    return reason if kind in ALWAYS_REFUSED else None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4, Teredo or NAT64 address leads to (the mapped form is handled apart)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allow_any_address(address: IPAddress) -> str | None:
    """A policy that refuses nothing: what ``allow_private=True`` means (tests only)."""
    return None


def resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, within ``timeout`` seconds.

    ``getaddrinfo`` cannot be interrupted, so it runs on a daemon thread that is abandoned
    (it ends when the system resolver gives up) if the deadline passes first.
    Raises ``socket.gaierror`` when the name does not resolve, ``TimeoutError`` when it is too slow.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"bria-mock-resolve-{host}", daemon=True)
    worker.start()
    worker.join(max(timeout, 0.0))
    if worker.is_alive():
        raise TimeoutError(f"resolving {host} took longer than {timeout:.3g} s")
    if "error" in outcome:
        raise outcome["error"]
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in outcome["infos"]]
    return list(dict.fromkeys(addresses))  # without duplicates, in order


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """What :func:`fetch_image` may do. The defaults are the safe ones; the fields are test seams.

    ``refuse`` says why an address is refused (None: allowed); ``resolve`` turns a host into
    addresses; ``ssl_context`` verifies TLS (None: httpcore's default, certifi's roots).
    """

    refuse: Callable[[IPAddress], str | None] = refusal_reason
    resolve: Callable[[str, int, float], list[IPAddress]] = resolve
    ssl_context: ssl.SSLContext | None = None
    max_redirects: int = MAX_REDIRECTS


def fetch_image(
    url: str,
    field: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool = False,
    policy: FetchPolicy | None = None,
) -> bytes:
    """The body of an ``http(s)`` image URL, fetched under the rules of the module docstring.

    ``max_bytes`` caps the body and ``timeout`` (seconds) the whole fetch, redirects included.
    ``allow_private`` is a test-only knob, deliberately not a setting: it lets tests prove
    the happy path against a loopback server. A fake whose request bodies could reach the
    machine's own or internal services would be a server-side request forgery hole.

    Raises :class:`BadRequest` (400) for a URL that is not http(s) or has no valid host,
    :class:`ImageNotFound` (404) for a remote 404 or 410, :class:`DownloadFailed` (460) otherwise.
    """
    policy = policy or FetchPolicy()
    if allow_private:
        policy = dataclasses.replace(policy, refuse=allow_any_address)
    deadline = time.monotonic() + timeout
    target = _Target.parse(url, field, redirected=False)
    for hop in range(policy.max_redirects + 1):
        try:
            location = _get(target, field, policy, deadline, max_bytes)
        except (TimeoutError, httpcore.TimeoutException):
            raise target.failed(f"no complete answer within {timeout:g} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise target.failed(f"the connection failed ({describe_cause(exc)})") from None
        if isinstance(location, bytes):
            return location
        if hop == policy.max_redirects:
            break
        target = _Target.parse(location, field, redirected=True, origin=url, base=target.url)
    raise target.failed(f"more than {policy.max_redirects} redirects")


@dataclasses.dataclass(frozen=True)
class _Target:
    """One hop: the URL as given, and its parts as they go on the wire."""

    url: str
    field: str
    origin: str  # the URL the client sent, for messages
    scheme: str
    host: str  # ASCII (IDNA), no brackets
    port: int
    path: str  # the request target: path and query, %-quoted

    @classmethod
    def parse(cls, url: str, field: str, *, redirected: bool, origin: str | None = None, base: str = "") -> _Target:
        """Check a URL (a redirect's ``Location`` is taken relative to ``base``); a bad first
        URL is the client's 400, a bad redirect the server's 460."""
        origin = origin or url

        def bad(reason: str) -> BriaError:
            if redirected:
                details = f"could not download {_short(origin)}: a redirect to {_short(url)} is refused: {reason}"
                return DownloadFailed(f"{field}: {details}")
            return BadRequest(f"{field}: {reason}")

        try:
            url = urljoin(base, url) if base else url
            parts = urlsplit(url)
            port = parts.port
            hostname = parts.hostname or ""
        except ValueError as exc:
            raise bad(f"an invalid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in {"http", "https"}:
            raise bad(f"only http and https URLs are supported, not {scheme or 'no scheme'}")
        host = _ascii_host(hostname)
        if host is None:
            raise bad(f"a URL without a valid host ({_short(url)})")
        if port == 0:
            raise bad(f"a URL with port 0 ({_short(url)})")
        target = quote(parts.path or "/", safe=_SAFE_IN_TARGET)
        if parts.query:
            target += "?" + quote(parts.query, safe=_SAFE_IN_TARGET)
        default_port = 443 if scheme == "https" else 80
        return cls(url, field, origin, scheme, host, port or default_port, target)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = self.port == (443 if self.scheme == "https" else 80)
        return host if default else f"{host}:{self.port}"

    def failed(self, reason: str) -> DownloadFailed:
        hop = "" if self.url == self.origin else f" (redirected to {_short(self.url)})"
        return DownloadFailed(f"{self.field}: could not download {_short(self.origin)}{hop}: {reason}")


def _ascii_host(hostname: str) -> str | None:
    """The host as it goes on the wire (IDNA for names), or None when it is not a valid host."""
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    try:
        ascii_name = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return ascii_name if ascii_name and _HOST_NAME.match(ascii_name) else None


def _addresses(target: _Target, policy: FetchPolicy, deadline: float) -> list[IPAddress]:
    """The host's addresses, all of them allowed; a refusal or a name that does not resolve is 460."""
    try:
        addresses = policy.resolve(target.host, target.port, _remaining(deadline))
    except socket.gaierror as exc:
        raise target.failed(f"{target.host} does not resolve ({exc.strerror or exc})") from None
    if not addresses:
        raise target.failed(f"{target.host} does not resolve")
    for address in addresses:
        reason = policy.refuse(address)
        if reason is not None:
            said = f"{address} is" if str(address) == target.host else f"{target.host} resolves to {address},"
            raise target.failed(f"{said} {reason} (refused)")
    return addresses


def _get(target: _Target, field: str, policy: FetchPolicy, deadline: float, max_bytes: int) -> bytes | str:
    """One GET to the checked addresses: the body, or the ``Location`` of a redirect."""
    addresses = _addresses(target, policy, deadline)
    backend = _PinnedBackend(addresses, deadline)
    url = httpcore.URL(scheme=target.scheme.encode(), host=target.host.encode(), port=target.port, target=target.path)
    headers = [(b"Host", target.host_header.encode()), *_REQUEST_HEADERS]
    remaining = _remaining(deadline)
    timeouts = {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
    with (
        httpcore.ConnectionPool(ssl_context=policy.ssl_context, network_backend=backend, retries=0) as pool,
        pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as response,
    ):
        status = response.status
        found = {name.lower(): value.decode("latin-1") for name, value in response.headers}
        if status in REDIRECT_STATUSES and found.get(b"location"):
            return found[b"location"]
        if status in {404, 410}:
            raise ImageNotFound(f"{field}: no image at {_short(target.origin)} (the server answered {status})")
        if not 200 <= status < 300:
            raise target.failed(f"the server answered {status}")
        return _read_body(target, response.iter_stream(), found, max_bytes)


def _read_body(target: _Target, chunks: Iterable[bytes], headers: dict[bytes, str], max_bytes: int) -> bytes:
    encoding = headers.get(b"content-encoding", "identity").strip().lower()
    if encoding not in {"", "identity"}:
        raise target.failed(f"the answer is {encoding}-encoded; only identity is accepted")
    declared = headers.get(b"content-length", "").strip()
    if is_whole_number(declared) and int(declared) > max_bytes:
        raise target.failed(f"the image is {declared} bytes, over the limit of {max_bytes} bytes")
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:  # stop reading: the rest is never received
            raise target.failed(f"the image is over the limit of {max_bytes} bytes")
    if not body:
        raise target.failed("the server sent an empty body")
    return bytes(body)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the addresses that were checked, whatever host the URL names, and puts
    the fetch's deadline on every socket operation."""

    def __init__(self, addresses: list[IPAddress], deadline: float) -> None:
        self._addresses = addresses
        self._deadline = deadline
        self._system = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception = httpcore.ConnectError(f"no address to connect to for {host}")
        for address in self._addresses:  # the URL's host is never resolved again here
            try:
                stream = self._system.connect_tcp(
                    str(address), port, timeout=_capped(timeout, self._deadline), socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("bria-mock never connects to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation waits no longer than the fetch's deadline allows."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, self._deadline))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, self._deadline))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _capped(timeout, self._deadline))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise httpcore.TimeoutException("the time limit ran out")
    return remaining


def _capped(timeout: float | None, deadline: float) -> float:
    remaining = _remaining(deadline)
    return remaining if timeout is None else min(timeout, remaining)


def describe_cause(exc: BaseException) -> str:
    """An exception as one short line for an error's details: its type and the start of its text."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _short(url: str) -> str:
    return url if len(url) <= _SHOWN_URL_CHARS else url[:_SHOWN_URL_CHARS] + "..."
