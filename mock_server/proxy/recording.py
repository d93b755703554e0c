"""Writing the proxy's exchanges to a recording, in the contract suite's format
(:mod:`mock_server.contract_tests.recording`), so that ``bria-mock verify --compare`` and playback read them.

Each exchange is recorded as the target answered it (before the proxy rewrote its URLs): the
request as sent to the target, tokens redacted, images and long strings by digest; result images
saved as files. Writes run off the event loop, one at a time, in the order exchanges ended.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from starlette.concurrency import run_in_threadpool

from mock_server.contract_tests.recording import Recorder

if TYPE_CHECKING:
    from collections.abc import Mapping

TEST_NAME = "proxy"  # the recording's ``test`` field: these exchanges come from no test


class ProxyRecorder:
    """Appends the proxy's exchanges to a recording folder."""

    def __init__(self, directory: Path, *, target: str) -> None:
        self._recorder = Recorder(directory, target=target, live=True)
        self._lock = threading.Lock()

    async def record(
        self,
        *,
        operation: str,
        request: httpx.Request,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        elapsed_seconds: float,
    ) -> int:
        """Record one exchange (``content``: the answer's body as received, or what was kept of it); its index."""
        response = httpx.Response(status, headers=list(headers.items()), content=content, request=request)
        response.elapsed = datetime.timedelta(seconds=elapsed_seconds)
        return await run_in_threadpool(self._write, response, operation)

    def _write(self, response: httpx.Response, operation: str) -> int:
        with self._lock:
            self._recorder.record(response, operation=operation, test=TEST_NAME)
            return self._recorder.count

    @property
    def count(self) -> int:
        return self._recorder.count
