"""Where a webhook may go and how one attempt reaches it: the address policy, and the connection
pinned to the checked address with the URL's host in ``Host``, the TLS name and the certificate check."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server.webhook_targets import AddressPolicy, AttemptResult, post
from tests.conftest import self_signed_certificate

NEVER = "never a webhook target"
PUBLIC = "a public address; webhooks go to loopback and private ones (webhook_allowlist)"


@pytest.mark.parametrize(
    ("entries", "host", "address", "refused"),
    [
        ((), "h", "127.0.0.1", None),
        ((), "h", "10.1.2.3", None),
        ((), "h", "::1", None),
        ((), "h", "8.8.8.8", f"8.8.8.8 is {PUBLIC}"),
        ((), "h", "169.254.169.254", f"169.254.169.254 is a cloud metadata address, {NEVER}"),
        (("*",), "h", "169.254.169.254", f"169.254.169.254 is a cloud metadata address, {NEVER}"),
        (("*",), "h", "fe80::1", f"fe80::1 is a link-local address, {NEVER}"),
        (("*",), "h", "100.100.100.200", f"100.100.100.200 is a cloud metadata address, {NEVER}"),
        (("*",), "h", "8.8.8.8", None),
        (("203.0.113.0/24",), "h", "203.0.113.9", None),
        (("203.0.113.0/24",), "h", "127.0.0.1", "127.0.0.1 is not on webhook_allowlist"),
        (("hooks.example.com",), "Hooks.Example.com.", "8.8.8.8", None),
        (("hooks.test",), "hooks.test", "169.254.170.2", f"169.254.170.2 is a cloud metadata address, {NEVER}"),
    ],
)  # fmt: skip
def test_the_address_policy(entries: tuple[str, ...], host: str, address: str, refused: str | None) -> None:
    policy = AddressPolicy.from_allowlist(entries)

    assert policy.refusal(host, ipaddress.ip_address(address)) == refused


# --- one attempt over https, to a receiver with its own certificate ---------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (made with the openssl command line)."""
    return self_signed_certificate(tmp_path_factory, "localhost")


class _Seen:
    def __init__(self) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []


@pytest.fixture
def https_receiver(certificate: tuple[Path, Path]) -> Iterator[tuple[int, _Seen]]:
    seen = _Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda sslobj, name, ctx: seen.sni.append(name)  # type: ignore[assignment,misc,return-value]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def attempt(url: str, cafile: Path) -> AttemptResult:
    async def run() -> AttemptResult:
        verify = ssl.create_default_context(cafile=str(cafile))
        async with httpx.AsyncClient(verify=verify, trust_env=False) as client:
            result, _ = await post(client, url, {"X": "1"}, b"{}", policy=AddressPolicy(), timeout=5)
            return result

    return asyncio.run(run())


def test_https_goes_to_the_checked_address_with_the_urls_host_as_sni_and_host(
    https_receiver: tuple[int, _Seen], certificate: tuple[Path, Path]
) -> None:
    port, seen = https_receiver

    result = attempt(f"https://localhost:{port}/hook", certificate[0])

    assert (result.status, result.error) == (204, None)
    assert seen.sni == ["localhost"] and seen.hosts == [f"localhost:{port}"]


def test_https_to_a_certificate_for_another_name_is_a_connection_error(
    https_receiver: tuple[int, _Seen], certificate: tuple[Path, Path]
) -> None:
    port, seen = https_receiver

    result = attempt(f"https://127.0.0.1:{port}/hook", certificate[0])

    assert result.status is None and result.error is not None
    assert result.error.startswith("connection error: ConnectError") and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert seen.hosts == []  # nothing was sent over the unverified connection
