"""Rate limiting as state: a token bucket per api_token and endpoint, on the backend's clock.

Bria limits requests per organisation and endpoint, per minute: Free 10, Pay-as-you-go 60,
Enterprise 1000. Status polls count too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from mock_server.ids import namespace_id

PLANS = {"free": 10, "payg": 60, "enterprise": 1000}
# Buckets kept at most; past it the least recently used go (a full bucket is the default anyway).
MAX_BUCKETS = 10_000
MAX_PER_MINUTE = 1_000_000


def per_minute(value: str | int | None) -> int | None:
    """A limit from a plan name or a number of requests per minute; None or 0 or "off" is no limit."""
    if value is None or value in ("", "off", 0):
        return None
    if isinstance(value, str) and value.lower() in PLANS:
        return PLANS[value.lower()]
    limit = int(value)
    if not 0 <= limit <= MAX_PER_MINUTE:
        raise ValueError(f"a rate limit is a plan name or a number per minute up to {MAX_PER_MINUTE}")
    return limit or None


class RateLimiter:
    """Buckets of ``limit`` requests that refill continuously over a minute.

    ``limit`` can change at run time (:meth:`configure`); clearing every bucket (a full reset)
    also puts it back to the limit the limiter was made with, the configured one.
    """

    def __init__(self, now: Callable[[], float], limit: int | None = None) -> None:
        self._now = now
        self.configured_limit = limit
        self.limit = limit
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, updated_at)
        self._lock = threading.Lock()

    def configure(self, limit: int | None) -> None:
        """Change the limit at run time (until the next full reset) and refill every bucket."""
        with self._lock:
            self.limit = limit
            self._buckets.clear()

    def take(self, token: str, endpoint: str) -> float | None:
        """Spend one request; None when allowed, else the seconds until the next one is."""
        now = self._now()
        with self._lock:
            if self.limit is None:
                return None
            rate = self.limit / 60.0
            tokens, updated = self._buckets.pop((token, endpoint), (float(self.limit), now))
            tokens = min(float(self.limit), tokens + (now - updated) * rate)
            allowed = tokens >= 1
            self._buckets[(token, endpoint)] = (tokens - 1 if allowed else tokens, now)  # most recent last
            if len(self._buckets) > MAX_BUCKETS:
                del self._buckets[next(iter(self._buckets))]
            return None if allowed else (1 - tokens) / rate

    def retry_after(self, wait: float) -> str:
        """``Retry-After`` in whole seconds, never 0."""
        return str(max(1, math.ceil(wait)))

    def state(self, token: str | None = None) -> list[dict[str, object]]:
        with self._lock:
            buckets = list(self._buckets.items())
        return [
            {"token_id": namespace_id(key[0]), "endpoint": key[1], "remaining": math.floor(tokens)}
            for key, (tokens, _) in buckets
            if token is None or key[0] == token
        ]

    def clear(self, token: str | None = None) -> None:
        """Refill one token's buckets; with no token, every bucket, and the configured limit comes back.

        The limit is the fake's own, shared by every namespace: a namespaced reset leaves it alone,
        so that one worker's reset never changes another's limit.
        """
        with self._lock:
            self._buckets = {k: v for k, v in self._buckets.items() if token is not None and k[0] != token}
            if token is None:
                self.limit = self.configured_limit
