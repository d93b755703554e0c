"""Assertions over the journal, for test bodies: called, not called, called in order.

A failure says what was expected and lists the nearest recorded requests, so a test that
sent the wrong body or hit the wrong endpoint shows it at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mock_server.journal import Entry, check_criteria, matches

if TYPE_CHECKING:
    from mock_server.ids import NamespaceId
    from mock_server.state import Exchanges

NEAREST = 3


def assert_called(journal: Exchanges, *, times: int | None = None, at_least: int = 1, **criteria: Any) -> list[Entry]:
    """The entries matching ``criteria`` (endpoint, method, status, token, path, body={...});
    fails unless there are exactly ``times`` of them, or at least ``at_least``.
    An unknown criterion is a ``TypeError`` naming the closest valid one, even on an empty journal."""
    check_criteria(criteria, also=("times", "at_least"))
    found = journal.entries(**criteria)
    if (times is not None and len(found) != times) or (times is None and len(found) < at_least):
        expected = f"exactly {times}" if times is not None else f"at least {at_least}"
        raise AssertionError(
            _message(f"expected {expected} call(s) matching {criteria}, got {len(found)}", journal, criteria)
        )
    return found


def assert_not_called(journal: Exchanges, **criteria: Any) -> None:
    """Fails when any recorded request matches ``criteria``."""
    assert_called(journal, times=0, **criteria)


def assert_called_in_order(journal: Exchanges, *steps: Mapping[str, Any]) -> None:
    """Fails unless requests matching each step were made in this order (others may come between)."""
    for step in steps:
        check_criteria(step)
    entries = journal.entries()
    position = 0
    for index, step in enumerate(steps):
        position = _next_match(entries, position, step, journal.namespace_id)
        if position < 0:
            raise AssertionError(
                _message(f"step {index + 1} of {len(steps)} never came in order: {dict(step)}", journal, step)
            )
        position += 1


def _next_match(entries: Sequence[Entry], start: int, criteria: Mapping[str, Any], namespace_id: NamespaceId) -> int:
    return next((i for i in range(start, len(entries)) if matches(entries[i], criteria, namespace_id)), -1)


def _message(headline: str, journal: Exchanges, criteria: Mapping[str, Any]) -> str:
    nearest = sorted(journal.entries(), key=lambda entry: -_closeness(entry, criteria, journal.namespace_id))[:NEAREST]
    if not nearest:
        return f"{headline}\nthe journal is empty"
    lines = [f"  {entry.method} {entry.path} -> {entry.status} body={entry.body}" for entry in nearest]
    return "\n".join([headline, "nearest recorded requests:", *lines])


def _closeness(entry: Entry, criteria: Mapping[str, Any], namespace_id: NamespaceId) -> int:
    score = 0
    for key, wanted in criteria.items():
        if key == "body" and isinstance(wanted, Mapping):
            score += sum(isinstance(entry.body, dict) and entry.body.get(f) == v for f, v in wanted.items())
        else:
            score += matches(entry, {key: wanted}, namespace_id)
    return score
