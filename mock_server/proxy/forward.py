"""The proxy's ASGI app: its one control (``GET /bria-mock/proxy``, the live tally) and the forwarding
of everything else to the target.

One request (:class:`Forwarding`): read its body (whole up to ``max_check_bytes``, to check it;
past that it streams on unchecked), check it, send it to the target with the caller's headers,
read the answer (API answers whole, to check them and rewrite ``status_url``; result images and
anything else streamed chunk by chunk), check it, record it, send it on, then tally it. Downloads of
image URLs on another host go through :mod:`.images` to the same :class:`Forwarding`.
Violations change nothing unless ``strict``: then a bad request is refused (400) before it is
forwarded, a bad answer replaced by a 502, both in Bria's envelope (``errors.error_answer``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from mock_server.bodies import is_whole_number, request_chunks
from mock_server.context import context_of
from mock_server.errors import BadRequest, CrashLog, ImageNotFound, PayloadTooLarge, ServerError
from mock_server.errors import error_answer as render_error
from mock_server.fetch import describe_cause
from mock_server.proxy.checks import (
    OTHER,
    Violation,
    check_request,
    check_response,
    endpoint_of,
    is_checked_json,
)
from mock_server.proxy.images import IMAGES_PATH, ForeignImages, Upstream, serve_foreign_image
from mock_server.proxy.recording import ProxyRecorder
from mock_server.proxy.rewrite import rewrite_urls
from mock_server.proxy.tally import ExchangeSummary, Tally
from mock_server.proxy.target import Target, check_target, pinned_client
from mock_server.responses import JSONResponse
from mock_server.verify_report import RESULT_IMAGE

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from mock_server.proxy.options import ProxyOptions

CONTROL_PATH = "/bria-mock/proxy"
CONTROLS_PREFIX = "/bria-mock/"
NOT_CHECKED = "not_checked"  # a body over max_check_bytes: forwarded (or refused, strict) without a check
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself, never passed along.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length", "accept-encoding", "content-encoding"}
)

logger = logging.getLogger("mock_server")


class ProxyApp:
    """ASGI: the tally control, and forwarding to the target for everything else."""

    def __init__(self, options: ProxyOptions, target: Target | None = None) -> None:
        self.options = options
        self.target = target or check_target(options.target, allow_private=options.allow_private_target)
        self.tally = Tally()
        self.crashes = CrashLog()
        self.recorder = ProxyRecorder(Path(options.record), target=self.target.origin) if options.record else None
        self.client: httpx.AsyncClient | None = None
        self.images = ForeignImages()

    def upstream(self, scope: Scope) -> Upstream:
        """Where a request goes: the target, at the same path and query, with the caller's headers."""
        assert self.client is not None, "the proxy forwards only once started"
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self.target.url(raw_path, scope.get("query_string", b""))
        return Upstream(self.client, url, endpoint_of(scope["method"], scope["path"]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
        elif scope["path"] == CONTROL_PATH and scope["method"] in {"GET", "HEAD"}:
            await JSONResponse(self.status())(scope, receive, send)
        elif scope["path"].startswith(IMAGES_PATH):
            await serve_foreign_image(self, scope, receive, send)
        elif scope["path"].startswith(CONTROLS_PREFIX):
            error = ImageNotFound(f"no proxy control {scope['path']}; the proxy's one control is GET {CONTROL_PATH}")
            await self.error_answer(error, scope)(scope, receive, send)
        elif not (scope.get("raw_path") or scope["path"].encode()).startswith(b"/"):
            # h11 takes a request target such as "@host:port/x" or ":22/x": it must never reach the URL.
            refused = BadRequest("the request target must be a path starting with /")
            await self.error_answer(refused, scope)(scope, receive, send)
        else:
            await Forwarding(self, scope).run(receive, send)

    def status(self) -> dict[str, Any]:
        """What ``GET /bria-mock/proxy`` answers: the proxy's settings and the live tally."""
        recording = {"folder": self.options.record, "exchanges": self.recorder.count} if self.recorder else None
        mode = {"target": self.target.origin, "strict": self.options.strict, "recording": recording}
        return mode | self.tally.to_json()

    def error_answer(self, error: BaseException, scope: Scope) -> JSONResponse:
        return render_error(error, context_of(scope).request_id, self.crashes, f"on {scope['method']} {scope['path']}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = pinned_client(self.target, timeout=self.options.timeout_seconds)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class Forwarding:
    """One request's way through the proxy, and what the tally and the recording say of it."""

    def __init__(self, proxy: ProxyApp, scope: Scope, upstream: Upstream | None = None) -> None:
        self.proxy = proxy
        self.scope = scope
        self.upstream = upstream or proxy.upstream(scope)
        self.endpoint = self.upstream.endpoint
        self.started = time.perf_counter()
        self.waited = 0.0  # seconds spent waiting for the target (the rest is the proxy's own overhead)
        self.violations: list[Violation] = []
        self.status = 0
        self.answered_by = "target"
        self.recorded_as: int | None = None  # the exchange's ``index`` in the recording

    async def run(self, receive: Receive, send: Send) -> None:
        try:
            await self._forward(receive, send)
        except ClientDisconnect:  # the caller left before its request was whole: nothing to forward
            return
        except Exception as exc:  # a refusal (strict), an unreachable target, or a bug
            response = self.proxy.error_answer(_target_error(exc), self.scope)
            if self.status:  # the answer had begun: too late for another, the connection just ends
                self.answered_by = "target (cut short)"
            else:
                self.status, self.answered_by = response.status_code, "proxy"
                await response(self.scope, receive, send)
        self._tally()

    async def _forward(self, receive: Receive, send: Send) -> None:
        body, rest = await read_capped(request_chunks(receive), self.proxy.options.max_check_bytes)
        self._check_request(body, complete=rest is None)
        request = self._upstream_request(body, rest, declared=Headers(scope=self.scope).get("content-length"))
        response = await self._send_upstream(request)
        try:
            if is_checked_json(self.endpoint):
                await self._relay_json(request, response, send)
            else:
                await self._relay_stream(request, response, send)
        finally:
            await response.aclose()

    def _check_request(self, body: bytes, *, complete: bool) -> None:
        options = self.proxy.options
        if not complete and self.endpoint not in {OTHER, RESULT_IMAGE}:
            detail = f"the body is over {options.max_check_bytes} bytes (--max-check-bytes): not checked"
            self.violations.append(Violation("request", NOT_CHECKED, "body", detail))
            if options.strict:
                raise PayloadTooLarge(f"bria-mock proxy --strict: {detail}")
        elif complete:
            self.violations += check_request(self.endpoint, body)
        if options.strict and self.violations:
            raise BadRequest(f"bria-mock proxy --strict: the request breaks the contract: {_listed(self.violations)}")

    def _upstream_request(
        self, body: bytes, rest: AsyncIterator[bytes] | None, *, declared: str | None
    ) -> httpx.Request:
        headers = [
            (name, value)
            for name, value in Headers(scope=self.scope).items()
            if name not in _NOT_FORWARDED and self.upstream.caller_headers
        ]
        headers.append(("accept-encoding", "identity"))  # the proxy reads answers to check them: no compression
        if rest is not None and declared is not None:  # streamed on: keep the length rather than go chunked
            headers.append(("content-length", declared))
        content: bytes | AsyncIterator[bytes] = body if rest is None else _chained(body, rest)
        return self.upstream.client.build_request(
            self.scope["method"], self.upstream.url, headers=headers, content=content
        )

    async def _send_upstream(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            return await self.upstream.client.send(request, stream=True)
        finally:
            self.waited += time.perf_counter() - started

    async def _relay_json(self, request: httpx.Request, response: httpx.Response, send: Send) -> None:
        """An API answer: read whole (up to the cap) and checked, its URLs rewritten, then sent on."""
        body, rest = await read_capped(self._timed(response.aiter_bytes()), self.proxy.options.max_check_bytes)
        if rest is None:
            self.violations += check_response(self.endpoint, response.status_code, _content_type(response), body)
        self._refuse_answer_when_strict()
        await self._record(request, response, body if rest is None else b"")
        sent = body if rest is not None else self._rewritten(body)
        await self._send_start(response, send, length=None if rest is not None else len(sent))
        await _send_body(send, sent, rest)

    async def _relay_stream(self, request: httpx.Request, response: httpx.Response, send: Send) -> None:
        """A result image (or anything else): streamed chunk by chunk; an image kept up to the cap, to record it.

        The last chunk is held back until the exchange is recorded: a caller that has the whole
        answer finds it in the recording (as the fake's journal does)."""
        self.violations += check_response(self.endpoint, response.status_code, _content_type(response), b"")
        self._refuse_answer_when_strict()
        await self._send_start(response, send, length=_declared_length(response))
        kept, cap, held = bytearray(), self.proxy.options.max_check_bytes, b""
        async for chunk in self._timed(response.aiter_bytes()):
            if held:
                await send({"type": "http.response.body", "body": held, "more_body": True})
            held = chunk
            if len(kept) <= cap:
                kept += chunk
        if self.endpoint == RESULT_IMAGE:
            await self._record(request, response, bytes(kept) if len(kept) <= cap else b"")
        await send({"type": "http.response.body", "body": held, "more_body": False})

    def _rewritten(self, body: bytes) -> bytes:
        options = self.proxy.options
        base = self._proxy_base()
        images = self.proxy.images.register if options.rewrite_image_urls else None
        return rewrite_urls(body, origin=self.proxy.target.origin, proxy_base=base, foreign_images=images)

    def _refuse_answer_when_strict(self) -> None:
        if self.proxy.options.strict and any(violation.side == "response" for violation in self.violations):
            found = [violation for violation in self.violations if violation.side == "response"]
            raise ServerError(
                f"bria-mock proxy --strict: the target's answer breaks the contract: {_listed(found)}",
                status_code=502,
            )

    async def _send_start(self, response: httpx.Response, send: Send, *, length: int | None) -> None:
        self.status = response.status_code
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.multi_items()
            if name.lower() not in _NOT_FORWARDED
        ]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})

    async def _record(self, request: httpx.Request, response: httpx.Response, content: bytes) -> None:
        recorder = self.proxy.recorder
        if recorder is None or self.endpoint == OTHER:
            return
        if not isinstance(request.stream, httpx.ByteStream):  # a body over the cap: recorded without it
            request = httpx.Request(request.method, request.url, headers=request.headers)
        elapsed = time.perf_counter() - self.started
        try:
            self.recorded_as = await recorder.record(
                operation=self.endpoint,
                request=request,
                status=response.status_code,
                headers=response.headers,
                content=content,
                elapsed_seconds=elapsed,
            )
        except OSError as exc:  # (a full disk): the target has answered; the caller still gets the answer
            logger.error("bria-mock proxy could not record %s %s: %s", request.method, request.url.path, exc)

    async def _timed(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The target's chunks, counting the time spent waiting for them as the target's."""
        iterator = chunks.__aiter__()
        while True:
            started = time.perf_counter()
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            finally:
                self.waited += time.perf_counter() - started
            yield chunk

    def _proxy_base(self) -> str:
        host = Headers(scope=self.scope).get("host") or "{}:{}".format(*(self.scope.get("server") or ("localhost", 80)))
        return f"{self.scope['scheme']}://{host}"

    def _tally(self) -> None:
        elapsed = time.perf_counter() - self.started
        summary = ExchangeSummary(
            index=self.proxy.tally.next_index(),
            method=self.scope["method"],
            path=self.scope["path"],
            endpoint=self.endpoint,
            status=self.status,
            elapsed_ms=round(elapsed * 1000, 3),
            overhead_ms=round(max(elapsed - self.waited, 0.0) * 1000, 3),
            answered_by=self.answered_by,
            recorded_as=self.recorded_as,
        )
        self.proxy.tally.add(summary, self.violations)


async def read_capped(chunks: AsyncIterator[bytes], cap: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The whole body when it is at most ``cap`` bytes (and None); else what was read and the rest, unread."""
    body = bytearray()
    iterator = chunks.__aiter__()
    async for chunk in iterator:
        body += chunk
        if len(body) > cap:
            return bytes(body), iterator
    return bytes(body), None


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _send_body(send: Send, body: bytes, rest: AsyncIterator[bytes] | None) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": rest is not None})
    if rest is None:
        return
    async for chunk in rest:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _content_type(response: httpx.Response) -> str | None:
    found: str | None = response.headers.get("content-type")
    return found


def _declared_length(response: httpx.Response) -> int | None:
    declared = response.headers.get("content-length", "")
    return int(declared) if is_whole_number(declared) and "content-encoding" not in response.headers else None


def _target_error(exc: Exception) -> Exception:
    """A failure to reach or read the target as the error the proxy answers (others as they are)."""
    if isinstance(exc, httpx.TimeoutException):
        return ServerError(
            f"bria-mock proxy: the target did not answer in time ({describe_cause(exc)})", status_code=504
        )
    if isinstance(exc, httpx.TransportError):
        return ServerError(f"bria-mock proxy: the target could not be reached ({describe_cause(exc)})", status_code=502)
    return exc


def _listed(violations: list[Violation]) -> str:
    return "; ".join(violation.describe() for violation in violations)
