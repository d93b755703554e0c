"""The benchmarked apps as processes: start one with ``serve.py``, read its RSS and CPU time, stop it."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


class Served:
    """One app served by ``serve.py`` in its own process."""

    def __init__(self, app: str, loop: str, http: str) -> None:
        command = [sys.executable, str(HERE / "serve.py"), app, "--loop", loop, "--http", http]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)  # bounded: never wait forever
        info = json.loads((self.process.stdout.readline() if ready else "") or "{}")
        if "port" not in info:
            self.stop()
            raise RuntimeError(f"{app} did not start")
        self.app = app
        self.loop: str = info["loop"]
        self.http: str = info["http"]
        self.base_url = f"http://127.0.0.1:{info['port']}"
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base_url + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.app} was not ready within {timeout} s")

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Until the process has (nearly) stopped using CPU: background jobs of a run are done."""
        deadline = time.monotonic() + timeout
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.cpu_seconds()
            if now - before < 0.02:
                return
            before = now

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def served(app: str, loop: str, http: str) -> Iterator[Served]:
    server = Served(app, loop, http)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def peak_rss(server: Served) -> Iterator[list[float]]:
    """The highest RSS seen while the block runs, sampled every half second."""
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
