"""The traffic layer around the app: body limit, rate limits, fault rules and the journal.

It is the outermost ASGI layer, so it sees every request first and every byte of every
answer last: it can delay, replace or break an answer, and record what really went out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from mock_server import connection_faults
from mock_server.bodies import check_declared_length, check_read_length, parse_json_or_error, read_limited
from mock_server.errors import (
    BadRequest,
    BriaError,
    TooManyRequests,
    error_for_code,
    error_response,
    internal_error,
)
from mock_server.ids import namespace_id, new_request_id
from mock_server.journal import redact_headers, summarise_body
from mock_server.rules import Decision, Traffic, rules_from_headers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mock_server.backend import BriaBackend

BODY_KEY = "bria_mock.body"  # scope["state"] keys the handlers read: the raw body ...
JSON_KEY = "bria_mock.json"  # ... its JSON, when it parsed (so it is parsed once) ...
JOB_KEY = "bria_mock.job"  # ... and the job timeline a rule asked for
logger = logging.getLogger("mock_server")
LARGE_BODY_BYTES = 256 * 1024
_UNPARSED = object()
NO_DECISION = Decision()  # no rule fired (never changed: a decision is built anew when one does)
# Bodies up to this size are parsed only when needed (a rule, the handler), and journaled as
# bytes, summarised (image payloads replaced by digests) only when the journal is read.
SMALL_BODY_BYTES = 4 * 1024
_RULE_HEADERS = frozenset({b"x-bria-mock-rule", b"prefer"})  # ASGI header names are lower-case
RATE_LIMITED = frozenset({"remove_background", "replace_background", "status"})
_EDIT_PREFIX = "/v2/image/edit/"


def endpoint_of(path: str) -> str | None:
    """Which endpoint a path is, for rules and the journal; None for the fake's own routes."""
    if path.startswith(_EDIT_PREFIX):
        return path.removeprefix(_EDIT_PREFIX)
    if path.startswith("/v2/status/"):
        return "status"
    if path.startswith("/results/"):
        return "result"
    if path.startswith("/samples/"):
        return "sample"
    return None if path.startswith("/bria-mock/") or path == "/openapi.json" else "other"


class TrafficLayer:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, backend: BriaBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        exchange = Exchange(self.backend, scope, endpoint)
        try:
            await exchange.run(self.app, receive, send)
        except Exception as exc:  # a bug in the fake: still the envelope, and the plugin hears of it
            if exc not in self.backend.crashes:  # the app's own handler has not logged it
                logger.error("bria-mock crashed on %s %s", scope["method"], scope["path"], exc_info=exc)
                self.backend.crashes.append(exc)
            if exchange.status is None:
                await exchange.crashed(exc, send)
            if not connection_faults.has_socket(send):
                raise  # in-process, httpx raises it in the test at once
            # Over a socket the answer has gone out: re-raising would only make uvicorn drop the
            # client's keep-alive connection.
        finally:
            exchange.record()


class Exchange:
    """One request's way through the layer, and what the journal will say of it."""

    def __init__(self, backend: BriaBackend, scope: Scope, endpoint: str) -> None:
        self.backend = backend
        self.scope = scope
        self.endpoint = endpoint
        self.headers = Headers(scope=scope)
        self.token = self.headers.get("api_token") or None
        self.started = time.perf_counter()
        self.raw = b""
        self._json: Any = _UNPARSED  # the parsed body, or the BadRequest that parsing raised
        self.summary: Any = None  # the body as the journal shows it, or (a small body) its raw bytes
        self.decision = NO_DECISION
        self.status: int | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0
        self.recorded = False

    async def run(self, app: ASGIApp, receive: Receive, send: Send) -> None:
        try:
            raw = await self._read_body(receive)
            self._rate_limit()  # first, as a real edge does: a limited request reaches no rule
            self.decision = self._decide()
        except BriaError as exc:
            await self._answer(exc, send)
            return
        if not self.decision.fired:  # the common case: no rule fired, nothing to delay or replace
            self._pass_state(raw)
            await app(self.scope, _replay(raw, receive), self._observing_send(send))
            return
        await self._delay()
        terminal = self.decision.terminal
        if terminal is not None and terminal["type"] == "error":
            await self._answer(_rule_error(terminal), send, custom_body=terminal.get("body"))
            return
        if terminal is not None and terminal["fault"] != "truncate":
            self.record()
            await connection_faults.inject(terminal, receive, send)
            return
        self._pass_state(raw)
        await app(self.scope, _replay(raw, receive), self._wrap_send(send, receive, terminal))

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, refused with 413 as soon as it passes the limit (never read further)."""
        if self.scope["method"] != "POST":
            return b""
        limit = self.backend.settings.max_body_bytes
        check_declared_length(self.headers, limit)
        first = await receive()
        raw: bytes = first.get("body", b"")
        if first.get("more_body", False):  # (most bodies come in one message: no generator for them)
            raw = await read_limited(_chunks(receive, raw), limit)
        check_read_length(len(raw), limit)
        if len(raw) > LARGE_BODY_BYTES:  # parse and digest off the event loop: other requests keep flowing
            self._json, self.summary = await run_in_threadpool(_parse_and_summarise, raw)
        elif len(raw) > SMALL_BODY_BYTES:
            self._json, self.summary = _parse_and_summarise(raw)
        else:  # small: parsed when a rule or the handler needs it; the journal keeps the bytes
            self.summary = raw
        self.raw = raw
        return raw

    def json(self) -> Any:
        """The body's JSON, parsed when first needed; None when it is not JSON (the handler says why)."""
        if self._json is _UNPARSED:
            self._json = parse_json_or_error(self.raw)
        return None if isinstance(self._json, BadRequest) else self._json

    def _decide(self) -> Decision:
        if not self.backend.rules and not any(name in _RULE_HEADERS for name, _ in self.scope["headers"]):
            return NO_DECISION  # the common case: no rule anywhere, nothing to parse
        now = self.backend.clock.now()
        traffic = Traffic(endpoint=self.endpoint, method=self.scope["method"], token=self.token, body=self.json())
        one_off = rules_from_headers(self.headers, now)
        return self.backend.rules.decide(traffic, now, extra=one_off)

    def _rate_limit(self) -> None:
        if self.token is None or self.endpoint not in RATE_LIMITED:
            return
        wait = self.backend.limiter.take(self.token, self.endpoint)
        if wait is not None:
            retry_after = self.backend.limiter.retry_after(wait)
            details = f"request limit of {self.backend.limiter.limit} per minute exceeded for {self.endpoint}"
            raise TooManyRequests(details, headers={"Retry-After": retry_after})

    async def _delay(self) -> None:
        seconds = sum(sample_latency(action) for action in self.decision.actions("latency"))
        if seconds > 0:
            await asyncio.sleep(seconds)  # asyncio: a delayed request never holds up the others

    def _pass_state(self, raw: bytes) -> None:
        state = self.scope.setdefault("state", {})
        state[BODY_KEY] = raw
        if self._json is not _UNPARSED and not isinstance(self._json, BadRequest):
            state[JSON_KEY] = self._json
        jobs = self.decision.actions("job")
        if jobs:
            state[JOB_KEY] = jobs[0]

    async def crashed(self, exc: Exception, send: Send) -> None:
        await self._answer(internal_error(exc), send)

    async def _answer(self, exc: BriaError, send: Send, custom_body: Any = None) -> None:
        response = error_response(exc, new_request_id())
        if custom_body is not None:
            response.body = response.render(custom_body)
            response.init_headers(exc.headers)
        await response(self.scope, _no_body, self._wrap_send(send, _no_body, None))

    def _wrap_send(self, send: Send, receive: Receive, fault: dict[str, Any] | None) -> Send:
        slow = self.decision.actions("slow_body")
        if fault is None and not slow:
            return self._observing_send(send)
        return self._buffered_send(send, receive, fault, slow[0] if slow else None)

    def _observing_send(self, send: Send) -> Send:
        async def observe(message: Message) -> None:
            self._observe(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.record()  # before the last byte leaves: a client that has its answer sees the entry
            await send(message)

        return observe

    def _buffered_send(self, send: Send, receive: Receive, fault: dict[str, Any] | None, slow: Any) -> Send:
        """Hold the answer back, then truncate it or dribble it out."""
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def buffered(message: Message) -> None:
            self._observe(message)
            if message["type"] == "http.response.start":
                start.update(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(parts)
            self.record()
            if fault is not None:
                raw = connection_faults.raw_response(start["status"], start.get("headers", []), body)
                await connection_faults.inject(fault, receive, send, raw)
                return
            await send(start)
            await _dribble(send, body, slow)

        return buffered

    def _observe(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = message.get("headers", [])
        else:
            self.response_bytes += len(message.get("body", b""))

    def record(self) -> None:
        """Journal the exchange, once."""
        if self.recorded:
            return
        self.recorded = True
        self.backend.journal.record(
            at=self.backend.clock.now(),
            method=self.scope["method"],
            path=self.scope["path"],
            endpoint=self.endpoint,
            token_id=namespace_id(self.token),
            request_header_pairs=redact_headers(self.scope["headers"]),
            request_body=self.summary,
            status=self.status,
            response_header_pairs=redact_headers(self.response_headers),
            response_bytes=self.response_bytes,
            rules=self.decision.rule_ids,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
        )


def sample_latency(action: dict[str, Any]) -> float:
    """Seconds of delay for a latency action (random draws use the module RNG: the rule's own
    seed decides *whether* it fires; the delay's jitter is not part of the replayed schedule)."""
    distribution = action.get("distribution", "fixed")
    if distribution == "uniform":
        ms = random.uniform(action.get("min_ms", 0), action.get("max_ms", action.get("min_ms", 0)))
    elif distribution == "lognormal":
        median = action.get("median_ms", action.get("ms", 100))
        ms = random.lognormvariate(math.log(max(median, 1e-3)), action.get("sigma", 0.5))
        ms = min(ms, action.get("cap_ms", 10 * median))
    else:
        ms = action.get("ms", 0)
    return float(ms) / 1000


def _rule_error(action: dict[str, Any]) -> BriaError:
    details = action.get("details", f"injected by a bria-mock rule (status {action['status']})")
    error = error_for_code(action["status"], details)
    error.headers.update(action.get("headers", {}))
    return error


async def _dribble(send: Send, body: bytes, slow: dict[str, Any] | None) -> None:
    if slow is None:
        await send({"type": "http.response.body", "body": body})
        return
    chunks = max(1, int(slow.get("chunks", 10)))
    size = max(1, math.ceil(len(body) / chunks))
    pause = slow["duration_ms"] / 1000 / chunks
    for offset in range(0, max(len(body), 1), size):
        await asyncio.sleep(pause)
        last = offset + size >= len(body)
        await send({"type": "http.response.body", "body": body[offset : offset + size], "more_body": not last})


def _replay(raw: bytes, receive: Receive) -> Receive:
    """The app reads the body the layer already read; after it, the real receive (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _parse_and_summarise(raw: bytes) -> tuple[Any, Any]:
    """The body's JSON (or the BadRequest saying why it is not) and its journal summary."""
    parsed = parse_json_or_error(raw)
    return parsed, summarise_body(None if isinstance(parsed, BadRequest) else parsed)


async def _chunks(receive: Receive, first: bytes) -> AsyncIterator[bytes]:
    yield first
    while True:
        message = await receive()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
