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
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
import peers  # noqa: E402
import run  # noqa: E402

from mock_server.state_server import PrivateStateServer  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    request = run.post(run.SUBMIT_PATH, run.submit_body(run.tiny_jpeg()))
    port = peers.free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = peers.serve_command(port, "--state")
    with PrivateStateServer() as store, peers.process([*command, store.url], f"{base_url}/bria-mock/health") as fake:
        print(f"start: fake {rss_mb(fake.pid):.1f} MB RSS, store {store_mb(store.url):.1f} MB", flush=True)
        started = time.monotonic()
        for label, count in ((f"after {FIRST:,}", FIRST), (f"after {options.jobs:,}", options.jobs - FIRST)):
            left = TIME_LIMIT - (time.monotonic() - started)
            connections = options.connections
            result = loadgen.run_python(base_url, request, connections=connections, duration=left, count=count)
            print(
                f"{label} jobs: fake {rss_mb(fake.pid):.1f} MB RSS, store {store_mb(store.url):.1f} MB "
                f"({result.requests / result.seconds:,.0f} req/s, statuses {dict(result.statuses)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
