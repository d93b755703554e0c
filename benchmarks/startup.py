"""Start-up costs: imports in fresh interpreters, the server thread, and the pytest fixtures per test."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]

_SERVER_THREAD_SCRIPT = """
import json, statistics, sys, time
started = time.perf_counter()
from mock_server.config import Settings
from mock_server.server import ServerThread
imported = time.perf_counter() - started
runs = int(sys.argv[1])
starts, resets, apps, clients = [], [], [], []
for _ in range(runs):
    started = time.perf_counter()
    server = ServerThread(Settings()).start()
    starts.append(time.perf_counter() - started)
    for _ in range(20):
        started = time.perf_counter()
        server.reset()
        resets.append(time.perf_counter() - started)
    server.stop()
from mock_server import create_app
try:  # the plugin's in-process client (bria_client): a new app and a portal per test
    import httpx
    from mock_server.fixtures.inprocess import SyncASGITransport
except ImportError:
    SyncASGITransport = None
for _ in range(10 * runs):
    started = time.perf_counter()
    app = create_app(Settings())
    apps.append(time.perf_counter() - started)
    if SyncASGITransport is not None:
        with httpx.Client(transport=SyncASGITransport(app), base_url="http://testserver"):
            pass
        clients.append(time.perf_counter() - started)
print(json.dumps({"import_server": imported, "starts": starts, "reset": statistics.median(resets),
                  "create_app": statistics.median(apps), "inprocess": statistics.median(clients) if clients else None}))
"""


def subprocess_seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    return time.perf_counter() - started


def _server_thread_run(runs: int) -> dict[str, Any]:
    """``_SERVER_THREAD_SCRIPT`` in a fresh interpreter, ``runs`` server starts."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])}
    output = subprocess.run(
        [sys.executable, "-c", _SERVER_THREAD_SCRIPT, str(runs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env,
    ).stdout
    measured: dict[str, Any] = json.loads(output)
    return measured


def run_startup(runs: int) -> dict[str, Any]:
    """Fresh interpreters: ``import mock_server`` minus ``pass``; then ServerThread start-up, in-process."""
    codes = {
        "pass": "pass",
        "import mock_server": "import mock_server",
        "import mock_server.server": "import mock_server.server",
        "pytest": "import pytest",
        "pytest + plugin": "import pytest, mock_server.fixtures.plugin",
    }
    times: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(runs):
        for name, code in codes.items():
            times[name].append(subprocess_seconds(code))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result: dict[str, Any] = {
        "import mock_server": medians["import mock_server"] - medians["pass"],
        "import mock_server.server": medians["import mock_server.server"] - medians["pass"],
        # The pytest11 entry point loads the plugin in every pytest run where bria-mock is installed.
        "the pytest plugin's import (added to every pytest start-up)": medians["pytest + plugin"] - medians["pytest"],
        "interpreter (python -c pass)": medians["pass"],
    }
    measured = _server_thread_run(runs)
    # The session fixture's cost happens once per interpreter: sample it in more fresh ones.
    samples = [measured, *(_server_thread_run(1) for _ in range(runs - 1))]
    first_starts = [sample["import_server"] + sample["starts"][0] for sample in samples]
    result["ServerThread().start(), first"] = measured["starts"][0]
    result["import mock_server.server + first start (the session fixture)"] = statistics.median(first_starts)
    result["ServerThread().start(), median of the rest"] = statistics.median(
        measured["starts"][1:] or measured["starts"]
    )
    result["ServerThread.reset() (bria_mock, per test)"] = measured["reset"]
    result["create_app(Settings()) (bria_app, per test)"] = measured["create_app"]
    if measured["inprocess"] is not None:
        result["create_app + SyncASGITransport client, open and close (bria_client, per test)"] = measured["inprocess"]
    return result
