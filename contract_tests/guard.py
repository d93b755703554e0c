"""The spend guard: live runs cost money, so billable calls are counted and capped, and 429s waited out.

A call is billable when it is a POST to one of the edit endpoints that the service accepted
(200 or 202). Against the fake the cap is off; the count is still kept and shown.
"""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Callable

from mock_server.verify import DEFAULT_MAX_CALLS

__all__ = ["DEFAULT_MAX_CALLS", "SpendGuard", "retry_after_seconds"]
MAX_RETRIES = 3
# However long a Retry-After asks for, one wait is bounded: a run must end.
MAX_SLEEP_SECONDS = 30.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0)


@dataclasses.dataclass
class SpendGuard:
    """Counts billable calls against a cap (``None``: no cap) and decides how long to wait after a 429."""

    max_calls: int | None = DEFAULT_MAX_CALLS
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    billable_calls: int = 0
    rate_limited: int = 0
    slept_seconds: float = 0.0
    refused: int = 0

    def allows_another_call(self) -> bool:
        """Whether one more billable call stays within the cap (counts a refusal when not)."""
        if self.max_calls is not None and self.billable_calls >= self.max_calls:
            self.refused += 1
            return False
        return True

    def count(self, method: str, billable_route: bool, status_code: int) -> None:
        """Count an answer: accepted POSTs to the edit endpoints are billable."""
        if method.upper() == "POST" and billable_route and status_code in (200, 202):
            self.billable_calls += 1

    def should_retry(self, status_code: int, attempt: int) -> bool:
        """A 429 is retried at most :data:`MAX_RETRIES` times (``attempt`` counts from 0)."""
        return status_code == 429 and attempt < MAX_RETRIES

    def wait_after_429(self, retry_after: str | None, attempt: int) -> float:
        """Sleep as ``Retry-After`` asks (seconds or an HTTP date), else back off; bounded either way."""
        self.rate_limited += 1
        delay = retry_after_seconds(retry_after, self.clock())
        if delay is None:
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
        delay = min(max(delay, 0.0), MAX_SLEEP_SECONDS)
        self.sleep(delay)
        self.slept_seconds += delay
        return delay

    def summary(self) -> str:
        """What the run spent, for the terminal summary and the report."""
        cap = "no cap" if self.max_calls is None else f"cap {self.max_calls}"
        line = f"{self.billable_calls} billable call(s) ({cap})"
        if self.refused:
            line += f"; {self.refused} call(s) refused by the cap"
        if self.rate_limited:
            line += f"; {self.rate_limited} rate-limited answer(s), {self.slept_seconds:.1f} s waited"
        return line

    def as_dict(self) -> dict[str, object]:
        return {
            "billable_calls": self.billable_calls,
            "max_calls": self.max_calls,
            "refused_by_cap": self.refused,
            "rate_limited": self.rate_limited,
            "slept_seconds": round(self.slept_seconds, 3),
        }


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - now
