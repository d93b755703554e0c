"""Memory: decoded pixels are the cost. A limit per request (413), a budget for the whole
process (work waits for room; a sync call at most ``decode_wait_seconds``, then 503), decoding at
reduced size where the operation allows, and no full decode where the header tells enough.

Each test has its own ``max_decoding_pixels``: budgets are shared by every app in the process with
the same capacity, and a test holds its own to make the fake wait.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from PIL import Image

from mock_server.errors import BriaError
from mock_server.inputs import DecodeBudget, check_image
from mock_server.pixel_budget import PixelBudget, process_budget
from mock_server.server import ServerThread

FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
REMOVE = "/v2/image/edit/remove_background"
REPLACE = "/v2/image/edit/replace_background"


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def flat_jpeg(width: int, height: int) -> bytes:
    return encoded(Image.new("RGB", (width, height), (40, 120, 200)), "JPEG", quality=60)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Held:
    """Pixels of a budget the test itself holds, to make the fake wait."""

    def __init__(self, budget: PixelBudget, pixels: int) -> None:
        self._block = budget.held_for(pixels, wait=0)
        self._block.__enter__()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._block.__exit__(None, None, None)


@pytest.fixture
def holding() -> Iterator[Callable[[PixelBudget, int], Held]]:
    """``holding(budget, pixels)``: hold pixels of a budget (given back at the latest after the test)."""
    held: list[Held] = []

    def hold(budget: PixelBudget, pixels: int) -> Held:
        held.append(Held(budget, pixels))
        return held[-1]

    yield hold
    for each in held:
        each.release()


# --- the checks -------------------------------------------------------------------------------------


def test_a_jpeg_far_too_short_for_the_size_it_declares_is_415_before_decoding(
    bria_client: httpx.Client,
) -> None:
    """631 bytes declaring 7999 x 7999: one bit per 8x8 block would take 125,000 bytes."""
    data = bytearray(flat_jpeg(8, 8))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", 7999, 7999)

    started = time.monotonic()
    answer = bria_client.post(REMOVE, json={"image": b64(bytes(data)), "sync": True})

    assert answer.status_code == 415, answer.text
    assert "truncated or corrupt" in answer.json()["error"]["details"]
    assert time.monotonic() - started < 1


def noisy_jpeg(side: int) -> bytes:
    return encoded(Image.effect_noise((side, side), 64).convert("RGB"), "JPEG", quality=90)


def test_a_large_jpeg_cut_short_is_still_415_though_checked_at_an_eighth(bria_client: httpx.Client) -> None:
    """Long enough for its declared size, so only decoding finds it: at 1/8 scale, in a worker thread."""
    data = noisy_jpeg(2048)
    cut = data[: len(data) * 2 // 3]

    answer = bria_client.post(REMOVE, json={"image": b64(cut), "sync": True})

    assert answer.status_code == 415, answer.text
    assert "truncated or corrupt" in answer.json()["error"]["details"]


def test_a_check_decodes_a_jpeg_at_an_eighth_and_a_png_whole_in_the_budget(
    holding: Callable[[PixelBudget, int], Held],
) -> None:
    budget = PixelBudget(1_000_000)
    holding(budget, 600_000)
    room = DecodeBudget(budget, wait_seconds=0.1)

    jpeg = check_image(flat_jpeg(4096, 4096), "image", formats=FORMATS, max_pixels=10**8, budget=room)
    with pytest.raises(BriaError) as busy:
        check_image(
            encoded(Image.new("RGB", (1024, 1024)), "PNG"), "image", formats=FORMATS, max_pixels=10**8, budget=room
        )

    assert jpeg.size == (4096, 4096)  # the declared size, though 512 x 512 was decoded (room for it)
    assert busy.value.status_code == 503 and "max_decoding_pixels" in busy.value.details
    assert budget.held == 600_000


@pytest.mark.parametrize(
    ("size", "at_least"),
    [((4096, 4096), (1024, 1024)), ((7999, 5000), (1295, 809)), ((900, 700), (1024, 1024)), ((2050, 1030), (512, 512))],
)
def test_the_reduced_size_counted_is_the_size_decoded(size: tuple[int, int], at_least: tuple[int, int]) -> None:
    checked = check_image(flat_jpeg(*size), "image", formats=FORMATS, max_pixels=10**8)

    assert checked.decoded_size(at_least) == checked.open(at_least).size
    assert min(checked.decoded_size(at_least)) >= min(min(at_least), min(size))


# --- the limit per request --------------------------------------------------------------------------


def test_replace_background_decodes_a_large_jpeg_at_the_size_it_needs_and_counts_only_that(
    make_server: Callable[..., ServerThread], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_server(max_request_pixels=2_000_000, max_decoding_pixels=2_000_001).base_url)
    image = b64(flat_jpeg(4096, 4096))  # 16.8 MP whole; replace_background needs 1 MP of it

    replaced = client.post(REPLACE, json={"image": image, "prompt": "a beach", "sync": True})
    removed = client.post(REMOVE, json={"image": image, "sync": True})

    assert replaced.status_code == 200, replaced.text
    result = Image.open(io.BytesIO(client.get(replaced.json()["result"]["image_url"]).content))
    assert result.size == (1024, 1024)
    assert removed.status_code == 413
    assert "16777216 pixels" in removed.json()["error"]["details"]
    assert "max_request_pixels" in removed.json()["error"]["details"]


def test_the_limit_counts_every_image_of_a_request_together(
    make_server: Callable[..., ServerThread], client_for: Callable[..., httpx.Client]
) -> None:
    client = client_for(make_server(max_request_pixels=3_000_000, max_decoding_pixels=3_000_001).base_url)
    ref = b64(encoded(Image.new("RGB", (1000, 1000), (9, 9, 9)), "PNG"))  # a PNG decodes whole: 1 MP each

    three = client.post(REPLACE, json={"image": ref, "ref_images": [ref] * 2, "sync": True})
    four = client.post(REPLACE, json={"image": ref, "ref_images": [ref] * 3, "sync": True})

    assert three.status_code == 200, three.text
    assert four.status_code == 413 and "4 image(s) decode to" in four.json()["error"]["details"]


# --- the process's budget ---------------------------------------------------------------------------


def test_a_sync_call_waits_for_room_at_most_decode_wait_seconds_then_gets_503(
    make_server: Callable[..., ServerThread],
    client_for: Callable[..., httpx.Client],
    holding: Callable[[PixelBudget, int], Held],
) -> None:
    capacity = 1_000_003
    client = client_for(make_server(max_decoding_pixels=capacity, decode_wait_seconds=0.3).base_url)
    holding(process_budget(capacity), capacity)
    body = {"image": b64(flat_jpeg(600, 600)), "sync": True}  # 360,000 pixels

    started = time.monotonic()
    refused = client.post(REMOVE, json=body)
    waited = time.monotonic() - started

    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "decode_wait_seconds" in refused.json()["error"]["details"]
    assert 0.3 <= waited < 3
    assert process_budget(capacity).held == capacity  # nothing of the refused call is left held


def test_an_async_job_waits_for_room_then_completes(
    make_server: Callable[..., ServerThread],
    client_for: Callable[..., httpx.Client],
    holding: Callable[[PixelBudget, int], Held],
) -> None:
    capacity = 1_000_004
    budget = process_budget(capacity)
    client = client_for(make_server(max_decoding_pixels=capacity, progress_polls=0).base_url)
    held = holding(budget, 900_000)
    status_url = client.post(REMOVE, json={"image": b64(flat_jpeg(600, 600))}).json()["status_url"]

    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(client.get, status_url)  # the due poll processes the job: it waits for room
        _wait_until(lambda: budget.waiting == 1)
        assert not poll.done()
        held.release()
        answer = poll.result(timeout=30)

    assert answer.json()["status"] == "COMPLETED"


def test_threads_waiting_for_pixels_never_starve_the_thread_pool(
    make_server: Callable[..., ServerThread],
    client_for: Callable[..., httpx.Client],
    holding: Callable[[PixelBudget, int], Held],
) -> None:
    """45 jobs wait for room, more than the pool's 40 threads: a small sync call still gets a thread."""
    capacity = 1_000_005
    budget = process_budget(capacity)
    server = make_server(max_decoding_pixels=capacity, progress_polls=0)
    client = client_for(server.base_url)
    held = holding(budget, capacity)
    image = b64(flat_jpeg(600, 600))
    status_urls = [client.post(REMOVE, json={"image": image}).json()["status_url"] for _ in range(45)]

    with ThreadPoolExecutor(45) as pool, httpx.Client(headers=client.headers, timeout=60) as polls:
        answers = [pool.submit(polls.get, url) for url in status_urls]
        _wait_until(lambda: budget.waiting == 45)
        waiting_threads = threading.active_count() - 45  # (less this test's own 45 polling threads)
        small = client.post(REMOVE, json={"image": b64(flat_jpeg(64, 64)), "sync": True}, timeout=10)
        held.release()
        statuses = [answer.result(timeout=60).json()["status"] for answer in answers]
    assert waiting_threads < 40  # the jobs wait on the event loop, not each in a worker thread

    assert small.status_code == 200
    assert statuses == ["COMPLETED"] * 45


def _wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
