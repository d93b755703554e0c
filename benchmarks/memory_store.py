"""Memory over 100,000 async jobs with state on a Redis/Valkey store: the fake's RSS and the store's.

    python benchmarks/memory_store.py [--jobs 100000]

Starts a private store (:class:`mock_server.state_server.PrivateStateServer`) and ``bria-mock serve
--state <its URL>`` as users start it (default settings otherwise), sends async submits of a tiny
JPEG with the asyncio client (as ``run.py``'s memory section does for the fake in memory), and prints
the fake's RSS and the store's ``used_memory`` after 10,000 jobs and after all of them. Both should
stay flat from 10,000 on: the fake keeps nothing per job, and the store keeps at most ``max_jobs``
(10,000) jobs and a bounded journal.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import run  # noqa: E402

from mock_server.state_server import PrivateStateServer  # noqa: E402
from tests.conftest import free_port  # noqa: E402

FIRST = 10_000
TIME_LIMIT = 900.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def store_mb(url: str) -> float:
    import redis

    with redis.Redis.from_url(url) as client:
        return float(client.info("memory")["used_memory"]) / 1024 / 1024


def wait_until_up(base_url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/bria-mock/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{base_url} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    request = run.post(run.SUBMIT_PATH, run.submit_body(run.tiny_jpeg()))
    with PrivateStateServer() as store:
        port = free_port()
        command = [sys.executable, "-m", "mock_server", "serve", "--state", store.url, "--port", str(port)]
        fake = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base_url)
            print(f"start: fake {rss_mb(fake.pid):.1f} MB RSS, store {store_mb(store.url):.1f} MB", flush=True)
            started = time.monotonic()
            for label, count in ((f"after {FIRST:,}", FIRST), (f"after {options.jobs:,}", options.jobs - FIRST)):
                left = TIME_LIMIT - (time.monotonic() - started)
                result = loadgen.run_python(
                    base_url, request, connections=options.connections, duration=left, count=count
                )
                print(
                    f"{label} jobs: fake {rss_mb(fake.pid):.1f} MB RSS, store {store_mb(store.url):.1f} MB "
                    f"({result.requests / result.seconds:,.0f} req/s, statuses {dict(result.statuses)})",
                    flush=True,
                )
        finally:
            fake.terminate()
            fake.wait(timeout=10)


if __name__ == "__main__":
    main()
