"""Identifiers the fake hands out or shows: request ids, and the namespace id of a token."""

from __future__ import annotations

import functools
import hashlib
import os


def new_request_id() -> str:
    """32 random hex digits, like a uuid4's, and as hard to guess: a result image needs no token."""
    return os.urandom(16).hex()


@functools.lru_cache(maxsize=1024)  # tokens are few; hashing one per request is not needed
def namespace_id(token: str | None) -> str | None:
    """A stable, non-reversible name for a token's namespace: what the journal and state show instead of it."""
    return None if token is None else "tok-" + hashlib.sha256(token.encode()).hexdigest()[:10]
