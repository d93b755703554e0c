"""Every webhook attempt, recorded: what was sent (headers and body, exactly) and what came back.

Bounded like the journal, by a count and by the bytes it holds; past either bound the oldest
attempts go first.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
from typing import Any

ENTRY_OVERHEAD = 400  # the fields besides headers and body, roughly, as JSON
CRITERIA = ("request_id", "status", "delivered", "url")


@dataclasses.dataclass(slots=True)
class Attempt:
    """One attempt to deliver a webhook (or a delivery a rule dropped: ``sent`` false)."""

    id: int
    request_id: str
    namespace: str | None  # the namespace_id of the job's token
    url: str
    delivery: int  # 1; 2 for the copy a ``duplicate`` rule sends
    attempt: int  # 1 for the first, then each retry
    at: float  # the fake's clock
    timestamp: int | None  # the Bria-Webhook-Timestamp sent (Unix seconds)
    headers: dict[str, str]
    body: str
    status: int | None  # the receiver's answer, None when there was none
    error: str | None  # why there was no answer: connection error, timeout, refused, dropped
    latency_ms: float
    rules: list[str]
    sent: bool = True

    @property
    def delivered(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {**fields, "delivered": self.delivered}

    def describe(self) -> str:
        """One line, for assertion messages."""
        outcome = str(self.status) if self.status is not None else self.error
        return f"{self.request_id} delivery {self.delivery} attempt {self.attempt} to {self.url}: {outcome}"


class WebhookLog:
    """The recorded attempts of one backend, oldest first."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self._entries: collections.deque[tuple[Attempt, int]] = collections.deque()
        self._bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> Attempt:
        """Add an attempt (the fields of :class:`Attempt` but ``id``); evict past the bounds."""
        with self._lock:
            attempt = Attempt(id=next(self._ids), **fields)
            size = ENTRY_OVERHEAD + len(attempt.body) + sum(len(k) + len(v) for k, v in attempt.headers.items())
            self._entries.append((attempt, size))
            self._bytes += size
            while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
                self._bytes -= self._entries.popleft()[1]
        return attempt

    def attempts(
        self,
        *,
        namespace: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        delivered: bool | None = None,
        url: str | None = None,
    ) -> list[Attempt]:
        """Attempts matching every criterion given (``namespace``: only that token's jobs)."""
        with self._lock:
            snapshot = [attempt for attempt, _ in self._entries]
        wanted = {"namespace": namespace, "request_id": request_id, "status": status, "url": url}
        return filter_attempts(snapshot, delivered=delivered, **wanted)

    def clear(self, namespace: str | None = None) -> None:
        """Forget every attempt, or one namespace's."""
        with self._lock:
            kept = [(a, size) for a, size in self._entries if namespace is not None and a.namespace != namespace]
            self._entries = collections.deque(kept)
            self._bytes = sum(size for _, size in kept)

    def __len__(self) -> int:
        return len(self._entries)


def filter_attempts(attempts: list[Attempt], *, delivered: bool | None = None, **wanted: Any) -> list[Attempt]:
    """The attempts matching every criterion given (a None criterion matches all)."""
    return [
        attempt
        for attempt in attempts
        if all(value is None or getattr(attempt, key) == value for key, value in wanted.items())
        and (delivered is None or attempt.delivered == delivered)
    ]
