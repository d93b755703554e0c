"""Decoded pixels as the cost of a request: a limit per request and a budget for the whole process.

An encoded image says little about what it costs: 631 bytes of JPEG can declare 64 million
pixels, which Pillow holds in 256 MB (4 bytes a pixel) before any processing copies them. So the
fake counts the pixels it will decode (at the reduced size it decodes at, see
``inputs.InputImage.decoded_size``):

- one request's images together may decode to at most ``max_request_pixels`` (else 413, before
  any job exists);
- work in the whole process (the checks' decodes and the jobs' processing) holds at most
  ``max_decoding_pixels`` at once. Work that does not fit waits for the work ahead of it: a sync
  call at most ``decode_wait_seconds`` (then 503 with ``Retry-After``: the service is busy, not the
  request wrong, so the client may retry), an async job as long as the queue takes (it answers
  IN_PROGRESS meanwhile, as a job queued at Bria would).

A budget is shared by every app in the process with the same ``max_decoding_pixels`` (the memory
is the process's, not an app's). After large work the freed memory is handed back to the system
(``release_memory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

from anyio import from_thread, to_thread

from mock_server.errors import PayloadTooLarge, ServerError

# Work under this many pixels neither waits nor counts: a 512 x 512 image is 1 MB decoded, and the thread
# pool bounds how many run at once. It keeps the common path (small images) free of any lock.
SMALL_WORK_PIXELS = 512 * 512
# After work of at least this many pixels, freed memory is handed back to the system.
RELEASE_AFTER_PIXELS = 4 * 1024 * 1024
RETRY_AFTER_SECONDS = 1
_POLL_SECONDS = 0.02  # how often a waiting reservation looks again (only while the budget is full)

# The pixels reserved in this context (a sync call's request, or a job's processing): a reservation
# inside it for no more pixels takes nothing more.
_reserved_by_caller: contextvars.ContextVar[int] = contextvars.ContextVar("reserved_pixels", default=0)


class PixelBudget:
    """The decoded pixels the process's work may hold at once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._held = 0
        self._waiting = 0  # worker threads waiting for room
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    @property
    def waiting(self) -> int:
        return self._waiting

    def _share(self, pixels: int) -> int:
        """What ``pixels`` of work takes: never more than the whole budget (so it never waits forever)."""
        return min(pixels, self.capacity)

    def _try_take(self, share: int) -> bool:
        with self._changed:
            if self._held + share > self.capacity:
                return False
            self._held += share
            return True

    def _give_back(self, share: int, pixels: int) -> None:
        with self._changed:
            self._held -= share
            self._changed.notify_all()
        if pixels >= RELEASE_AFTER_PIXELS:
            release_memory()

    @contextlib.contextmanager
    def held_for(self, pixels: int, *, wait: float | None, field: str = "images") -> Iterator[None]:
        """Hold ``pixels`` while the block runs, in a worker thread. Waits at most ``wait`` seconds
        (None: as long as it takes) for room, then raises 503."""
        if pixels < SMALL_WORK_PIXELS:
            yield
            return
        share = self._share(pixels)
        if not self._wait_in_thread(share, wait):
            raise busy(field, pixels, wait or 0.0)
        try:
            yield
        finally:
            self._give_back(share, pixels)

    def _wait_in_thread(self, share: int, wait: float | None) -> bool:
        if self._try_take(share):
            return True
        deadline = None if wait is None else time.monotonic() + wait
        with _lending_thread_token(), self._changed:
            self._waiting += 1
            try:
                while self._held + share > self.capacity:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._changed.wait(left)
                self._held += share
                return True
            finally:
                self._waiting -= 1

    @contextlib.asynccontextmanager
    async def reserved(self, pixels: int, *, wait: float | None) -> AsyncIterator[None]:
        """Reserve ``pixels`` on the event loop for a job's processing (waiting at most ``wait``
        seconds, then 503; None: as long as the queue ahead takes); the processing in this context
        takes nothing more. Waiting here, not in a worker thread, keeps the thread pool for work."""
        if pixels < SMALL_WORK_PIXELS or _reserved_by_caller.get() >= pixels:  # (small, or reserved already)
            yield
            return
        share = self._share(pixels)
        await self._wait_on_loop(share, pixels, wait)
        token = _reserved_by_caller.set(pixels)
        try:
            yield
        finally:
            _reserved_by_caller.reset(token)
            self._give_back(share, pixels)

    async def _wait_on_loop(self, share: int, pixels: int, wait: float | None) -> None:
        if self._try_take(share):
            return
        deadline = None if wait is None else time.monotonic() + wait
        with self._changed:
            self._waiting += 1
        try:
            while not self._try_take(share):
                if deadline is not None and time.monotonic() >= deadline:
                    raise busy("images", pixels, wait or 0.0)
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            with self._changed:
                self._waiting -= 1


def busy(field: str, pixels: int, wait: float) -> ServerError:
    return ServerError(
        f"{field}: {pixels} pixels to decode; the fake is busy with other large images "
        f"(max_decoding_pixels), still after {wait:g} s (decode_wait_seconds); retry later",
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def check_request_pixels(pixels: int, limit: int, count: int) -> None:
    """413 when one request's images together decode to more than ``limit`` pixels."""
    if pixels > limit:
        raise PayloadTooLarge(
            f"images: {count} image(s) decode to {pixels} pixels together, over the limit of {limit} "
            "pixels per request (max_request_pixels)"
        )


_budgets: dict[int, PixelBudget] = {}
_budgets_lock = threading.Lock()


def process_budget(capacity: int) -> PixelBudget:
    """The process's budget of ``capacity`` pixels (one per distinct capacity, shared by every app)."""
    budget = _budgets.get(capacity)
    if budget is None:
        with _budgets_lock:
            budget = _budgets.setdefault(capacity, PixelBudget(capacity))
    return budget


@contextlib.contextmanager
def _lending_thread_token() -> Iterator[None]:
    """While a worker thread waits for pixels, the thread pool may start one more thread.

    A thread waiting here holds one of the pool's tokens (anyio's limiter, 40 by default). Were
    every token held by waiters, the work they wait for (a sync call that reserved its pixels on the
    event loop and now needs a thread) could never start: lending the token back prevents that.
    """
    try:
        from_thread.run_sync(_grow_thread_pool, 1)
    except RuntimeError:  # not in a worker thread of an event loop (a direct call): nothing to lend
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(RuntimeError):  # (the event loop has ended: no pool left to shrink)
            from_thread.run_sync(_grow_thread_pool, -1)


def _grow_thread_pool(by: int) -> None:
    limiter = to_thread.current_default_thread_limiter()
    limiter.total_tokens = max(1, limiter.total_tokens + by)


# --- handing memory back -----------------------------------------------------------------------------


@functools.cache  # looked up once, when first needed (not at import: start-up stays short)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries (musl, macOS), where it is skipped."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # (the process's own C library)
    except (OSError, AttributeError, TypeError):  # (TypeError: Windows, which opens no library by None)
        return None
    return trim


_trim_lock = threading.Lock()


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps large freed blocks otherwise: RSS
    stayed at 2.2 GB after four large decodes). A no-op where the C library has no ``malloc_trim``."""
    trim = _malloc_trim()
    if trim is not None and _trim_lock.acquire(blocking=False):  # one trim at a time is enough
        try:
            trim(0)
        finally:
            _trim_lock.release()
