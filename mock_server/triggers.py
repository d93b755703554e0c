"""Deterministic triggers: request content that makes the fake answer a chosen failure.

Like a payment provider's test card numbers, these need no admin call. The README's
trigger table lists each one; keep the two in step.
"""

from __future__ import annotations

import re

from PIL import Image

from mock_server.bodies import is_whole_number
from mock_server.errors import BriaError, Forbidden, ServerError, TooManyRequests
from mock_server.jobs import JobState

TOKEN_PREFIX = "bria-mock-"
# Retry-After is short so that clients which honour it (the official SDK does, on GET)
# retry within a test's patience.
RETRY_AFTER_SECONDS = 1

# api_token values that fail every API call (status polls included) with this code.
_TOKEN_CODES = (403, 429, 500, 502, 503, 504)
# api_token values whose jobs are accepted but end badly (a sync call answers 500).
JOB_FAILURE_TOKENS = {
    f"{TOKEN_PREFIX}job-error": JobState.ERROR,
    f"{TOKEN_PREFIX}job-unknown": JobState.UNKNOWN,
}

NOT_FOUND_HOST = "not-found.invalid"
UNSAFE_INPUT_MARKER = "bria-mock:unsafe-input"
UNSAFE_OUTPUT_MARKER = "bria-mock:unsafe-output"
_UNSAFE_PROMPT = re.compile(r"\bnsfw\b", re.IGNORECASE)


def is_trigger_token(token: str) -> bool:
    """Trigger tokens are accepted even when ``--token`` restricts the accepted set."""
    return token in JOB_FAILURE_TOKENS or token in {f"{TOKEN_PREFIX}{code}" for code in _TOKEN_CODES}


def token_error(token: str) -> BriaError | None:
    """The error a trigger token forces on every API call, if it is one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    code = token.removeprefix(TOKEN_PREFIX)
    if not is_whole_number(code) or int(code) not in _TOKEN_CODES:
        return None
    return _error_for(int(code))


def _error_for(code: int) -> BriaError:
    if code == 403:
        return Forbidden("api_token: this organization is not entitled to this endpoint (trigger token)")
    if code == 429:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return TooManyRequests("request limit exceeded for this endpoint (trigger token)", headers=headers)
    return ServerError(f"internal error (trigger token {TOKEN_PREFIX}{code})", status_code=code)


def prompt_is_unsafe(prompt: str) -> bool:
    """A prompt containing the word ``nsfw`` fails prompt moderation."""
    return bool(_UNSAFE_PROMPT.search(prompt))


def image_markers(image: Image.Image) -> set[str]:
    """Moderation markers found in an image's text metadata (JPEG comment, PNG text chunks)."""
    found: set[str] = set()
    for value in image.info.values():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if isinstance(text, str):
            found.update(marker for marker in (UNSAFE_INPUT_MARKER, UNSAFE_OUTPUT_MARKER) if marker in text)
    return found
