"""Assertions on webhook deliveries, for the plugin's handle: they wait, then say what happened instead."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mock_server.state import Attempts
    from mock_server.webhook_log import Attempt

POLL_SECONDS = 0.01


def wait_until(condition: Callable[[], bool], timeout: float, failure: str) -> None:
    """Return once ``condition()`` holds; AssertionError with ``failure`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} after {timeout:g} s")
        time.sleep(POLL_SECONDS)


def assert_delivered(log: Attempts, request_id: str, *, attempts: int | None, timeout: float) -> list[Attempt]:
    """The attempts for ``request_id`` once one of them was answered 2xx (that one being attempt
    number ``attempts`` of its delivery, when given); AssertionError listing every attempt otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        mine = log.attempts(request_id=request_id)
        delivered = [attempt for attempt in mine if attempt.delivered]
        if delivered and (attempts is None or delivered[0].attempt == attempts):
            return mine
        if delivered or time.monotonic() > deadline:  # delivered after another number of attempts: final
            raise AssertionError(_not_delivered(log, request_id, attempts, timeout))
        time.sleep(POLL_SECONDS)


def _not_delivered(log: Attempts, request_id: str, attempts: int | None, timeout: float) -> str:
    wanted = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts is not None else ""
    everything = log.attempts()
    mine = [attempt for attempt in everything if attempt.request_id == request_id]
    shown = mine or everything
    heading = f"attempts for {request_id}" if mine else f"no attempt for {request_id}; every attempt recorded"
    lines = [f"  {attempt.describe()}" for attempt in shown] or ["  none"]
    return f"webhook for {request_id} not delivered{wanted} within {timeout:g} s; {heading}:\n" + "\n".join(lines)
