"""The journal on the shared store: every process's exchanges in one list, in the order they were recorded.

Each entry is kept as its serialised record (``<id> <json>``) and counted by those bytes; one script
adds it and drops the oldest past ``journal_max_entries`` or ``journal_max_bytes``, so the bounds hold
whatever the number of processes. Keys: ``journal``, ``journal-bytes``, ``journal-ids``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import orjson

from mock_server.ids import namespace_id
from mock_server.journal import Entry, matches

if TYPE_CHECKING:
    from mock_server.state.redis_store import Store

# KEYS: the list, its bytes, the id counter. ARGV: the record (without its id), max entries, max bytes.
_RECORD = """
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


class RedisJournal:
    """``journal.Journal`` on the store."""

    def __init__(self, store: Store, *, max_entries: int, max_bytes: int) -> None:
        self._store = store
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self._keys = [store.key("journal"), store.key("journal-bytes"), store.key("journal-ids")]
        self._record = store.script("record-exchange", _RECORD)

    def record(self, **fields: Any) -> Entry | None:
        if self.max_entries == 0:
            return None
        fields.pop("body_bytes")
        entry_id, size = self._record(keys=self._keys, args=[_serialised(fields), self.max_entries, self.max_bytes])
        return Entry(id=int(entry_id), size=int(size), **fields)

    def entries(self, **criteria: Any) -> list[Entry]:
        found = [_entry(raw) for raw in self._store.client.lrange(self._keys[0], 0, -1)]
        return [entry for entry in found if matches(entry, criteria)]

    def clear(self, token: str | None = None) -> None:
        if token is None:
            self._store.client.delete(self._keys[0], self._keys[1])
            return
        owner = namespace_id(token)
        kept = [raw for raw in self._store.client.lrange(self._keys[0], 0, -1) if _entry(raw).token_id != owner]
        pipe = self._store.client.pipeline(transaction=True)
        pipe.delete(self._keys[0])
        if kept:
            pipe.rpush(self._keys[0], *kept)
        pipe.set(self._keys[1], sum(len(raw) for raw in kept))
        pipe.execute()

    def __len__(self) -> int:
        return int(self._store.client.llen(self._keys[0]))

    @property
    def bytes_held(self) -> int:
        return int(self._store.client.get(self._keys[1]) or 0)


def _serialised(fields: dict[str, Any]) -> bytes:
    record = {key: value for key, value in fields.items() if key not in _PAIRS and key != "request_body"}
    for key in _PAIRS:
        record[key] = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in fields[key]]
    body = fields["request_body"]
    if isinstance(body, bytes):  # a small body, kept raw (summarised when read)
        record["raw_body"] = base64.b64encode(body).decode()
    else:
        record["request_body"] = body
    try:
        return orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits in a summary: keep its text
        record.pop("request_body", None)
        record["request_body"] = repr(body)[:1024]
        return orjson.dumps(record)


_PAIRS = ("request_header_pairs", "response_header_pairs")


def _entry(raw: bytes) -> Entry:
    entry_id, _, serialised = raw.partition(b" ")
    record = orjson.loads(serialised)
    for key in _PAIRS:
        record[key] = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in record[key]]
    if "raw_body" in record:
        record["request_body"] = base64.b64decode(record.pop("raw_body"))
    return Entry(id=int(entry_id), size=len(raw), **record)
