"""One scheduler on the fake's clock: work that falls due runs when the clock reaches it.

A single asyncio task sleeps until the earliest entry is due, on the fake's clock (real time
plus what ``advance`` added). Adding work or advancing the clock wakes it (thread-safe: a test
may advance the clock from its own thread), so advancing the clock runs what falls due at once.
Due work runs as its own task: a slow receiver never holds up the scheduler or a request. On a
shared store another process may advance the clock, which cannot wake this one: the scheduler then
looks at the clock at least every ``look_every`` seconds, and drops work a reset anywhere came after.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.jobs import Clock
    from mock_server.state import Resets

Work = Callable[[], Coroutine[Any, Any, None]]


@dataclasses.dataclass(order=True)
class _Entry:
    due: float
    order: int
    owner: str | None = dataclasses.field(compare=False)  # a namespace id, for a namespaced reset
    work: Work = dataclasses.field(compare=False)
    stamp: object = dataclasses.field(compare=False, default=None)  # the resets it came after


def cancel_from_any_thread(task: asyncio.Task[Any]) -> None:
    """Cancel a task from its own loop's thread or another (a test's thread resetting an in-process fake)."""
    loop = task.get_loop()
    if not loop.is_closed():
        loop.call_soon_threadsafe(task.cancel)


class Scheduler:
    """Runs coroutines when the fake's clock reaches their time."""

    def __init__(
        self,
        clock: Clock,
        on_crash: Callable[[BaseException, str], None],
        resets: Resets,
        *,
        refresh: Callable[[], None] = lambda: None,
        look_every: float | None = None,
    ) -> None:
        self._clock = clock
        self._on_crash = on_crash
        # A shared clock may be advanced by another process, which cannot wake this one: with a shared
        # store the scheduler reads the clock again (``refresh``) at least every ``look_every`` seconds.
        self._refresh = refresh
        self._look_every = look_every
        # Resets made by other processes (a shared store's marks): work scheduled before one is dropped when due.
        self._resets = resets
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], str | None] = {}
        # Entries taken off the heap and not finished yet, counted under the lock: between the two,
        # ``idle()`` from another thread must not see "nothing due, nothing running".
        self._in_flight = 0

    def start(self) -> None:
        """Start the scheduler's task on the running loop (the app's lifespan; idempotent)."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop, self._wake = loop, asyncio.Event()
        self._task = loop.create_task(self._run(), name="bria-mock-scheduler")

    def at(self, due: float, work: Work, owner: str | None = None) -> None:
        """Run ``work`` once the fake's clock reaches ``due`` (on the running loop)."""
        self.start()  # an app served without a lifespan (in-process) starts it on first use
        stamp = self._resets.stamp(owner)
        with self._lock:
            heapq.heappush(self._heap, _Entry(due, next(self._order), owner, work, stamp))
        self.wake()

    def wake(self) -> None:
        """Look at the clock again (after it was advanced); callable from any thread."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def idle(self) -> bool:
        """Whether nothing is due now and nothing is running (later work may still be waiting)."""
        with self._lock:
            due = bool(self._heap) and self._heap[0].due <= self._clock.now()
            return not due and self._in_flight == 0

    def clear(self, owner: str | None = None) -> None:
        """Drop waiting work and cancel running work: all of it, or one namespace's."""
        with self._lock:
            self._heap = [entry for entry in self._heap if owner is not None and entry.owner != owner]
            heapq.heapify(self._heap)
        for task, task_owner in list(self._running.items()):
            if owner is None or task_owner == owner:
                cancel_from_any_thread(task)

    async def aclose(self) -> None:
        """Stop the scheduler and whatever it runs (at shutdown)."""
        self.clear()
        tasks = [*self._running, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            self._refresh()
            for entry in self._pop_due():
                if not self._resets.current(entry.owner, entry.stamp):
                    self._finished_entry()  # a reset came since it was scheduled: dropped
                    continue
                task = asyncio.get_running_loop().create_task(entry.work())
                self._running[task] = entry.owner
                task.add_done_callback(self._finished)
            delay = self._next_delay()
            with contextlib.suppress(TimeoutError):  # (a timeout: the earliest entry is due)
                await asyncio.wait_for(self._wake.wait(), delay)

    def _pop_due(self) -> list[_Entry]:
        now = self._clock.now()
        with self._lock:
            due = []
            while self._heap and self._heap[0].due <= now:
                due.append(heapq.heappop(self._heap))
            self._in_flight += len(due)
        return due

    def _next_delay(self) -> float | None:
        with self._lock:
            delay = max(0.0, self._heap[0].due - self._clock.now()) if self._heap else None
        if delay is not None and self._look_every is not None:
            return min(delay, self._look_every)
        return delay

    def _finished_entry(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._finished_entry()
        if not task.cancelled() and task.exception() is not None:
            self._on_crash(task.exception(), "while running scheduled work")  # type: ignore[arg-type]
