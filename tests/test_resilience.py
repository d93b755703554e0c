"""Under load and at the edges: concurrent jobs, graceful shutdown, protected controls, bounded state."""

from __future__ import annotations

import asyncio
import io
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from bria_client import BriaAsyncClient
from PIL import Image

from mock_server import ratelimit
from mock_server.app import create_app
from mock_server.config import Settings
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image
from mock_server.server import ServerThread

RMBG = "image/edit/remove_background"


def test_200_concurrent_jobs_through_the_async_sdk_each_get_their_own_result(bria_env: BriaMock) -> None:
    sizes = [(16 + i, 8 + i % 7) for i in range(200)]

    async def one(
        client: BriaAsyncClient, downloader: httpx.AsyncClient, size: tuple[int, int]
    ) -> tuple[str, tuple[int, int], tuple[int, int]]:
        submitted = await client.submit(endpoint=RMBG, payload={"image": make_image("PNG", "RGB", size).base64})
        done = await client.poll(submitted, interval=0.2, timeout=120)
        png = (await downloader.get(done.result.image_url)).content
        return submitted.request_id, size, Image.open(io.BytesIO(png)).size

    async def all_jobs() -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
        async with BriaAsyncClient() as client, httpx.AsyncClient(timeout=60) as downloader:
            return await asyncio.gather(*(one(client, downloader, size) for size in sizes))

    results = asyncio.run(all_jobs())

    assert len({request_id for request_id, _, _ in results}) == 200  # no id collides
    assert all(sent == got for _, sent, got in results)  # no result served for the wrong job


@pytest.mark.subprocess
def test_shutdown_drains_an_answer_in_flight(wait_until_up: Callable[..., None]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        slow = '{"type": "slow_body", "duration_ms": 1500, "chunks": 5}'
        headers = {"api_token": "t", "X-Bria-Mock-Rule": slow}
        with httpx.stream("GET", f"{base_url}/v2/status/x", headers=headers, timeout=30) as response:
            process.send_signal(signal.SIGINT)  # the answer has started and is still being sent
            body = response.read()
        assert body == b'{"status":"NOT_FOUND"}'
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("admin_token", "headers", "status"), [("", {}, 403), ("s3", {"X-Bria-Mock-Admin-Token": "s3"}, 200)]
)
def test_controls_refuse_callers_off_this_machine_without_an_admin_token(
    admin_token: str, headers: dict[str, str], status: int
) -> None:
    app = create_app(Settings(admin_token=admin_token))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))

    async def call() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
            return (await client.get("/bria-mock/rules", headers=headers)).status_code

    assert asyncio.run(call()) == status


def test_rate_limit_buckets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 3)
    limiter = ratelimit.RateLimiter(lambda: 0.0, limit=1)
    for token in "abcd":
        limiter.take(token, "status")

    assert [bucket["token_id"] for bucket in limiter.state()] == [
        bucket["token_id"] for bucket in _states_for(limiter, "bcd")
    ]


def _states_for(limiter: ratelimit.RateLimiter, tokens: str) -> list[dict[str, object]]:
    return [bucket for token in tokens for bucket in limiter.state(token)]


@pytest.mark.bria_allow_crashes  # this test makes the fake crash on purpose
def test_a_crash_is_recorded_once_and_the_connection_stays_usable(
    bria_mock: BriaMock, bria_mock_server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(request_id: str, token: str) -> None:
        raise ZeroDivisionError("inside the fake")

    monkeypatch.setattr(bria_mock_server.backend, "status", broken)
    with httpx.Client(base_url=bria_mock.base_url, headers={"api_token": "t"}) as client:
        crashed = client.get("/v2/status/x")
        after = client.get("/bria-mock/health")  # the same keep-alive connection

    assert crashed.status_code == 500
    assert crashed.json()["error"]["details"] == "bria-mock internal error: ZeroDivisionError"
    assert after.status_code == 200
    assert len(bria_mock.crashes()) == 1


def test_a_sync_call_whose_processing_crashes_ends_its_job_unknown(
    bria_mock: BriaMock, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    request.applymarker(pytest.mark.bria_allow_crashes)

    def broken(*args: object, **kwargs: object) -> bytes:
        raise ZeroDivisionError("inside rendering")

    monkeypatch.setattr("mock_server.imaging.remove_background", broken)
    with httpx.Client(base_url=bria_mock.base_url, headers={"api_token": "t"}) as client:
        answer = client.post(
            "/v2/image/edit/remove_background", json={"image": bria_mock.url("/samples/subject.jpg"), "sync": True}
        )
        status = client.get(f"/v2/status/{answer.json()['request_id']}").json()

    assert answer.status_code == 500
    assert status["status"] == "UNKNOWN"
