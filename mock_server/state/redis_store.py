"""The connection to a shared Redis/Valkey store, and the few values every request reads from it.

Calls are synchronous, from the event loop: on a local server (a Unix socket or loopback) a round
trip is tens of microseconds, less than handing each call to a thread would cost; every process
(worker) has its own connection pool. Every key starts with ``bria-mock:`` so that the fake can
share a database with other data; a reset deletes only its own keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

import orjson

from mock_server import ids

if TYPE_CHECKING:
    from mock_server.config import Settings
    from mock_server.state import State

PREFIX = "bria-mock:"
# The small values each request reads once, in one round trip (see ``SharedView``).
OFFSET, RULES_VERSION, LIMIT = f"{PREFIX}clock-offset", f"{PREFIX}rules-version", f"{PREFIX}rate-limit"
NAMESPACE_KEY = f"{PREFIX}namespace-key"
NO_LIMIT = "off"


class Store:
    """One process's connection to the shared store."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        try:
            # One connection per process, behind redis-py's lock (threads share it), rather than one
            # taken from a pool and given back for every call. (Typed loosely: redis-py's annotations
            # cover both reply types; here replies are always bytes.)
            self.client: Any = redis.Redis.from_url(
                url, socket_timeout=30, health_check_interval=30, single_connection_client=True
            )
            self.client.ping()
        except redis.RedisError as exc:
            from mock_server.config import mask_password

            raise ValueError(f"state {mask_password(url)}: cannot reach the store ({exc})") from None
        self._scripts: dict[str, Any] = {}
        self.view = SharedView(self)
        self.namespace_id = self.namespaces()

    def key(self, *parts: str) -> str:
        return PREFIX + ":".join(parts)

    def script(self, name: str, source: str) -> Any:
        """A Lua script registered once per process (sent by digest after its first use)."""
        if name not in self._scripts:
            self._scripts[name] = self.client.register_script(source)
        return self._scripts[name]

    def delete_matching(self, pattern: str) -> None:
        """Delete every key matching ``pattern`` (of this fake's own: the prefix is added)."""
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=PREFIX + pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch.clear()
        if batch:
            self.client.delete(*batch)

    def namespaces(self) -> ids.NamespaceId:
        """Namespace ids under the store's own key (drawn by the first process to ask): a token's id
        (jobs' owners, the journal's token ids) is the same in every process on the store."""
        self.client.set(NAMESPACE_KEY, os.urandom(32), nx=True)
        return ids.namespaces(self.client.get(NAMESPACE_KEY))

    def close(self) -> None:
        self.client.close()


# The store's time and the shared values, in one round trip. KEYS: offset, rules version, rate limit.
_VIEW = """
local time = redis.call('TIME')
return {time[1], time[2], redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or '0',
  redis.call('GET', KEYS[3]) or ''}
"""


class SharedView:
    """The store's time, the clock's offset, the rules' version and the rate limit, read once per request.

    A request is served by one asyncio task: the first read in a task fetches the values in one round
    trip and the task's later reads reuse them; another task (the next request) fetches them again,
    so a change made by any process is seen by the next request everywhere. Time is the store's (its
    ``TIME``, carried forward by this process's monotonic clock between reads): hosts whose own clocks
    differ still agree on when a job was made and when it expires.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._script = store.script("view", _VIEW)
        self._owner: object = None
        self._values: tuple[float, int, str] = (0.0, 0, NO_LIMIT)
        self._time = (0.0, 0.0)  # (the store's seconds, this process's monotonic seconds) at the last read

    def values(self) -> tuple[float, int, str]:
        """(clock offset, rules version, rate limit) as the current request sees them."""
        owner = _current_task()
        if owner is None or owner is not self._owner:
            seconds, micros, offset, version, limit = self._script(keys=[OFFSET, RULES_VERSION, LIMIT])
            self._time = (int(seconds) + int(micros) / 1e6, time.monotonic())
            self._values = (float(offset), int(version), limit.decode() or NO_LIMIT)
            self._owner = owner
        return self._values

    def now(self) -> float:
        """The store's time now, in seconds (as read with the values, plus what has passed here since)."""
        self.values()
        at_store, at_here = self._time
        return at_store + (time.monotonic() - at_here)

    def forget(self) -> None:
        """Read again at the next use (after this process changed one of the values)."""
        self._owner = None


def _current_task() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # (a worker thread, or a test's thread: no task, always read)
        return None


_STDLIB_JSON = b"~"  # marks a record orjson could not write (an integer past 64 bits): read back exactly


def encode(value: Any) -> bytes:
    """A record as the store keeps it: JSON, by orjson (fast), or by the standard library for integers
    orjson refuses (past 64 bits), marked so that ``decode`` reads them back as integers."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return _STDLIB_JSON + json.dumps(value, separators=(",", ":")).encode()


def decode(raw: bytes) -> Any:
    """A record written by ``encode``."""
    if raw[:1] == _STDLIB_JSON:
        return json.loads(raw[1:])
    return orjson.loads(raw)


def open_shared_state(settings: Settings) -> State:
    """The fake's state on the store at ``settings.state``; a clear error when it cannot be reached."""
    from mock_server.ratelimit import per_minute
    from mock_server.state import State
    from mock_server.state.redis_jobs import RedisJobStore
    from mock_server.state.redis_journal import RedisJournal, RedisWebhookLog
    from mock_server.state.redis_rules import RedisRuleBook
    from mock_server.state.redis_small import RedisRateLimiter, RedisUploads, SharedClock, SharedResets

    store = Store(settings.state)
    clock = SharedClock(store)
    return State(
        clock=clock,
        jobs=RedisJobStore(store, clock, settings),
        rules=RedisRuleBook(store),
        journal=RedisJournal(store, max_entries=settings.journal_max_entries, max_bytes=settings.journal_max_bytes),
        limiter=RedisRateLimiter(store, clock.now, per_minute(settings.rate_limit)),
        uploads=RedisUploads(store),
        webhook_log=RedisWebhookLog(
            store, max_entries=settings.webhook_log_max_entries, max_bytes=settings.webhook_log_max_bytes
        ),
        resets=SharedResets(store),
        shared=True,
        namespace_id=store.namespace_id,
        close=store.close,
        refresh=store.view.forget,
    )


def process_id() -> str:
    """Who holds a claim: host and pid, for whoever reads the store."""
    return f"{os.uname().nodename}:{os.getpid()}"
