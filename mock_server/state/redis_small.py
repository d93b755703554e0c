"""The clock, the rate-limit buckets and the uploads of a shared fake, on the Redis/Valkey store."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

from mock_server.errors import PayloadTooLarge
from mock_server.jobs import MAX_ADVANCE_SECONDS, Clock
from mock_server.ratelimit import MAX_BUCKETS
from mock_server.state.redis_store import LIMIT, NO_LIMIT, OFFSET, Store
from mock_server.uploads import MAX_UPLOAD_BYTES, MAX_UPLOADS


class SharedClock(Clock):
    """The fake's clock for every process: the store's time plus an offset kept in the store.

    Advancing it on one process moves it for all (the next request anywhere reads the new offset).
    """

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store

    def now(self) -> float:
        return self._store.view.now() + self._store.view.values()[0]

    @property
    def offset(self) -> float:
        return self._store.view.values()[0]

    def reset(self) -> None:
        self._store.client.delete(OFFSET)
        self._store.view.forget()

    def advance(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:
            raise ValueError(f"the clock moves forward by 0 to {MAX_ADVANCE_SECONDS:.0f} seconds at a time")
        self._store.client.incrbyfloat(OFFSET, seconds)
        self._store.view.forget()
        for listener in self._on_advance:
            listener()


class SharedResets:
    """Reset marks on the store: a count of full resets, and one per namespace. Work scheduled in any
    process carries the marks of its time, and is dropped when due if a reset came since."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._full, self._namespaced = store.key("resets"), store.key("namespace-resets")

    def stamp(self, owner: str | None) -> object:
        pipe = self._store.client.pipeline(transaction=False)
        pipe.get(self._full)
        pipe.hget(self._namespaced, owner or "")
        return tuple(pipe.execute())

    def current(self, owner: str | None, stamp: object) -> bool:
        return self.stamp(owner) == stamp

    def mark(self, owner: str | None) -> None:
        if owner is None:
            self._store.client.incr(self._full)
        else:
            self._store.client.hincrby(self._namespaced, owner, 1)


# A token bucket, refilled continuously, taken atomically: every process spends from the same tokens.
# KEYS: the bucket, the index of buckets. ARGV: now, limit, the bucket's name in the index, at most kept.
_TAKE = """
local limit = tonumber(ARGV[2])
local now = tonumber(ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or limit
local at = tonumber(held[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - at) * limit / 60.0)
local allowed = tokens >= 1
if allowed then tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
redis.call('ZADD', KEYS[2], now, ARGV[3])
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[4]) then
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  redis.call('DEL', KEYS[1]:sub(1, #KEYS[1] - #ARGV[3]) .. oldest[1])
end
if allowed then return '' end
return tostring(tokens)
"""


class RedisRateLimiter:
    """``ratelimit.RateLimiter`` on the store: one bucket per token (by namespace id) and endpoint."""

    def __init__(self, store: Store, now: Callable[[], float], limit: int | None = None) -> None:
        self._store = store
        self._now = now
        self.configured_limit = limit
        self._take = store.script("take", _TAKE)
        self._index = store.key("buckets")

    @property
    def limit(self) -> int | None:
        shared = self._store.view.values()[2]
        if shared == NO_LIMIT:
            return self.configured_limit
        return int(shared) or None

    def configure(self, limit: int | None) -> None:
        """Change the limit for every process (until the next full reset) and refill every bucket."""
        self._store.client.set(LIMIT, str(limit or 0))
        self._store.delete_matching("bucket:*")
        self._store.client.delete(self._index)
        self._store.view.forget()

    def take(self, token: str, endpoint: str) -> float | None:
        """Spend one request; None when allowed, else the seconds until the next one is."""
        limit = self.limit
        if limit is None:
            return None
        name = f"{self._store.namespace_id(token)}:{endpoint}"
        left = self._take(
            keys=[self._store.key("bucket", name), self._index], args=[self._now(), limit, name, MAX_BUCKETS]
        )
        if not left:
            return None
        return (1 - float(left)) / (limit / 60.0)

    def retry_after(self, wait: float) -> str:
        return str(max(1, math.ceil(wait)))

    def state(self, token: str | None = None) -> list[dict[str, object]]:
        wanted = self._store.namespace_id(token) if token is not None else None
        names = [name.decode() for name in self._store.client.zrange(self._index, 0, -1)]
        if wanted is not None:
            names = [name for name in names if name.startswith(wanted + ":")]
        pipe = self._store.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self._store.key("bucket", name), "tokens")
        found = []
        for name, tokens in zip(names, pipe.execute(), strict=True):
            if tokens is not None:
                token_id, endpoint = name.rsplit(":", 1)
                found.append({"token_id": token_id, "endpoint": endpoint, "remaining": math.floor(float(tokens))})
        return found

    def clear(self, token: str | None = None) -> None:
        """Refill one token's buckets; with no token, every bucket, and the configured limit comes back."""
        if token is None:
            self._store.delete_matching("bucket:*")
            self._store.client.delete(self._index, LIMIT)
            self._store.view.forget()
            return
        wanted = f"{self._store.namespace_id(token)}:"
        names = [name for name in self._store.client.zrange(self._index, 0, -1) if name.decode().startswith(wanted)]
        if names:
            self._store.client.delete(*(self._store.key("bucket", name.decode()) for name in names))
            self._store.client.zrem(self._index, *names)


# Add an upload and drop the oldest past the bounds. KEYS: data hash, types hash, order zset, bytes counter.
# ARGV: name, data, content type, order, max count, max bytes.
_ADD_UPLOAD = """
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
local total = redis.call('INCRBY', KEYS[4], #ARGV[2] - old)
while redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[5]) or total > tonumber(ARGV[6]) do
  local oldest = redis.call('ZPOPMIN', KEYS[3])[1]
  total = redis.call('INCRBY', KEYS[4], -redis.call('HSTRLEN', KEYS[1], oldest))
  redis.call('HDEL', KEYS[1], oldest)
  redis.call('HDEL', KEYS[2], oldest)
end
return total
"""


class RedisUploads:
    """``uploads.Uploads`` on the store: an image uploaded to one process is served by all."""

    def __init__(self, store: Store, *, max_count: int = MAX_UPLOADS, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self._store = store
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._keys = [store.key("uploads", part) for part in ("data", "types", "order", "bytes")]
        self._add = store.script("add-upload", _ADD_UPLOAD)

    def add(self, data: bytes, content_type: str) -> str:
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"body: {len(data)} bytes is over the uploads' limit of {self.max_bytes} bytes")
        name = hashlib.sha256(data).hexdigest()[:32]
        order = self._store.client.incr(self._store.key("uploads", "sequence"))
        self._add(keys=self._keys, args=[name, data, content_type, order, self.max_count, self.max_bytes])
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        pipe = self._store.client.pipeline(transaction=False)
        pipe.hget(self._keys[0], name)
        pipe.hget(self._keys[1], name)
        data, content_type = pipe.execute()
        if data is None or content_type is None:
            return None
        return data, content_type.decode()

    def clear(self) -> None:
        self._store.delete_matching("uploads:*")

    @property
    def total_bytes(self) -> int:
        return int(self._store.client.get(self._keys[3]) or 0)
