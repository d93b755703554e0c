"""Identifiers the fake hands out or shows: request ids, and the namespace id of a token."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Callable

NamespaceId = Callable[[str | None], str | None]  # a token -> its namespace id (None: no token)


def new_request_id() -> str:
    """32 random hex digits, like a uuid4's, and as hard to guess: a result image needs no token."""
    return os.urandom(16).hex()


def namespaces(key: bytes) -> NamespaceId:
    """Namespace ids under ``key``: ``tok-`` and 128 bits of a keyed hash of the token.

    Two tokens share a namespace (jobs, rules, journal entries) only if they are equal: finding two
    that collide would take about 2**64 tries even knowing the key. The key is secret, so that an id
    shown in the journal or the state cannot be matched against guessed tokens offline.
    """

    @functools.lru_cache(maxsize=1024)  # tokens are few; hashing one per request is not needed
    def namespace_id(token: str | None) -> str | None:
        if token is None:
            return None
        digest = hmac.new(key, token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return "tok-" + digest[:32]

    return namespace_id


# This process's namespace ids, under a key drawn when it starts: those of state kept in memory. A
# shared store has its own key, kept in the store, so that its ids are the same in every process.
namespace_id = namespaces(os.urandom(32))


def masked(token: str) -> str:
    """A token as the controls show it: enough to tell yours apart, never enough to use it."""
    return f"{token[:4]}…" if len(token) > 12 else "…"
