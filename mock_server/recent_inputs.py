"""The base64 image payloads of recent requests, by the digest the journal shows for them.

The journal keeps a large body as its summary, each base64 image as its SHA-256, size and format:
enough to compare, not to look at. These payloads let the inspector show the pixels of recent
inputs too. Bounded in bytes (the oldest go first) and emptied by a full reset; keeping one costs
a dictionary entry, since the journal hashes the payload anyway.
"""

from __future__ import annotations

import collections
import threading

MAX_KEPT_BYTES = 32 * 1024 * 1024


class RecentInputs:
    """An LRU map of digest -> base64 payload, at most ``max_bytes`` of payload text in all."""

    def __init__(self, max_bytes: int = MAX_KEPT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._payloads: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # payloads are kept from worker threads (large bodies)

    def put(self, digest: str, payload: str) -> None:
        """Keep a payload (a newer one pushes the oldest out); one over the whole bound is not kept."""
        if len(payload) > self.max_bytes:
            return
        with self._lock:
            old = self._payloads.pop(digest, None)
            self._bytes -= len(old) if old is not None else 0
            self._payloads[digest] = payload
            self._bytes += len(payload)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._payloads.popitem(last=False)[1])

    def get(self, digest: str) -> str | None:
        with self._lock:
            return self._payloads.get(digest)

    def clear(self) -> None:
        with self._lock:
            self._payloads.clear()
            self._bytes = 0

    @property
    def bytes_held(self) -> int:
        return self._bytes
