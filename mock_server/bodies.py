"""Reading and parsing request bodies: one size limit, one JSON parser, for every route."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect

from mock_server.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from starlette.types import Receive

# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): only then can a string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def is_whole_number(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (``"²".isdigit()`` is true, but ``int("²")`` fails)."""
    return text.isascii() and text.isdigit()


def check_declared_length(headers: Mapping[str, str], limit: int) -> None:
    """413 at once when the body declares more than ``limit`` bytes (nothing is read)."""
    declared = headers.get("content-length", "")
    if is_whole_number(declared) and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes is over the limit of {limit} bytes")


async def read_limited(chunks: AsyncIterable[bytes], limit: int, *, already: int = 0) -> bytes:
    """The rest of a body (``already`` bytes of it read), refused with 413 as soon as the whole passes ``limit``."""
    parts: list[bytes] = []
    size = already
    async for chunk in chunks:
        size += len(chunk)
        check_read_length(size, limit)
        parts.append(chunk)
    return b"".join(parts)


async def request_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """A request body's chunks as the server hands them over; ``ClientDisconnect`` when the client
    leaves before the last one (a half body is never taken for a whole one)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def check_read_length(size: int, limit: int) -> None:
    """413 when the bytes read so far pass ``limit``."""
    if size > limit:
        raise PayloadTooLarge(f"body: over the limit of {limit} bytes")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body; 400 saying why when it is not JSON the fake can work with.

    orjson parses first (several times faster on a request body); the standard library's parser
    takes over when orjson refuses a body (for its exact messages: NaN, 1e400, a lone surrogate,
    UTF-16, nesting), and where orjson would read an integer past 64 bits as a float.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _parse_json_strictly(raw)
    if _may_be_a_wide_integer(value):
        return _parse_json_strictly(raw)
    return value


def _may_be_a_wide_integer(value: Any) -> bool:
    """Whether a parsed value holds a whole float of 2**63 or more (orjson's reading of a wider integer)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
        elif isinstance(current, float) and abs(current) >= _WIDE and current.is_integer():
            return True
    return False


_WIDE = float(2**63)


def _parse_json_strictly(raw: bytes) -> Any:
    try:
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))  # what json.loads does
    except _NotFinite as exc:
        raise BadRequest(f"body: {exc} is not a JSON number the fake accepts") from None
    except UnicodeDecodeError:
        raise BadRequest("body: not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise BadRequest("body: JSON nested too deeply") from None
    except ValueError:  # an integer past Python's limit on digits (sys.get_int_max_str_digits)
        raise BadRequest("body: a number with too many digits") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise BadRequest("body: a string holds a lone UTF-16 surrogate (e.g. \\ud800): not valid Unicode")
    return value


def parse_json_or_error(raw: bytes) -> Any:
    """The JSON value of a body, or the :class:`BadRequest` saying why it is not one (to answer later)."""
    try:
        return parse_json(raw)
    except BadRequest as exc:
        return exc


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's parser takes them: they would reach
    # clocks, probabilities and sleeps.
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 is JSON, but no finite number: it would parse as infinity
        raise _NotFinite(text)
    return value


# Built once: json.loads with any keyword argument builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


MAX_JSON_VALUES = 10_000


def check_separator_count(raw: bytes, limit: int = MAX_JSON_VALUES) -> None:
    """400, before parsing, when a body has far more commas than a body of ``limit`` values can.

    Parsing a body of a million keys holds the interpreter for a second or more, in any thread:
    counting its commas takes a few milliseconds. (Commas inside strings count too: a body is
    refused only past twice the limit, which no Bria request comes near.)
    """
    if raw.count(b",") > 2 * limit:
        raise BadRequest(f"body: more than {limit} JSON values (members and items); a Bria request has a few dozen")


def check_value_count(value: Any, limit: int = MAX_JSON_VALUES) -> None:
    """400 when a parsed body holds more than ``limit`` values (members and items, at any depth).

    A Bria request has a few dozen; a body of a million keys would otherwise keep validation,
    defaults and the journal busy on the event loop while every other client waits.
    """
    pending = [value]
    seen = 0
    while pending:
        current = pending.pop()
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        seen += len(children)
        if seen > limit:
            raise BadRequest(f"body: more than {limit} JSON values (members and items); a Bria request has a few dozen")
        pending.extend(child for child in children if isinstance(child, dict | list))
