"""Identifiers the fake hands out or shows: request ids, and the namespace id of a token."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os

# The key of namespace ids: drawn per process, so that an id shown in the journal or the state
# cannot be matched against guessed tokens offline, and colliding ids cannot be searched for.
_NAMESPACE_KEY = os.urandom(32)


def new_request_id() -> str:
    """32 random hex digits, like a uuid4's, and as hard to guess: a result image needs no token."""
    return os.urandom(16).hex()


def namespace_key() -> bytes:
    """This process's namespace key (a shared store shares it: see ``mock_server.state.redis_store``)."""
    return _NAMESPACE_KEY


def use_namespace_key(key: bytes) -> None:
    """Take a shared store's namespace key, so that a token has one namespace id in every process."""
    global _NAMESPACE_KEY
    _NAMESPACE_KEY = key
    namespace_id.cache_clear()


@functools.lru_cache(maxsize=1024)  # tokens are few; hashing one per request is not needed
def namespace_id(token: str | None) -> str | None:
    """A token's namespace as the fake shows it: ``tok-`` and 128 bits of a keyed hash of the token.

    Two tokens share a namespace (jobs, rules, journal entries) only if they are equal: finding two
    that collide would take about 2**64 tries even knowing the key.
    """
    if token is None:
        return None
    digest = hmac.new(_NAMESPACE_KEY, token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "tok-" + digest[:32]


def masked(token: str) -> str:
    """A token as the controls show it: enough to tell yours apart, never enough to use it."""
    return f"{token[:4]}…" if len(token) > 12 else "…"
