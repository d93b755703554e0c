"""The journal and the webhook attempt log on the shared store: every process's records in one list each.

Each record is kept serialised (``<number> <owner's namespace id, or -> <json>``) and counted by
those bytes; one script adds it and drops the oldest past the count or the bytes, so the bounds hold
whatever the number of processes. Keys: ``journal``, ``journal-bytes``, ``journal-ids`` (and the same
for ``webhook-log``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from mock_server.journal import Entry, matches
from mock_server.state.redis_store import decode, encode
from mock_server.webhook_log import Attempt, filter_attempts

if TYPE_CHECKING:
    from mock_server.state.redis_store import Store


class BoundedList:
    """Records in one list on the store, numbered, oldest first, bounded by a count and by their bytes."""

    def __init__(self, store: Store, name: str, *, max_entries: int, max_bytes: int) -> None:
        self._store = store
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self._keys = [store.key(name), store.key(f"{name}-bytes"), store.key(f"{name}-ids")]
        self._append = store.script("append-bounded", _APPEND)

    def append(self, record: bytes, owner: str | None) -> tuple[int, int]:
        """Add a record of ``owner``'s namespace; its number and the bytes it is counted at."""
        args = [f"{owner or '-'} ".encode() + record, self.max_entries, self.max_bytes]
        number, size = self._append(keys=self._keys, args=args)
        return int(number), int(size)

    def items(self) -> list[tuple[int, bytes]]:
        """Every record with its number, oldest first."""
        kept = self._store.client.lrange(self._keys[0], 0, -1)
        return [(int(number), record) for number, _, record in (raw.split(b" ", 2) for raw in kept)]

    def clear_owner(self, owner: str | None) -> None:
        """Drop one namespace's records, atomically (others' records added meanwhile stay)."""
        self._store.script("clear-owner", _CLEAR_OWNER)(keys=self._keys[:2], args=[owner or "-"])

    def clear(self) -> None:
        self._store.client.delete(self._keys[0], self._keys[1])

    def __len__(self) -> int:
        return int(self._store.client.llen(self._keys[0]))

    @property
    def bytes_held(self) -> int:
        return int(self._store.client.get(self._keys[1]) or 0)


# KEYS: the list, its bytes, the number counter. ARGV: the record, max entries, max bytes.
_APPEND = """
local id = redis.call('INCR', KEYS[3])
local value = id .. ' ' .. ARGV[1]
redis.call('RPUSH', KEYS[1], value)
local total = redis.call('INCRBY', KEYS[2], #value)
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[2]) or total > tonumber(ARGV[3]) do
  local oldest = redis.call('LPOP', KEYS[1])
  if not oldest then break end
  total = redis.call('INCRBY', KEYS[2], -#oldest)
end
return {id, #value}
"""


# Drop one owner's records. KEYS: the list, its bytes. ARGV: the owner.
_CLEAR_OWNER = """
local kept, total = {}, 0
for _, value in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local first = string.find(value, ' ', 1, true)
  local second = string.find(value, ' ', first + 1, true)
  if string.sub(value, first + 1, second - 1) ~= ARGV[1] then
    kept[#kept + 1] = value
    total = total + #value
  end
end
redis.call('DEL', KEYS[1])
for index = 1, #kept, 1000 do redis.call('RPUSH', KEYS[1], unpack(kept, index, math.min(index + 999, #kept))) end
redis.call('SET', KEYS[2], total)
return #kept
"""


class RedisJournal:
    """``journal.Journal`` on the store."""

    def __init__(self, store: Store, *, max_entries: int, max_bytes: int) -> None:
        self._list = BoundedList(store, "journal", max_entries=max_entries, max_bytes=max_bytes)
        self.max_entries, self.max_bytes = self._list.max_entries, self._list.max_bytes
        self.namespace_id = store.namespace_id

    def record(self, **fields: Any) -> Entry | None:
        if self.max_entries == 0:
            return None
        fields.pop("body_bytes")
        entry_id, size = self._list.append(_serialised(fields), fields["token_id"])
        return Entry(id=entry_id, size=size, **fields)

    def entries(self, **criteria: Any) -> list[Entry]:
        found = [_entry(number, raw) for number, raw in self._list.items()]
        return [entry for entry in found if matches(entry, criteria, self.namespace_id)]

    def clear(self, token: str | None = None) -> None:
        if token is None:
            self._list.clear()
            return
        self._list.clear_owner(self.namespace_id(token))

    def __len__(self) -> int:
        return len(self._list)

    @property
    def bytes_held(self) -> int:
        return self._list.bytes_held


class RedisWebhookLog:
    """``webhook_log.WebhookLog`` on the store: every process's attempts, in one bounded list."""

    def __init__(self, store: Store, *, max_entries: int, max_bytes: int) -> None:
        self._list = BoundedList(store, "webhook-log", max_entries=max_entries, max_bytes=max_bytes)
        self.max_entries, self.max_bytes = self._list.max_entries, self._list.max_bytes

    def record(self, **fields: Any) -> Attempt:
        number, _ = self._list.append(encode(fields), fields["namespace"])
        return Attempt(id=number, **fields)

    def attempts(
        self,
        *,
        namespace: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        delivered: bool | None = None,
        url: str | None = None,
    ) -> list[Attempt]:
        every = [Attempt(id=number, **decode(raw)) for number, raw in self._list.items()]
        return filter_attempts(
            every, namespace=namespace, request_id=request_id, status=status, delivered=delivered, url=url
        )

    def clear(self, namespace: str | None = None) -> None:
        if namespace is None:
            self._list.clear()
            return
        self._list.clear_owner(namespace)

    def __len__(self) -> int:
        return len(self._list)


def _serialised(fields: dict[str, Any]) -> bytes:
    record = {key: value for key, value in fields.items() if key not in _PAIRS and key != "request_body"}
    for key in _PAIRS:
        record[key] = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in fields[key]]
    body = fields["request_body"]
    if isinstance(body, bytes):  # a small body, kept raw (summarised when read)
        record["raw_body"] = base64.b64encode(body).decode()
    else:
        record["request_body"] = body
    return encode(record)


_PAIRS = ("request_header_pairs", "response_header_pairs")


def _entry(number: int, raw: bytes) -> Entry:
    record = decode(raw)
    for key in _PAIRS:
        record[key] = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in record[key]]
    if "raw_body" in record:
        record["request_body"] = base64.b64decode(record.pop("raw_body"))
    return Entry(id=number, size=len(raw), **record)
