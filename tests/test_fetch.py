"""Opt-in remote fetching (``mock_server.fetch``): every refusal, proven without the internet.

Two autouse guards make this whole file safe by construction, whatever ``fetch.py`` does:
``dns`` answers made-up ``.test`` names from a table and resolves IP literals only
numerically (never a DNS query), and ``connections`` records every TCP connection and
fails any that is not to 127.0.0.1 before it is made. The servers fetched from are
scripted loopback servers started by the test itself.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mock_server.errors import BadRequest, DownloadFailed, ImageNotFound
from mock_server.fetch import FetchPolicy, fetch_image, refusal_reason
from mock_server.inputs import decode_image
from tests.conftest import self_signed_certificate

LOOPBACK = "127.0.0.1"
MAX_BYTES = 256 * 1024
TIMEOUT = 5.0  # generous: only the tests about time use a short one


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


PNG = png_bytes()


def loopback_only(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The policy of the redirect and rebinding tests: 127.0.0.1 (the test's own server) is
    allowed, every other address is judged by the real rules."""
    return None if str(address) == LOOPBACK else refusal_reason(address)


LOOPBACK_ONLY = FetchPolicy(refuse=loopback_only)


# --- guards: no DNS query, no connection but to 127.0.0.1 -------------------------------------


class FakeDns:
    """Made-up names and their addresses; ``BLOCK`` makes a name resolve never (until teardown)."""

    BLOCK = "block"

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self.calls: list[str] = []
        self.release = threading.Event()


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDns]:
    """``socket.getaddrinfo`` answering from a table; anything else is resolved only if it is
    an IP literal (``AI_NUMERICHOST``), so no test ever sends a DNS query."""
    fake = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        fake.calls.append(str(host))
        answer = fake.names.get(host)
        if answer == FakeDns.BLOCK:
            fake.release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "released at teardown")
        if answer is not None:
            return [_addrinfo(address, int(port)) for address in answer]
        return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield fake
    fake.release.set()


def _addrinfo(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection attempted (httpcore connects with ``socket.create_connection``);
    one to anything but 127.0.0.1 fails the test without being made."""
    made: list[tuple[str, int]] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        made.append((address[0], int(address[1])))
        if address[0] != LOOPBACK:
            raise AssertionError(f"a connection to {address} was attempted: only {LOOPBACK} is allowed here")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return made


# --- scripted loopback servers ------------------------------------------------------------------


class LoopbackServer:
    """An HTTP server on 127.0.0.1 whose every connection is handed to ``handler(server, conn, head)``."""

    def __init__(self, handler: Callable[[LoopbackServer, socket.socket, bytes], None], tls: ssl.SSLContext | None):
        self.handler = handler
        self.tls = tls
        self.heads: list[bytes] = []
        self.sni: list[str | None] = []
        self.sent = 0
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.02)
        self.port = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def url(self, path: str = "/cat.png", host: str = LOOPBACK, scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                if self.tls is None:
                    self._exchange(conn)
                    return
                with self.tls.wrap_socket(conn, server_side=True) as secure:
                    self._exchange(secure)
            except OSError:  # the client hung up (or refused our certificate): what several tests want
                pass

    def _exchange(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        self.heads.append(head)
        self.handler(self, conn, head)

    def header(self, name: str, index: int = 0) -> str | None:
        for line in self.heads[index].decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def close(self) -> None:
        self.stopping.set()
        self._accepter.join(5)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    """``serve(handler, tls=None)``: a scripted loopback server, stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(handler: Callable[[LoopbackServer, socket.socket, bytes], None], tls: ssl.SSLContext | None = None):
        servers.append(LoopbackServer(handler, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Callable[..., None]:
    """A handler answering every request the same way."""

    def handler(server: LoopbackServer, conn: socket.socket, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return handler


def by_path(routes: dict[str, Callable[..., None]]) -> Callable[..., None]:
    def handler(server: LoopbackServer, conn: socket.socket, head: bytes) -> None:
        path = head.split(b" ", 2)[1].decode()
        routes.get(path, answer(404))(server, conn, head)

    return handler


def fetch(url: str, **kwargs: Any) -> bytes:
    kwargs.setdefault("max_bytes", MAX_BYTES)
    kwargs.setdefault("timeout", TIMEOUT)
    return fetch_image(url, "image", **kwargs)


# --- the address rules ----------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.20", "private"),
    ("fc00::1", "private"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.2.1", "private"),  # documentation range (TEST-NET-1)
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_refusal_reason_names_the_kind_of_address(address: str, kind: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_a_name_resolving_to_a_refused_address_is_never_connected_to(
    address: str, kind: str, dns: FakeDns, connections: list[tuple[str, int]]
) -> None:
    dns.names["images.test"] = [address]
    with pytest.raises(DownloadFailed) as failed:
        fetch("http://images.test/cat.png")
    assert failed.value.status_code == 460
    details = failed.value.details
    assert details.startswith("image: could not download http://images.test/cat.png")
    assert f"images.test resolves to {ipaddress.ip_address(address)}" in details and kind in details
    assert connections == []


def test_one_refused_address_refuses_the_whole_name(dns: FakeDns, connections: list[tuple[str, int]]) -> None:
    dns.names["mixed.test"] = ["93.184.216.34", "10.0.0.1"]
    with pytest.raises(DownloadFailed, match=r"10\.0\.0\.1 is|resolves to 10\.0\.0\.1"):
        fetch("http://mixed.test/cat.png")
    assert connections == []  # not even the public address was tried


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cat.png",
        "http://[::1]/cat.png",
        "http://[::ffff:127.0.0.1]/cat.png",
        "http://2130706433/cat.png",  # 127.0.0.1 in decimal
        "http://0x7f.1/cat.png",  # ... and in the old shorthand forms
        "http://127.1/cat.png",
        "http://0.0.0.0/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "https://10.0.0.1/cat.png",
    ],
)
def test_address_literals_are_checked_too(url: str, connections: list[tuple[str, int]]) -> None:
    with pytest.raises(DownloadFailed, match=r"\(refused\)"):
        fetch(url)
    assert connections == []


def test_a_loopback_server_is_refused_without_allow_private(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(200, PNG))
    with pytest.raises(DownloadFailed, match="loopback"):
        fetch(server.url())
    assert server.heads == []


@pytest.mark.parametrize("url", ["ftp://images.test/cat.png", "file:///etc/passwd", "gopher://images.test/", "cat.png"])
def test_only_http_and_https(url: str, connections: list[tuple[str, int]]) -> None:
    with pytest.raises(BadRequest, match="only http and https") as failed:
        fetch(url)
    assert failed.value.status_code == 400 and failed.value.details.startswith("image: ")
    assert connections == []


@pytest.mark.parametrize("url", ["http:///cat.png", "http://[::1/cat.png", "http://exa mple.test/", "http://a:99999/"])
def test_urls_without_a_valid_host_are_the_clients_400(url: str) -> None:
    with pytest.raises(BadRequest):
        fetch(url)


def test_a_name_that_does_not_resolve_is_460(connections: list[tuple[str, int]]) -> None:
    with pytest.raises(DownloadFailed, match="does not resolve"):
        fetch("http://nowhere.test/cat.png")
    assert connections == []


# --- the happy path and the pinned connection -------------------------------------------------------


def test_happy_path_connects_to_the_resolved_address_with_the_original_host(
    serve: Callable[..., LoopbackServer],
    dns: FakeDns,
    connections: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(proxy, "http://10.9.9.9:3128")  # never used: no proxy from the environment
    server = serve(answer(200, PNG, {"Content-Type": "image/png"}))
    dns.names["images.test"] = [LOOPBACK]
    data = fetch(server.url(host="images.test"), allow_private=True)
    assert data == PNG
    assert decode_image(data, "image", formats={"PNG"}, max_pixels=10_000).size == (8, 6)
    assert connections == [(LOOPBACK, server.port)]
    assert server.header("Host") == f"images.test:{server.port}"
    assert server.header("Accept-Encoding") == "identity"
    assert server.header("api_token") is None and server.header("Cookie") is None


def test_the_name_is_resolved_once_per_hop_no_rebinding_window(
    serve: Callable[..., LoopbackServer],
    dns: FakeDns,
    connections: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve(answer(200, PNG))
    dns.names["rebind.test"] = [LOOPBACK]
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        answers = real(host, *args, **kwargs)
        if host == "rebind.test":
            dns.names["rebind.test"] = ["10.0.0.1"]  # any later lookup would get a private address
        return answers

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert fetch(server.url(host="rebind.test"), policy=LOOPBACK_ONLY) == PNG
    assert dns.calls.count("rebind.test") == 1
    assert connections == [(LOOPBACK, server.port)]


# --- redirects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("http://10.0.0.1/cat.png", "10.0.0.1 is a private address"),
        ("http://metadata.test/latest/meta-data/", "metadata.test resolves to 169.254.169.254"),
        ("http://[::1]:8080/cat.png", "::1 is a loopback address"),
    ],
)
def test_every_redirect_hop_is_checked_again(
    location: str,
    refused: str,
    serve: Callable[..., LoopbackServer],
    dns: FakeDns,
    connections: list[tuple[str, int]],
) -> None:
    dns.names["metadata.test"] = ["169.254.169.254"]
    server = serve(answer(302, headers={"Location": location}))
    with pytest.raises(DownloadFailed) as failed:
        fetch(server.url(), policy=LOOPBACK_ONLY)
    assert refused in failed.value.details and f"redirected to {location}" in failed.value.details
    assert connections == [(LOOPBACK, server.port)]  # the first hop only


def _chain(hops: int) -> dict[str, Callable[..., None]]:
    routes = {f"/r{n}": answer(307, headers={"Location": f"/r{n - 1}"}) for n in range(1, hops + 1)}
    routes["/r0"] = answer(200, PNG)
    return routes


def test_up_to_three_redirects_are_followed(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(by_path(_chain(3)))
    assert fetch(server.url("/r3"), allow_private=True) == PNG
    assert len(server.heads) == 4


def test_a_fourth_redirect_is_460(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(by_path(_chain(4)))
    with pytest.raises(DownloadFailed, match="more than 3 redirects"):
        fetch(server.url("/r4"), allow_private=True)
    assert len(server.heads) == 4  # the fifth request is never sent


def test_a_redirect_loop_is_460(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(301, headers={"Location": "/cat.png"}))
    with pytest.raises(DownloadFailed, match="more than 3 redirects"):
        fetch(server.url(), allow_private=True)


def test_a_redirect_to_another_scheme_is_460_not_400(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(DownloadFailed, match=r"a redirect to file:///etc/passwd is refused: only http and https"):
        fetch(server.url(), allow_private=True)


def test_an_unparsable_redirect_is_460(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(302, headers={"Location": "http://[::1/cat.png"}))
    with pytest.raises(DownloadFailed, match="is refused: an invalid URL"):
        fetch(server.url(), allow_private=True)


# --- answers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_a_remote_404_is_404(status: int, serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(status, b"gone"))
    with pytest.raises(ImageNotFound) as failed:
        fetch(server.url(), allow_private=True)
    assert failed.value.status_code == 404 and f"the server answered {status}" in failed.value.details


@pytest.mark.parametrize("status", [500, 503, 403, 401, 304, 204])
def test_other_answers_are_460(status: int, serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(status))
    with pytest.raises(DownloadFailed) as failed:
        fetch(server.url(), allow_private=True)
    assert failed.value.status_code == 460


def test_an_encoded_answer_is_refused_not_inflated(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(answer(200, b"\x1f\x8b" + bytes(64), {"Content-Encoding": "gzip"}))
    with pytest.raises(DownloadFailed, match="gzip-encoded"):
        fetch(server.url(), allow_private=True)


def test_a_closed_port_is_460() -> None:
    with socket.create_server((LOOPBACK, 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(DownloadFailed, match="connection failed"):
        fetch(f"http://{LOOPBACK}:{port}/cat.png", allow_private=True)


# --- size and time ------------------------------------------------------------------------------------


def test_a_declared_size_over_the_cap_is_refused_before_reading(serve: Callable[..., LoopbackServer]) -> None:
    def huge(server: LoopbackServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + bytes(1024))
        server.stopping.wait(5)

    server = serve(huge)
    with pytest.raises(DownloadFailed, match="1000000000 bytes, over the limit of 262144 bytes"):
        fetch(server.url(), allow_private=True)


def test_a_body_over_the_cap_stops_the_download(serve: Callable[..., LoopbackServer]) -> None:
    total = 64 * 1024 * 1024

    def flood(server: LoopbackServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # no length: read to the end
        chunk = bytes(64 * 1024)
        while server.sent < total:
            conn.sendall(chunk)
            server.sent += len(chunk)

    server = serve(flood)
    with pytest.raises(DownloadFailed, match="over the limit of 262144 bytes"):
        fetch(server.url(), allow_private=True)
    server.close()  # waits for the handler: it ends when the client has hung up
    assert server.sent < total // 4  # the client stopped reading; only socket buffers were filled


def test_a_stalled_server_is_460_within_the_timeout(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(lambda server, conn, head: server.stopping.wait(10))
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match=r"no complete answer within 0\.3 s"):
        fetch(server.url(), allow_private=True, timeout=0.3)
    assert time.monotonic() - started < 5


def test_a_dribbling_server_is_cut_by_the_total_deadline(serve: Callable[..., LoopbackServer]) -> None:
    """One byte every 20 ms never trips a per-read timeout: only a deadline on the whole fetch ends it."""

    def dribble(server: LoopbackServer, conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not server.stopping.wait(0.02):
            conn.sendall(b"\0")

    server = serve(dribble)
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match=r"no complete answer within 0\.4 s"):
        fetch(server.url(), allow_private=True, timeout=0.4)
    assert time.monotonic() - started < 5


def test_a_resolver_that_hangs_is_cut_by_the_deadline(dns: FakeDns, connections: list[tuple[str, int]]) -> None:
    dns.names["slow.test"] = FakeDns.BLOCK
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match=r"no complete answer within 0\.2 s"):
        fetch("http://slow.test/cat.png", timeout=0.2)
    assert time.monotonic() - started < 5  # the resolver is still blocked: it is released at teardown
    assert connections == []


# --- https: SNI and the certificate check use the URL's host, not the address ---------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``images.test`` (made with the openssl command line)."""
    return self_signed_certificate(tmp_path_factory, "images.test")


def _tls_server(serve: Callable[..., LoopbackServer], certificate: tuple[Path, Path]) -> LoopbackServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = serve(answer(200, PNG), tls=context)
    context.sni_callback = lambda sslobj, name, ctx: server.sni.append(name)  # type: ignore[assignment,misc,return-value]
    return server


def test_https_sends_the_urls_host_as_sni_and_checks_the_certificate_against_it(
    serve: Callable[..., LoopbackServer], certificate: tuple[Path, Path], dns: FakeDns
) -> None:
    server = _tls_server(serve, certificate)
    dns.names["images.test"] = [LOOPBACK]
    policy = FetchPolicy(ssl_context=ssl.create_default_context(cafile=str(certificate[0])))
    assert fetch(server.url(host="images.test", scheme="https"), allow_private=True, policy=policy) == PNG
    assert server.sni == ["images.test"]
    assert server.header("Host") == f"images.test:{server.port}"


def test_https_with_a_certificate_for_another_name_is_460(
    serve: Callable[..., LoopbackServer], certificate: tuple[Path, Path], dns: FakeDns
) -> None:
    server = _tls_server(serve, certificate)
    dns.names["other.test"] = [LOOPBACK]
    policy = FetchPolicy(ssl_context=ssl.create_default_context(cafile=str(certificate[0])))
    with pytest.raises(DownloadFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        fetch(server.url(host="other.test", scheme="https"), allow_private=True, policy=policy)
    assert server.heads == []  # no request was sent over the unverified connection


# --- any URL: only the documented errors ---------------------------------------------------------------

REFUSE_ALL = FetchPolicy(refuse=lambda address: "refused by this test")


def test_any_url_gets_only_documented_errors(connections: list[tuple[str, int]]) -> None:
    """Whatever the URL, only 400 and 460 escape, and no connection is attempted (every address is refused)."""
    texts = st.text(max_size=40)
    urls = texts | st.builds(
        lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["http", "https", "HTTP"]), texts
    )

    @given(url=urls)
    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    def run(url: str) -> None:
        with pytest.raises((BadRequest, DownloadFailed)) as failed:
            fetch(url, policy=REFUSE_ALL)
        assert failed.value.details.startswith("image: ")

    run()
    assert connections == []
