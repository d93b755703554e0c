"""Input images a test put on the fake (``POST /bria-mock/uploads``), served at ``/uploads/<name>``.

Bounded by a count and by their total bytes; past either bound the oldest go first.
"""

from __future__ import annotations

import collections
import hashlib
import threading

from mock_server.errors import PayloadTooLarge

MAX_UPLOADS = 1000
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


class Uploads:
    """Uploaded images by name (a digest of their bytes), with their content types."""

    def __init__(self, *, max_count: int = MAX_UPLOADS, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._items: collections.OrderedDict[str, tuple[bytes, str]] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the plugin's handle uploads from a test's thread

    def add(self, data: bytes, content_type: str) -> str:
        """Keep an image and return its name; 413 when it alone is over the byte bound."""
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"body: {len(data)} bytes is over the uploads' limit of {self.max_bytes} bytes")
        name = hashlib.sha256(data).hexdigest()[:32]
        with self._lock:
            self._drop(name)
            self._items[name] = (data, content_type)
            self._bytes += len(data)
            while len(self._items) > self.max_count or self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and content type of an upload, or None."""
        with self._lock:
            return self._items.get(name)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def _drop(self, name: str) -> None:
        item = self._items.pop(name, None)
        if item is not None:
            self._bytes -= len(item[0])
