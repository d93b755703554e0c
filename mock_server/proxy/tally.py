"""The proxy's live tally: what passed, per endpoint and status, and the latest violations with the
exchange that caused them. Bounded whatever the traffic: counters over a bounded key set (endpoints
are the operation table's names, statuses three digits) and a fixed number of violations kept."""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.proxy.checks import Violation

MAX_VIOLATIONS = 200  # the latest ones; the counters keep counting past it


@dataclasses.dataclass(frozen=True)
class ExchangeSummary:
    """What the tally says of one exchange: its number, request line, endpoint, status and timing."""

    index: int
    method: str
    path: str
    endpoint: str
    status: int
    elapsed_ms: float
    overhead_ms: float  # the proxy's own time: elapsed minus the time spent waiting for the target
    answered_by: str  # "target", or "proxy" (a --strict refusal, an unreachable target)
    recorded_as: int | None = None  # its ``index`` in the recording's exchanges.jsonl (None: not recorded)


class Tally:
    """Counters and the latest violations, safe to read from any thread."""

    def __init__(self, max_violations: int = MAX_VIOLATIONS) -> None:
        self._lock = threading.Lock()
        self._exchanges = 0
        self._by_endpoint: collections.Counter[tuple[str, int]] = collections.Counter()
        self._by_kind: collections.Counter[tuple[str, str]] = collections.Counter()
        self._violating = 0
        self._latest: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_violations)
        self._overhead_ms = 0.0

    def next_index(self) -> int:
        with self._lock:
            self._exchanges += 1
            return self._exchanges

    def add(self, exchange: ExchangeSummary, violations: list[Violation]) -> None:
        with self._lock:
            self._by_endpoint[(exchange.endpoint, exchange.status)] += 1
            self._overhead_ms += exchange.overhead_ms
            if not violations:
                return
            self._violating += 1
            for violation in violations:
                self._by_kind[(violation.side, violation.kind)] += 1
                self._latest.append({"exchange": dataclasses.asdict(exchange), **dataclasses.asdict(violation)})

    def to_json(self) -> dict[str, Any]:
        """The tally as ``GET /bria-mock/proxy`` shows it (without the proxy's own settings)."""
        with self._lock:
            done = sum(self._by_endpoint.values())
            return {
                "exchanges": done,
                "exchanges_with_violations": self._violating,
                "mean_overhead_ms": round(self._overhead_ms / done, 3) if done else None,
                "endpoints": [
                    {"endpoint": endpoint, "status": status, "count": count}
                    for (endpoint, status), count in sorted(self._by_endpoint.items())
                ],
                "violation_kinds": [
                    {"side": side, "kind": kind, "count": count}
                    for (side, kind), count in sorted(self._by_kind.items())
                ],
                "violations": list(self._latest),
                "violations_kept": self._latest.maxlen,
            }
