"""Memory: with default settings no request sequence takes the fake above 1 GB RSS, and it
hands the memory back afterwards.

The fake runs as its own process (``bria-mock serve`` with the README's defaults) so that its
resident size is its own; the test reads ``VmRSS`` and ``VmHWM`` (the peak) from ``/proc``.
The hostile image is an 8x8 JPEG whose frame header declares 7999 x 7999 pixels: 631 bytes
that decode to 64 million pixels.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import free_port

MB = 1024 * 1024
PEAK_LIMIT = 1024 * MB  # the bound on the process's peak RSS (docs/limits-and-security.md)
SETTLE_MARGIN = 300 * MB  # RSS after the load, over its idle size
DECLARED_SIDE = 7999
TOKEN = "memory-test"

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc"),
]


def jpeg_declaring_side(side: int = DECLARED_SIDE) -> bytes:
    """An 8x8 JPEG whose SOF0 frame header is patched to declare ``side`` x ``side`` pixels."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 160, 200)).save(out, "JPEG", quality=90)
    data = bytearray(out.getvalue())
    at = data.index(b"\xff\xc0")  # SOF0: marker, length (2), precision (1), height (2), width (2)
    data[at + 5 : at + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def flat_jpeg_of_side(side: int = DECLARED_SIDE) -> bytes:
    """A complete ``side`` x ``side`` JPEG of one grey: every block coded, a few hundred KB."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(out, "JPEG", quality=50, optimize=True)
    return out.getvalue()


def large_photo_jpeg() -> bytes:
    """A real 4000 x 3000 (12 MP) JPEG: a legitimate large input, not a trick."""
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def memory_of(pid: int) -> dict[str, int]:
    """The process's current (VmRSS) and peak (VmHWM) resident size, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture
def served(wait_until_up: Callable[..., None]) -> Iterator[tuple[str, int]]:
    """``bria-mock serve`` on a free port with default settings (no BRIA_MOCK_* from the caller)."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("BRIA_MOCK_")}
    command = [sys.executable, "-m", "mock_server", "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        yield base_url, process.pid
    finally:
        process.kill()
        process.communicate()


def sync_call(base_url: str, endpoint: str, body: dict[str, Any]) -> int:
    answer = httpx.post(
        f"{base_url}/v2/image/edit/{endpoint}", json={**body, "sync": True}, headers={"api_token": TOKEN}, timeout=120
    )
    return answer.status_code


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (writing 5 to clear_refs), to see each sequence's own peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def test_hostile_and_large_images_stay_under_a_gigabyte_and_memory_is_handed_back(
    served: tuple[str, int],
) -> None:
    base_url, pid = served
    hostile = b64(jpeg_declaring_side())  # 631 bytes declaring 64 MP: refused as truncated
    huge = b64(flat_jpeg_of_side())  # the same 64 MP in a complete JPEG (375 KB): decoded
    small = b64(_small_jpeg())
    assert sync_call(base_url, "remove_background", {"image": small}) == 200  # imports done: this is idle
    idle = memory_of(pid)["VmRSS"]
    sequences: dict[str, Callable[[], list[int]]] = {
        "one hostile": lambda: [sync_call(base_url, "remove_background", {"image": hostile})],
        "four hostile at once": lambda: _at_once(
            4, lambda: sync_call(base_url, "remove_background", {"image": hostile})
        ),
        "four hostile ref_images": lambda: [
            sync_call(base_url, "replace_background", {"image": small, "ref_images": [hostile] * 4})
        ],
        "one 64 MP remove_background": lambda: [sync_call(base_url, "remove_background", {"image": huge})],
        "four 64 MP replace_background at once": lambda: _at_once(
            4, lambda: sync_call(base_url, "replace_background", {"image": huge, "prompt": "a beach"})
        ),
        "four 64 MP ref_images": lambda: [
            sync_call(base_url, "replace_background", {"image": small, "ref_images": [huge] * 4})
        ],
        "a 12 MP photo": lambda: [sync_call(base_url, "remove_background", {"image": b64(large_photo_jpeg())})],
    }
    seen = {}
    for name, run in sequences.items():
        reset_peak(pid)
        statuses = run()
        seen[name] = (statuses, memory_of(pid))
    after = memory_of(pid)["VmRSS"]
    report = f"idle {idle // MB} MB, after {after // MB} MB; " + "; ".join(
        f"{name}: {statuses} peak {memory['VmHWM'] // MB} MB, then {memory['VmRSS'] // MB} MB"
        for name, (statuses, memory) in seen.items()
    )
    print(report)
    assert all(memory["VmHWM"] < PEAK_LIMIT for _, memory in seen.values()), report
    assert after - idle < SETTLE_MARGIN, report
    hostile_statuses = [status for name, (statuses, _) in seen.items() if "hostile" in name for status in statuses]
    assert set(hostile_statuses) == {415}, report
    assert all(status == 200 for name, (statuses, _) in seen.items() if "hostile" not in name for status in statuses)


def _at_once(count: int, call: Callable[[], int]) -> list[int]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def _small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 200)).save(out, "JPEG")
    return out.getvalue()
