"""The traffic policy every API request goes through, top to bottom, and how its answer leaves.

For one request (an :class:`Exchange`): read the body under the size limit, take a rate-limit
token, let the fault rules decide, wait out any latency they add, then either answer what a
rule injected or call the route's endpoint; then send the answer (whole, truncated, dribbled or
not at all, as the rules say) and journal what went out. Every error on the way becomes an
answer in :func:`mock_server.errors.error_answer`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request

from mock_server import connection_faults, operations
from mock_server.bodies import (
    check_declared_length,
    check_read_length,
    check_separator_count,
    check_value_count,
    parse_json,
    read_limited,
    request_chunks,
)
from mock_server.context import RequestContext, context_of
from mock_server.errors import (
    BadRequest,
    BriaError,
    RequestTimeout,
    TooManyRequests,
    error_answer,
    error_for_code,
    is_crash,
)
from mock_server.journal import ENTRY_OVERHEAD, KeepPayload, digest_of, kept_body, redact_headers
from mock_server.rules import Decision, Traffic, rules_from_headers

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from mock_server.backend import BriaBackend
    from mock_server.routing import Match

LARGE_BODY_BYTES = 256 * 1024  # parsed and summarised off the event loop: other requests keep flowing
# Bodies up to this size are parsed only when needed (a rule, the handler), and journaled as
# bytes, summarised (image payloads replaced by digests) only when the journal is read.
SMALL_BODY_BYTES = 4 * 1024
NO_DECISION = Decision()  # no rule fired (never changed: a decision is built anew when one does)
# Answers given before the request was authenticated and read: its body is journaled as a digest.
REFUSED_UNREAD = frozenset({401, 413, 429})
_RULE_HEADERS = frozenset({b"x-bria-mock-rule", b"prefer"})  # ASGI header names are lower-case


class Exchange:
    """One API request's way through the policy, and what the journal will say of it."""

    def __init__(self, backend: BriaBackend, scope: Scope, match: Match) -> None:
        backend.state.refresh()  # a shared store's clock, rules and limit, as of this request
        self.backend = backend
        self.scope = scope
        self.match = match
        self.endpoint = match.traffic or operations.OTHER
        self.context: RequestContext = context_of(scope)
        self.headers = Headers(scope=scope)
        self.token = self.headers.get("api_token") or None
        self.started = time.perf_counter()
        self.summary: Any = None  # the body as the journal keeps it, or (a small body) its raw bytes
        self.summary_bytes = 0
        self.decision = NO_DECISION
        self.status: int | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0
        self.recorded = False

    async def serve(self, receive: Receive, send: Send) -> None:
        """Apply the policy, answer, and journal the exchange."""
        crash: Exception | None = None
        try:
            response = await self._answer(receive, send)
        except ClientDisconnect:  # the client left before its request was whole: nothing runs, nobody to answer
            response = None
        except Exception as exc:
            response = self._error(exc)
            crash = exc if is_crash(exc) else None
        if response is not None:
            await self._send(response, receive, send)
        self.record()
        connection_faults.raise_in_process(crash, send)

    async def _answer(self, receive: Receive, send: Send) -> Response | None:
        """The answer to send, or None when a connection fault has already dealt with the client."""
        await self._read_body(receive)
        self._rate_limit()  # first, as a real edge does: a limited request reaches no rule
        self.decision = self._decide()
        if self.decision is NO_DECISION:  # the common case: no rule fired, nothing to delay or replace
            return await self._call_endpoint(receive)
        await self._delay()
        terminal = self.decision.terminal
        if terminal is not None and terminal["type"] == "error":
            raise injected_error(terminal)
        if terminal is not None and terminal["fault"] != "truncate":
            self.record()
            await connection_faults.inject(terminal, receive, send)
            return None
        jobs = self.decision.actions("job")
        self.context.job_rule = jobs[0] if jobs else None
        return await self._call_endpoint(receive)

    async def _call_endpoint(self, receive: Receive) -> Response:
        if self.match.error is not None:
            raise self.match.error
        assert self.match.route is not None  # (a match has a route or an error)
        self.scope["path_params"] = self.match.params
        return await self.match.route.endpoint(Request(self.scope, receive))

    def _error(self, exc: Exception) -> Response:
        where = f"on {self.scope['method']} {self.scope['path']}"
        return error_answer(exc, self.context.request_id, self.backend.crashes, where)

    async def _read_body(self, receive: Receive) -> None:
        """The whole body, refused with 413 as soon as it passes the limit (never read further), and
        with 408 when it does not arrive whole in time."""
        if self.scope["method"] != "POST":
            return
        limit = self.backend.settings.max_body_bytes
        check_declared_length(self.headers, limit)
        deadline = self.backend.settings.body_timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                raw = await self._receive_body(receive, limit)
        except TimeoutError:
            raise RequestTimeout(f"body: not received whole within {deadline:g} s (body_timeout_seconds)") from None
        self.context.raw = raw
        await self._summarise(raw)

    async def _receive_body(self, receive: Receive, limit: int) -> bytes:
        first = await receive()
        if first["type"] == "http.disconnect":
            raise ClientDisconnect()
        raw: bytes = first.get("body", b"")
        check_read_length(len(raw), limit)  # (a first message may already hold more than the limit)
        if first.get("more_body", False):  # (most bodies come in one message: no generator for them)
            raw += await read_limited(request_chunks(receive), limit, already=len(raw))
        return raw

    async def _summarise(self, raw: bytes) -> None:
        keep = self.backend.recent_inputs.put  # so that the inspector can show the pixels the summary drops
        if len(raw) > LARGE_BODY_BYTES:
            parsed, self.summary, self.summary_bytes = await run_in_threadpool(_parse_and_summarise, raw, keep)
            self.context.parsed(parsed)
        elif len(raw) > SMALL_BODY_BYTES:
            parsed, self.summary, self.summary_bytes = _parse_and_summarise(raw, keep)
            self.context.parsed(parsed)
        else:  # small: parsed when a rule or the handler needs it; the journal keeps the bytes
            self.summary, self.summary_bytes = raw, len(raw)

    def _rate_limit(self) -> None:
        if self.token is None or self.endpoint not in operations.rate_limited():
            return
        limiter = self.backend.limiter
        wait = limiter.take(self.token, self.endpoint)
        if wait is not None:
            details = f"request limit of {limiter.limit} per minute exceeded for {self.endpoint}"
            raise TooManyRequests(details, headers={"Retry-After": limiter.retry_after(wait)})

    def _decide(self) -> Decision:
        if not self.backend.rules and not any(name in _RULE_HEADERS for name, _ in self.scope["headers"]):
            return NO_DECISION  # the common case: no rule anywhere, nothing to parse
        now = self.backend.clock.now()
        body = self.context.json_or_none()
        traffic = Traffic(endpoint=self.endpoint, method=self.scope["method"], token=self.token, body=body)
        extra = rules_from_headers(self.headers, now)
        self.context.webhook_rules = tuple(rule for rule in extra if rule.on_webhooks)  # for this job's webhook
        return self.backend.rules.decide(traffic, now, extra=extra)

    async def _delay(self) -> None:
        seconds = sum(sample_latency(action) for action in self.decision.actions("latency"))
        if seconds > 0:
            await asyncio.sleep(seconds)  # asyncio: a delayed request never holds up the others

    async def _send(self, response: Response, receive: Receive, send: Send) -> None:
        """Send the answer as the rules say: whole, truncated or dribbled. Journaled before the last
        byte leaves, so a client that has its answer finds it in the journal."""
        self.status = response.status_code
        self.response_headers = response.raw_headers
        body = bytes(response.body)
        self.response_bytes = len(body)
        self.record()
        terminal = self.decision.terminal
        slow = self.decision.actions("slow_body")
        if terminal is not None and terminal["type"] == "connection":  # a truncated answer
            raw = connection_faults.raw_response(response.status_code, response.raw_headers, body)
            try:
                await connection_faults.inject(terminal, receive, send, raw)
            except connection_faults.NoSocket as exc:
                await self._error(exc)(self.scope, receive, send)
        elif slow:
            await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
            await _dribble(send, body, slow[0])
        else:
            await response(self.scope, receive, send)

    def record(self) -> None:
        """Journal the exchange, once (``status`` None: no answer went out)."""
        if self.recorded:
            return
        self.recorded = True
        if self.status in REFUSED_UNREAD and len(self.context.raw) > SMALL_BODY_BYTES:
            self.summary = digest_of(self.context.raw)  # refused before authentication: no need to keep it
            self.summary_bytes = ENTRY_OVERHEAD
        self.backend.journal.record(
            at=self.backend.clock.now(),
            method=self.scope["method"],
            path=self.scope["path"],
            endpoint=self.endpoint,
            token_id=self.backend.namespace_id(self.token),
            request_header_pairs=redact_headers(self.scope["headers"]),
            request_body=self.summary,
            body_bytes=self.summary_bytes,
            status=self.status,
            response_header_pairs=redact_headers(self.response_headers),
            response_bytes=self.response_bytes,
            rules=self.decision.rule_ids,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
        )


def injected_error(action: dict[str, Any]) -> BriaError:
    """The error an ``error`` action answers with: its status, details, headers and (optionally) body."""
    details = action.get("details", f"injected by a bria-mock rule (status {action['status']})")
    error = error_for_code(action["status"], details)
    error.headers.update(action.get("headers", {}))
    error.replacement_body = action.get("body")
    return error


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


async def _dribble(send: Send, body: bytes, slow: dict[str, Any]) -> None:
    chunks = max(1, int(slow.get("chunks", 10)))
    size = max(1, math.ceil(len(body) / chunks))
    pause = slow["duration_ms"] / 1000 / chunks
    for offset in range(0, max(len(body), 1), size):
        await asyncio.sleep(pause)
        last = offset + size >= len(body)
        await send({"type": "http.response.body", "body": body[offset : offset + size], "more_body": not last})


def _parse_and_summarise(raw: bytes, keep: KeepPayload | None = None) -> tuple[Any, Any, int]:
    """The body's JSON (or the BadRequest saying why it is not), what the journal keeps of it, and
    that summary's size in bytes."""
    try:
        check_separator_count(raw)
        parsed = parse_json(raw)
        check_value_count(parsed)
    except BadRequest as exc:
        parsed = exc
    if isinstance(parsed, BadRequest):  # not a body the fake takes: kept as what it was, not what it says
        return parsed, digest_of(raw), ENTRY_OVERHEAD
    summary, size = kept_body(raw, parsed, keep)
    return parsed, summary, size
