"""Where a webhook may go, and how one attempt reaches it.

``webhook_url`` must be an absolute ``http(s)`` URL with a host (400 otherwise). At delivery,
the host is resolved once and every address it resolves to is classified by
:func:`mock_server.fetch.refusal_reason`, the same classification remote image fetching uses:

- cloud metadata, link-local, multicast, unspecified and reserved addresses are always refused;
- with no allowlist (``webhook_allowlist``), loopback and private addresses are allowed (in a
  test setup the app under test lives there) and public ones refused;
- with an allowlist, only its addresses, networks (CIDR) and host names are allowed (``*``: any
  address but the always-refused ones), so it can both restrict and widen the default.

As in :mod:`mock_server.fetch`, the connection goes to the checked address itself, never to
the name again (no DNS-rebinding window); the URL's host still goes into ``Host`` and the TLS
SNI and certificate check. An attempt never follows redirects and reads no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from mock_server import fetch
from mock_server.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_URL_CHARS = 2048
ALWAYS_REFUSED = fetch.ALWAYS_REFUSED
_EMBEDDED = " inside an IPv6 address"


def check_webhook_url(value: object) -> str | None:
    """The request's ``webhook_url``, or None when absent (null or empty); 400 when it is not an
    absolute http(s) URL with a host."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("webhook_url: expected a URL")
    shown = value if len(value) <= 100 else value[:100] + "..."
    if len(value) > MAX_URL_CHARS:
        raise BadRequest(f"webhook_url: at most {MAX_URL_CHARS} characters, got {len(value)}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"webhook_url: an invalid URL ({exc}): {shown}") from None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise BadRequest(f"webhook_url: expected an absolute http or https URL, got {shown}")
    if port == 0:
        raise BadRequest(f"webhook_url: a URL with port 0 ({shown})")
    try:  # what the delivery will parse: a URL urlsplit takes but httpx or IDNA refuses is a 400 now
        httpx.URL(value).host.encode("idna")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise BadRequest(f"webhook_url: an invalid URL ({exc}): {shown}") from None
    return value


@dataclasses.dataclass(frozen=True)
class AddressPolicy:
    """Which addresses and names webhooks may go to (see the module docstring)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    names: frozenset[str] = frozenset()
    any_address: bool = False
    default: bool = True  # no allowlist: loopback and private addresses

    @classmethod
    def from_allowlist(cls, entries: Iterable[str]) -> AddressPolicy:
        """The policy of ``webhook_allowlist``; ValueError naming an entry that is neither a network nor a name."""
        networks, names, any_address, given = [], set(), False, False
        for entry in entries:
            given = True
            if entry == "*":
                any_address = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not entry or "/" in entry or " " in entry:
                    reason = f"webhook_allowlist: {entry!r} is neither an address, a network nor a host name"
                    raise ValueError(reason) from None
                names.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(names), any_address, default=not given)

    def refusal(self, host: str, address: fetch.IPAddress) -> str | None:
        """Why a delivery to ``address`` (which ``host`` resolved to) is refused, or None."""
        reason = fetch.refusal_reason(address)
        kind = reason.removesuffix(_EMBEDDED) if reason else None
        if kind in ALWAYS_REFUSED:
            return f"{address} is {reason}, never a webhook target"
        if self.default:
            if kind is None:
                return f"{address} is a public address; webhooks go to loopback and private ones (webhook_allowlist)"
            return None
        if self.any_address or host.lower().rstrip(".") in self.names:
            return None
        if any(address in network for network in self.networks):
            return None
        return f"{address} is not on webhook_allowlist"


@dataclasses.dataclass(frozen=True)
class AttemptResult:
    """What one attempt met: the receiver's status, or why there was none; and how long it took."""

    status: int | None
    error: str | None
    latency_ms: float
    refused: bool = False  # by the address policy: retrying cannot help

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def post(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes, *, policy: AddressPolicy, timeout: float
) -> tuple[AttemptResult, dict[str, str]]:
    """One attempt: resolve and check the host, then POST to the checked addresses (in the resolver's
    order, the next one when a connection fails) within ``timeout`` seconds. Returns what came of it
    and the headers exactly as sent (or as they would have been)."""
    started = time.perf_counter()
    sent = dict(headers)

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        async with asyncio.timeout(timeout):
            parsed = httpx.URL(url)
            addresses = await _checked_addresses(parsed, policy, timeout)
            if isinstance(addresses, str):
                return AttemptResult(None, f"refused: {addresses}", took(), refused=True), sent
            for address in addresses:
                request = _pinned_request(client, parsed, address, headers, body)
                sent = {name.decode(): value.decode() for name, value in request.headers.raw}
                try:
                    response = await client.send(request)
                except httpx.ConnectError:
                    if address == addresses[-1]:
                        raise
                    continue
                await response.aclose()
                return AttemptResult(response.status_code, None, took()), sent
            raise AssertionError("unreachable: the last address answers or raises")
    except TimeoutError:
        return AttemptResult(None, f"timeout: no answer within {timeout:g} s", took()), sent
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:  # (UnicodeError is a ValueError)
        return AttemptResult(None, f"connection error: {fetch.describe_cause(exc)}", took()), sent


async def _checked_addresses(url: httpx.URL, policy: AddressPolicy, timeout: float) -> list[fetch.IPAddress] | str:
    """Every address the URL's host resolves to, once, all of them allowed; or why the host is refused."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:  # a name: resolved off the event loop
        addresses = await asyncio.to_thread(fetch.resolve, host, port, timeout)
    if not addresses:
        raise OSError(f"{host} does not resolve")
    for address in addresses:  # one refused address refuses the host, as for fetched images
        reason = policy.refusal(host, address)
        if reason is not None:
            return reason
    return addresses


def _pinned_request(
    client: httpx.AsyncClient, url: httpx.URL, address: fetch.IPAddress, headers: dict[str, str], body: bytes
) -> httpx.Request:
    """The POST to ``address`` itself, with the URL's host in ``Host`` and (https) the TLS name."""
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    host_header = url.netloc.decode("ascii").rpartition("@")[2]
    pinned = url.copy_with(host=str(address))
    return client.build_request(
        "POST", pinned, content=body, headers={"Host": host_header, **headers}, extensions=extensions
    )
