"""The request journal: every exchange recorded, tokens redacted, image payloads as digests.

Bounded by a count and by the bytes it holds; past either bound the oldest entries go first.
An entry keeps a small body as its raw bytes (summarised when first read) and a larger one as
its summary, counted by its serialised size; a summary over ``MAX_KEPT_BODY_BYTES``, and the body
of a request refused before it was authenticated, are kept as their digest and size only.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import functools
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mock_server import ids

MAX_KEPT_BODY_BYTES = 16 * 1024
# What a query can ask of an entry (see ``matches``): the journal's assertions and ``calls()`` take these.
CRITERIA = ("endpoint", "method", "status", "token", "path", "body")
_REDACTED = b"<redacted>"
_UNREAD = object()
_SECRET_HEADERS = frozenset({b"api_token", b"authorization", b"x-bria-mock-admin-token"})
# What each format's magic bytes look like base64-encoded: the format is told without decoding.
_MAGIC_BASE64 = (("/9j/", "JPEG"), ("iVBORw", "PNG"), ("UklGR", "WEBP"), ("R0lGOD", "GIF"), ("Qk", "BMP"))


@dataclasses.dataclass(slots=True)  # not frozen: a frozen dataclass is several times slower to create
class Entry:
    """One recorded exchange (never changed once recorded)."""

    id: int
    at: float
    method: str
    path: str
    endpoint: str
    token_id: str | None
    request_header_pairs: list[tuple[bytes, bytes]] = dataclasses.field(repr=False)  # secrets redacted
    request_body: Any = dataclasses.field(repr=False)  # the summary, or (a small body) its raw bytes
    status: int | None
    response_header_pairs: list[tuple[bytes, bytes]] = dataclasses.field(repr=False)
    response_bytes: int
    rules: list[str]
    duration_ms: float
    size: int  # the estimate the byte bound counts
    summary: Any = dataclasses.field(default=_UNREAD, repr=False)  # of a raw body, once first read

    @property
    def body(self) -> Any:
        """The request's JSON body, each image payload replaced by its digest, size and format."""
        if not isinstance(self.request_body, bytes):  # (a summary is JSON: never bytes)
            return self.request_body
        if self.summary is _UNREAD:  # (two threads may both summarise: the same result, no harm)
            self.summary = summarise_body(_parsed_or_none(self.request_body))
        return self.summary

    @property
    def request_headers(self) -> dict[str, str]:
        return _header_dict(self.request_header_pairs)

    @property
    def response_headers(self) -> dict[str, str]:
        return _header_dict(self.response_header_pairs)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "token_id": self.token_id,
            "request_headers": self.request_headers,
            "body": self.body,
            "status": self.status,
            "response_headers": self.response_headers,
            "response_bytes": self.response_bytes,
            "rules": self.rules,
            "duration_ms": self.duration_ms,
        }


class Journal:
    """The recorded exchanges of one backend, oldest first."""

    def __init__(self, *, max_entries: int, max_bytes: int, namespace_id: ids.NamespaceId = ids.namespace_id) -> None:
        self.namespace_id = namespace_id  # how the entries' token ids were made (a criterion ``token`` too)
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self._entries: collections.deque[Entry] = collections.deque()
        self._bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> Entry | None:
        """Add an exchange (the fields of :class:`Entry` but ``id`` and ``size``); evict past the bounds."""
        if self.max_entries == 0:
            return None
        size = ENTRY_OVERHEAD + fields.pop("body_bytes") + _header_bytes(fields["request_header_pairs"])
        size += _header_bytes(fields["response_header_pairs"])
        with self._lock:
            entry = Entry(id=next(self._ids), size=size, **fields)
            self._entries.append(entry)
            self._bytes += size
            while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
                self._bytes -= self._entries.popleft().size
        return entry

    def entries(self, **criteria: Any) -> list[Entry]:
        """Entries matching every criterion: endpoint, method, status, token (raw), path, body (field values)."""
        with self._lock:
            snapshot = list(self._entries)
        return [entry for entry in snapshot if matches(entry, criteria, self.namespace_id)]

    def clear(self, token: str | None = None) -> None:
        with self._lock:
            if token is None:
                self._entries.clear()
                self._bytes = 0
                return
            kept = [entry for entry in self._entries if entry.token_id != self.namespace_id(token)]
            self._entries = collections.deque(kept)
            self._bytes = sum(entry.size for entry in kept)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_held(self) -> int:
        """The bytes the kept entries are counted at (their bodies as kept, and their headers)."""
        return self._bytes


def check_criteria(criteria: Iterable[str], also: Iterable[str] = ()) -> None:
    """Refuse a criterion no entry has, naming the closest valid one: a misspelt keyword must not
    quietly match nothing (``assert_not_called`` would pass) or fail from deep inside.

    ``also`` names the other keywords the caller takes (e.g. ``times``), to suggest them too.
    """
    valid = (*CRITERIA, *also)
    for name in criteria:
        if name not in valid:
            raise TypeError(unknown_criterion(name, valid))


def unknown_criterion(name: str, valid: Iterable[str] = CRITERIA) -> str:
    """The message for an unknown criterion: the closest valid name, and all of them."""
    valid = tuple(valid)
    closest = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {closest[0]!r}?" if closest else ""
    return f"unknown criterion {name!r}{hint} (valid: {', '.join(valid)})"


def matches(entry: Entry, criteria: Mapping[str, Any], namespace_id: ids.NamespaceId) -> bool:
    """Whether an entry satisfies query criteria (``None`` values are ignored); ``TypeError`` for a
    criterion that is not one of ``CRITERIA``."""
    for key, wanted in criteria.items():
        if key not in CRITERIA:
            raise TypeError(unknown_criterion(key))
        if wanted is None:
            continue
        if key == "token":
            if entry.token_id != namespace_id(wanted):
                return False
        elif key == "body":
            if not isinstance(entry.body, dict) or any(entry.body.get(f) != v for f, v in wanted.items()):
                return False
        elif key == "status":
            if entry.status != int(wanted):
                return False
        elif getattr(entry, key) != wanted:  # endpoint, method, path
            return False
    return True


def redact_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Header pairs with secrets replaced (a journal must never hold a token); decoded only when read."""
    return [(name, _REDACTED) if name.lower() in _SECRET_HEADERS else (name, value) for name, value in headers]


def _parsed_or_none(raw: bytes) -> Any:
    # Imported here: the pytest plugin imports this module, and every pytest start-up pays for its imports.
    from mock_server.bodies import parse_json_or_error
    from mock_server.errors import BadRequest

    parsed = parse_json_or_error(raw)
    return None if isinstance(parsed, BadRequest) else parsed  # not JSON: the journal shows no body


def _header_dict(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in pairs}


KeepPayload = Callable[[str, str], None]  # (digest, base64 payload): somewhere to keep what a summary drops


def summarise_body(body: Any, keep: KeepPayload | None = None) -> Any:
    """The JSON body with every image payload replaced by its digest, size and format (each payload
    handed to ``keep`` with its digest, when given)."""
    if not isinstance(body, dict):
        return body
    image_fields = _image_fields()
    return {key: _summarise_images(value, keep) if key in image_fields else value for key, value in body.items()}


@functools.cache
def _image_fields() -> frozenset[str]:
    # Imported when a body is first summarised, in the server: the plugin imports this module.
    from mock_server.operations import image_summary_fields

    return frozenset(image_summary_fields())


def _summarise_images(value: Any, keep: KeepPayload | None = None) -> Any:
    if isinstance(value, list):
        return [_summarise_images(item, keep) for item in value]
    if not isinstance(value, str) or "://" in value[:12]:
        return value  # a URL (or not a string) is kept as it is
    payload = value.split(",", 1)[-1] if value.startswith("data:") else value
    digest = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
    if keep is not None:
        keep(digest, payload)
    return {"sha256": digest, "size": len(payload) * 3 // 4, "format": _sniff(payload)}


def _sniff(payload: str) -> str | None:
    return next((name for prefix, name in _MAGIC_BASE64 if payload.startswith(prefix)), None)


ENTRY_OVERHEAD = 200  # the entry's own fields, roughly


def kept_body(raw: bytes, parsed: Any, keep: KeepPayload | None = None) -> tuple[Any, int]:
    """What the journal keeps of a body too large to keep raw, and how many bytes that is."""
    summary = summarise_body(parsed, keep)
    size = _serialised_size(summary)
    if size > MAX_KEPT_BODY_BYTES:
        summary = digest_of(raw)
        size = _serialised_size(summary)
    return summary, size


def digest_of(raw: bytes) -> dict[str, Any]:
    """A body as its digest and size only (too large to keep, or refused before authentication)."""
    return {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw), "kept": False}


def _serialised_size(value: Any) -> int:
    import orjson  # (the plugin imports this module: its start-up stays light)

    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits
        return len(repr(value))


def _header_bytes(pairs: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in pairs)
