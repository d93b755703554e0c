"""The fake's own controls under ``/bria-mock/``: rules, reset, journal, clock, rate limit, state.

Mutations are POST (and DELETE for one rule); replies are JSON. A call that carries an
``api_token`` header acts on that token's namespace only (its rules, jobs, journal entries
and rate-limit buckets), so parallel test workers with their own tokens never collide.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.responses import Response

from mock_server.bodies import check_declared_length, is_whole_number, parse_json, read_limited
from mock_server.errors import BadRequest, Forbidden, ImageNotFound, Unauthorized, UnsupportedMediaType
from mock_server.ratelimit import per_minute
from mock_server.responses import JSONResponse
from mock_server.routing import Route
from mock_server.webhook_signing import ID_HEADER

if TYPE_CHECKING:
    from starlette.requests import Request

    from mock_server.backend import BriaBackend
    from mock_server.ids import NamespaceId
    from mock_server.rules import Rule

PREFIX = "/bria-mock"
ADMIN_TOKEN_HEADER = "x-bria-mock-admin-token"
WEBHOOK_ID_HEADER = ID_HEADER.lower()
JSON_TYPES = frozenset({"application/json"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"})
# Names of this machine the controls answer under without an admin token (besides loopback
# addresses, the configured host and public URL); "testserver" is the in-process clients' host.
_LOCAL_NAMES = frozenset({"localhost", "testserver"})


def _backend(request: Request, *, body_types: frozenset[str] = JSON_TYPES) -> BriaBackend:
    """The backend, once the caller may use the controls.

    With an admin token set, the caller must send it. Without one, only callers on this
    machine (loopback) may, and only under a name of this machine (a web page that rebinds
    its own name to 127.0.0.1 is refused). A write (POST) must carry one of ``body_types`` and
    no foreign ``Origin``: a web page in the user's browser cannot send either without the
    browser asking first, which the fake never allows. The fake's own webhooks (they come from
    loopback, as JSON) are refused: a ``webhook_url`` is no way into the controls.
    """
    backend: BriaBackend = request.app.state.backend
    if WEBHOOK_ID_HEADER in request.headers:  # a webhook_url pointed at the controls must not reset the fake
        raise Forbidden("the controls never take the fake's own webhook deliveries")
    expected = backend.settings.admin_token
    if expected:
        given = request.headers.get(ADMIN_TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(f"{ADMIN_TOKEN_HEADER}: the admin token is missing or wrong")
    elif not _from_loopback(request):
        raise Forbidden("the controls answer only loopback callers unless the fake has an admin token (--admin-token)")
    elif not _local_name(request, backend):
        raise Forbidden(f"Host: the controls answer only under this machine's names, not {request.url.hostname}")
    if request.method == "POST":
        _check_write(request, body_types)
    return backend


def checked_backend(request: Request) -> BriaBackend:
    """The backend once the caller may use the controls: for the control routes of other modules."""
    return _backend(request)


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_name(request: Request, backend: BriaBackend) -> bool:
    host = (request.url.hostname or "").lower()
    if host in _LOCAL_NAMES or host in {backend.settings.host, urlsplit(backend.settings.public_url).hostname}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_write(request: Request, body_types: frozenset[str]) -> None:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise Forbidden(f"Origin: the controls refuse writes from another site ({origin})")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in body_types:
        wanted = " or ".join(sorted(body_types))
        raise UnsupportedMediaType(
            f"Content-Type: the controls take {wanted}, got {content_type or 'nothing'} "
            "(a guard against cross-site requests: add -H 'Content-Type: application/json')"
        )


def _namespace(request: Request) -> str | None:
    return request.headers.get("api_token") or None


async def _body(request: Request) -> bytes:
    """The body, under the same size limit as the API routes."""
    limit = request.app.state.backend.settings.max_body_bytes
    check_declared_length(request.headers, limit)
    return await read_limited(request.stream(), limit)


async def _json_body(request: Request) -> Any:
    return parse_json(await _body(request) or b"null")


async def health(request: Request) -> Response:
    """Readiness, and nothing else: it answers anyone."""
    return JSONResponse({"status": "ok"})


async def reset(request: Request) -> Response:
    _backend(request).reset(_namespace(request))
    return JSONResponse({"reset": True})


async def list_rules(request: Request) -> Response:
    backend = _backend(request)
    rules = backend.rules.list(_namespace(request))
    return JSONResponse({"rules": [rule_view(rule, backend.namespace_id) for rule in rules]})


async def add_rules(request: Request) -> Response:
    backend = _backend(request)
    specs = await _json_body(request)
    namespace = _namespace(request)
    if namespace is not None:  # a namespaced caller's rules match only its own requests
        specs = [{**spec, "token": namespace} if isinstance(spec, dict) else spec for spec in _as_list(specs)]
    added = backend.add_rules(specs)
    return JSONResponse({"rules": [rule_view(rule, backend.namespace_id) for rule in added]}, status_code=201)


async def delete_rule(request: Request) -> Response:
    rule_id = request.path_params["rule_id"]
    if not _backend(request).rules.remove(rule_id, _namespace(request)):
        raise ImageNotFound(f"no rule {rule_id}")
    return JSONResponse({"deleted": rule_id})


async def journal(request: Request) -> Response:
    backend = _backend(request)
    query = request.query_params
    criteria = {key: query.get(key) for key in ("endpoint", "method", "status", "path")}
    for key in ("status", "limit"):
        if not is_whole_number(query.get(key, "0")):
            raise BadRequest(f"{key}: expected a whole number, got {query.get(key)!r}")
    entries = backend.journal.entries(token=_namespace(request), **criteria)
    limit = int(query.get("limit", "0") or 0)
    shown = entries[-limit:] if limit > 0 else entries
    return JSONResponse({"count": len(entries), "entries": [entry.to_json() for entry in shown]})


async def clear_journal(request: Request) -> Response:
    _backend(request).journal.clear(_namespace(request))
    return JSONResponse({"cleared": True})


async def advance_clock(request: Request) -> Response:
    body = await _json_body(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise BadRequest("seconds: expected a number of seconds")
    try:
        _backend(request).clock.advance(float(seconds))
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"seconds: {exc}") from None
    return JSONResponse({"advanced": seconds})


async def webhooks(request: Request) -> Response:
    """Webhook attempts, oldest first; filters: request_id, status, delivered (true/false), url, limit."""
    backend = _backend(request)
    query = request.query_params
    for key in ("status", "limit"):
        if not is_whole_number(query.get(key, "0")):
            raise BadRequest(f"{key}: expected a whole number, got {query.get(key)!r}")
    delivered = query.get("delivered")
    if delivered not in (None, "true", "false"):
        raise BadRequest(f"delivered: expected true or false, got {delivered!r}")
    namespace = _namespace(request)
    attempts = backend.webhooks.log.attempts(
        namespace=backend.namespace_id(namespace) if namespace else None,
        request_id=query.get("request_id"),
        status=int(query["status"]) if "status" in query else None,
        delivered=None if delivered is None else delivered == "true",
        url=query.get("url"),
    )
    limit = int(query.get("limit", "0") or 0)
    shown = attempts[-limit:] if limit > 0 else attempts
    return JSONResponse({"count": len(attempts), "attempts": [attempt.to_json() for attempt in shown]})


async def rate_limit(request: Request) -> Response:
    body = await _json_body(request)
    value = body.get("per_minute", body.get("plan")) if isinstance(body, dict) else None
    try:
        limit = per_minute(value)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest("per_minute: expected a number, or plan: free, payg, enterprise or off") from None
    _backend(request).limiter.configure(limit)
    return JSONResponse({"per_minute": limit})


async def state(request: Request) -> Response:
    backend = _backend(request)
    namespace = _namespace(request)
    return JSONResponse(
        {
            "jobs": backend.jobs.count(backend.namespace_id(namespace) if namespace else None),
            "rules": [rule_view(rule, backend.namespace_id) for rule in backend.rules.list(namespace)],
            "journal": len(backend.journal.entries(token=namespace)) if namespace else len(backend.journal),
            "rate_limit": {"per_minute": backend.limiter.limit, "buckets": backend.limiter.state(namespace)},
            "clock": backend.clock.now(),
            # Seconds the clock has been moved forward (POST /bria-mock/clock/advance), for the inspector.
            "clock_advanced": round(backend.clock.offset, 3),
            "namespace": backend.namespace_id(namespace),
        }
    )


async def upload(request: Request) -> Response:
    """Keep the raw body as an input image; answers its URL on the fake."""
    backend = _backend(request, body_types=IMAGE_TYPES)
    data = await _body(request)
    if not data:
        raise BadRequest("body: the image bytes are missing")
    path = backend.upload(data, request.headers["content-type"].split(";")[0].strip().lower())
    return JSONResponse({"url": f"{str(request.base_url).rstrip('/')}{path}"}, status_code=201)


def rule_view(rule: Rule, namespace_id: NamespaceId) -> dict[str, Any]:
    """A rule as the controls show it: a rule bound to a token shows that token's namespace id, never the token."""
    view = rule.to_json()
    token = view.pop("token", None)
    if token is not None:
        view["namespace"] = namespace_id(token)
    return view


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


ROUTES = [
    Route("GET", f"{PREFIX}/health", health),
    Route("POST", f"{PREFIX}/reset", reset),
    Route("GET", f"{PREFIX}/rules", list_rules),
    Route("POST", f"{PREFIX}/rules", add_rules),
    Route("DELETE", f"{PREFIX}/rules/{{rule_id}}", delete_rule),
    Route("GET", f"{PREFIX}/journal", journal),
    Route("POST", f"{PREFIX}/journal/clear", clear_journal),
    Route("POST", f"{PREFIX}/clock/advance", advance_clock),
    Route("GET", f"{PREFIX}/webhooks", webhooks),
    Route("POST", f"{PREFIX}/rate-limit", rate_limit),
    Route("GET", f"{PREFIX}/state", state),
    Route("POST", f"{PREFIX}/uploads", upload),
]
