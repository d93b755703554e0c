"""Shared fixtures: the fake over a real socket, and an httpx client that checks every answer
against ``schemas/`` as it arrives."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from mock_server import operations, samples
from mock_server.config import Settings
from mock_server.contract import response_errors, response_schema
from mock_server.fixtures.plugin import BriaMock
from mock_server.server import ServerThread
from mock_server.state_server import NoServerBinary, PrivateStateServer

TOKEN = "test-token"
IN_PROCESS_URL = "http://testserver"


@pytest.fixture(scope="session")
def bria_mock_settings() -> Settings:
    """Defaults only: a developer's BRIA_MOCK_* variables must not change the suite."""
    return Settings()


OPERATION_PATHS = {op.path: op.name for op in operations.OPERATIONS}


def operation_of(path: str) -> str | None:
    """The operation (or ``status``) whose response schemas an answer on ``path`` must conform to."""
    if path.startswith("/v2/status/"):
        return operations.STATUS
    return OPERATION_PATHS.get(path)


def check_conforms(response: httpx.Response) -> None:
    """Fail the test when an API answer breaks its schema (every answer the suite sees is checked)."""
    operation = operation_of(response.request.url.path)
    if operation is None:
        return
    response.read()
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    name = response_schema(operation, response.status_code, body)
    problems = response_errors(name, body)
    assert not problems, f"{response.status_code} answer breaks schemas/{name}.json: {problems}\n{body}"
    if "error" in body and response.status_code >= 400:
        assert body["error"]["code"] == response.status_code


def checked_client(base_url: str, token: str | None = TOKEN) -> httpx.Client:
    headers = {"api_token": token} if token is not None else {}
    return httpx.Client(base_url=base_url, headers=headers, event_hooks={"response": [check_conforms]}, timeout=30)


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    """``client_for(base_url, token=...)``: a schema-checking client for any fake (closed after the test)."""
    clients: list[httpx.Client] = []

    def make(base_url: str, token: str | None = TOKEN) -> httpx.Client:
        clients.append(checked_client(base_url, token))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(bria_app: Starlette) -> Iterator[httpx.Client]:
    """An in-process httpx client on this test's own fake (its handle: ``bria_inprocess``), with a
    token, checking every answer's schema. No socket: ``socket_api`` is the same over one."""
    from mock_server.fixtures.inprocess import SyncASGITransport

    hooks = {"response": [check_conforms]}
    transport = SyncASGITransport(bria_app)
    with httpx.Client(
        transport=transport, base_url=IN_PROCESS_URL, headers={"api_token": TOKEN}, event_hooks=hooks
    ) as client:
        yield client


@pytest.fixture
def socket_api(bria_mock: BriaMock) -> Iterator[httpx.Client]:
    """``api`` over a real socket, on the (reset) session fake (its handle: ``bria_mock``)."""
    with checked_client(bria_mock.base_url) as client:
        yield client


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    """Start a dedicated fake with some settings changed; stopped after the test."""
    started: list[ServerThread] = []

    def make(**changes: Any) -> ServerThread:
        server = ServerThread(Settings(**changes)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def subject_jpeg_b64() -> str:
    """A 640x480 JPEG of a subject on a plain background, base64-encoded."""
    sample = samples.sample("subject.jpg")
    assert sample is not None
    return base64.b64encode(sample).decode()


def wait_until_up(base_url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll the health route of a fake started as a process until it answers (or fail)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None:
            assert process.poll() is None, process.communicate()
        try:
            httpx.get(f"{base_url}/bria-mock/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("bria-mock did not come up")


def free_port() -> int:
    """A loopback port free now (for a server a test starts as a separate process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(name="wait_until_up")
def wait_until_up_fixture() -> Callable[..., None]:
    """``wait_until_up(base_url, process=None)``: for tests that start the fake as a process."""
    return wait_until_up


@pytest.fixture(scope="session")
def state_server() -> Iterator[PrivateStateServer]:
    """A real Valkey/Redis server on a free loopback port, for this test process (see state_server)."""
    try:
        server = PrivateStateServer(tcp=True)
    except NoServerBinary as exc:
        pytest.skip(f"shared state: {exc}")
    with server:
        yield server


@pytest.fixture
def state_url(state_server: PrivateStateServer) -> str:
    """The shared store's URL, emptied for this test."""
    import redis

    with redis.Redis.from_url(state_server.url) as client:
        client.flushdb()
    return state_server.url


# Fixtures that serve the fake (or a receiver) on a real loopback socket: a test using one is a
# ``socket`` test. Everything else runs in-process (``bria_client``, ``bria_inprocess``, ``bria_app``).
SOCKET_FIXTURES = frozenset(
    {
        "bria_mock",
        "bria_env",
        "bria_image",
        "bria_mock_server",
        "make_server",
        "state_server",
        "client_for",
        "raw_client",
        "served_fake",
        "bria_api",
        "bria_target",
        "bria_webhook_receiver",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a socket fixture ``socket``, so ``-m "not socket"`` runs the in-process rest."""
    for item in items:
        if SOCKET_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.socket)


def self_signed_certificate(tmp_path_factory: pytest.TempPathFactory, host: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``host`` (made with the openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
