"""What ``bria-mock proxy`` adds to a request: the same requests sent straight to a fake and through a
proxy in front of it, median and p95 of each, and the difference. The fake and the proxy run as
``bria-mock serve`` and ``bria-mock proxy`` processes, as they would be used: on threads of one
process they would take turns on one interpreter lock, which measures that lock, not the proxy.

Run: ``python benchmarks/proxy_overhead.py [requests]`` (default 300 of each kind). The kinds: a
status poll of an unknown job (a small JSON answer, checked), a submission with a 64x48 PNG (the
request body checked, the answer checked and rewritten), and a result-image download (streamed).
"""

from __future__ import annotations

import base64
import io
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from PIL import Image


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _timings(send: Callable[[], httpx.Response], runs: int) -> list[float]:
    for _ in range(20):  # warm the connections and caches
        send()
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        send().raise_for_status()
        found.append((time.perf_counter() - started) * 1000)
    return found


def _summary(direct: list[float], proxied: list[float]) -> dict[str, float]:
    def p95(values: list[float]) -> float:
        return sorted(values)[int(len(values) * 0.95) - 1]

    return {
        "direct_median_ms": round(statistics.median(direct), 3),
        "proxied_median_ms": round(statistics.median(proxied), 3),
        "added_median_ms": round(statistics.median(proxied) - statistics.median(direct), 3),
        "added_p95_ms": round(p95(proxied) - p95(direct), 3),
    }


def main(runs: int) -> dict[str, dict[str, float]]:
    image = _png()
    results = {}
    fake_port, proxy_port = _free_port(), _free_port()
    fake, proxy = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{proxy_port}"
    proxy_command = ["proxy", "--target", fake, "--allow-private-target", "--port", str(proxy_port)]
    with _running(["serve", "--port", str(fake_port)], fake), _running(proxy_command, proxy):
        for name, base in (("direct", fake), ("proxied", proxy)):
            with httpx.Client(base_url=base, headers={"api_token": "bench"}) as http:
                job = http.post("/v2/image/edit/remove_background", json={"image": image, "sync": True}).json()
                image_path = httpx.URL(job["result"]["image_url"]).path
                kinds = {
                    "status poll (404)": lambda http=http: _not_found(http),
                    "submission (202)": lambda http=http: http.post(
                        "/v2/image/edit/remove_background", json={"image": image}
                    ),
                    "result image download": lambda http=http, path=image_path: http.get(path),
                }
                for kind, send in kinds.items():
                    results.setdefault(kind, {})[name] = _timings(send, runs)
        proxy_mean = httpx.get(f"{proxy}/bria-mock/proxy").json()["mean_overhead_ms"]
    out = {kind: _summary(found["direct"], found["proxied"]) for kind, found in results.items()}
    out["proxy's own time per exchange (its tally)"] = {"mean_ms": proxy_mean}
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _running(arguments: list[str], base_url: str) -> Iterator[None]:
    """A ``bria-mock`` process, up (answering) before the block and stopped after it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(400):
            try:
                httpx.get(f"{base_url}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _not_found(http: httpx.Client) -> httpx.Response:
    response = http.get("/v2/status/unknown-job")
    return response if response.status_code != 404 else httpx.Response(200, request=response.request)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=2))
