"""The journal as the inspector lists it: compact rows, newest first, filtered and paged."""

from __future__ import annotations

import bisect
import dataclasses
from typing import TYPE_CHECKING, Any

from mock_server.bodies import is_whole_number
from mock_server.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mock_server.journal import Entry

DEFAULT_PAGE = 100
MAX_PAGE = 500
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "none")


@dataclasses.dataclass(frozen=True)
class ExchangeFilter:
    """What the page filters on: operation, status class, namespace id and free text."""

    endpoint: str | None = None
    status_class: str | None = None
    namespace: str | None = None
    text: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ExchangeFilter:
        status_class = query.get("status_class") or None
        if status_class is not None and status_class not in STATUS_CLASSES:
            raise BadRequest(f"status_class: expected one of {', '.join(STATUS_CLASSES)}, got {status_class!r}")
        text = (query.get("q") or "").strip().lower() or None
        return cls(query.get("endpoint") or None, status_class, query.get("namespace") or None, text)

    def admits(self, entry: Entry) -> bool:
        if self.endpoint is not None and entry.endpoint != self.endpoint:
            return False
        if self.status_class is not None and status_class(entry.status) != self.status_class:
            return False
        if self.namespace is not None and entry.token_id != self.namespace:
            return False
        return self.text is None or self.text in _searchable(entry)


def status_class(status: int | None) -> str:
    """``2xx`` for 202; ``none`` when no answer went out (a dropped connection)."""
    return "none" if status is None else f"{status // 100}xx"


def _searchable(entry: Entry) -> str:
    # Only the cheap fields: reading a body would parse and summarise it for every entry on every poll.
    fields = (entry.method, entry.path, entry.endpoint, str(entry.status), entry.token_id or "", *entry.rules)
    return " ".join(fields).lower()


def page_bounds(query: Mapping[str, str]) -> tuple[int, int | None]:
    """``limit`` (1 to MAX_PAGE) and ``before`` (an entry id: the page starts below it), from the query."""
    for key in ("limit", "before"):
        if not is_whole_number(query.get(key, "0")):
            raise BadRequest(f"{key}: expected a whole number, got {query.get(key)!r}")
    limit = min(int(query.get("limit") or DEFAULT_PAGE), MAX_PAGE) or DEFAULT_PAGE
    before = int(query["before"]) if query.get("before") else None
    return limit, before


def listing(entries: list[Entry], wanted: ExchangeFilter, limit: int, before: int | None, now: float) -> dict[str, Any]:
    """One page of matching rows, newest first, with the total that match and the newest id overall."""
    matching = [entry for entry in reversed(entries) if wanted.admits(entry)]
    start = 0 if before is None else next((i for i, e in enumerate(matching) if e.id < before), len(matching))
    shown = matching[start : start + limit]
    return {
        "total": len(matching),
        "latest": entries[-1].id if entries else 0,
        "entries": [row(entry, now) for entry in shown],
        "more": start + limit < len(matching),
        "endpoints": sorted({entry.endpoint for entry in entries}),
        "namespaces": sorted({entry.token_id for entry in entries if entry.token_id}),
    }


def row(entry: Entry, now: float) -> dict[str, Any]:
    """The fields of one line of the list (no headers, no bodies)."""
    return {
        "id": entry.id,
        "age": round(now - entry.at, 3),
        "method": entry.method,
        "path": entry.path,
        "endpoint": entry.endpoint,
        "status": entry.status,
        "duration_ms": entry.duration_ms,
        "namespace": entry.token_id,
        "rules": entry.rules,
    }


def find(entries: Sequence[Entry], entry_id: int) -> Entry | None:
    """The entry with this id (the journal is in id order: a binary search), or None once evicted."""
    index = bisect.bisect_left(entries, entry_id, key=lambda entry: entry.id)
    return entries[index] if index < len(entries) and entries[index].id == entry_id else None
