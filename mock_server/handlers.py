"""HTTP endpoints: read the request, call the backend, wrap its answer. No rules live here.

An operation's request goes: authenticate → (with ``--playback``: the recorded answer, when the
recording holds this request; see ``mock_server.playback``) → validate against its schema → the operation's own
check → resolve its images → moderate them → count the pixels they decode to (413 over
``max_request_pixels``; a sync call reserves them in the process's budget, 503 when there is no
room in time) → the backend accepts a job → 200 (sync) or 202.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from mock_server import openapi, operations, samples
from mock_server.context import context_of
from mock_server.contract import validate_request, with_defaults
from mock_server.errors import BadRequest, ImageNotFound, ModerationFailed
from mock_server.jobs import JobTimeline
from mock_server.pixel_budget import check_request_pixels
from mock_server.responses import JSONResponse
from mock_server.triggers import UNSAFE_INPUT_MARKER
from mock_server.webhook_targets import check_webhook_url
from mock_server.webhooks import WebhookTarget

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.requests import Request

    from mock_server.backend import BriaBackend
    from mock_server.inputs import InputImage
    from mock_server.operations import Operation
    from mock_server.routing import Endpoint

_JSON_TYPES = ("application/json", "text/json")


def header(request: Request, name: bytes) -> str | None:
    """A request header's first value (``name`` in lower case), as Starlette's ``request.headers.get``
    reads it, without building its ``Headers`` object on the hot routes."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def backend_of(request: Request) -> BriaBackend:
    backend: BriaBackend = request.app.state.backend
    return backend


def public_base(request: Request) -> str:
    """The fake's address as the client should use it: the configured public URL or the Host seen."""
    configured: str = backend_of(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    host = header(request, b"host") or "{}:{}".format(*(request.scope.get("server") or ("localhost", 80)))
    return f"{request.scope['scheme']}://{host}{request.scope.get('root_path', '')}".rstrip("/")


def submit_endpoint(operation: Operation) -> Endpoint:
    """The endpoint that serves one operation."""

    async def submit(request: Request) -> Response:
        return await _submit(request, operation)

    submit.__name__ = operation.name
    return submit


async def _submit(request: Request, operation: Operation) -> Response:
    backend = backend_of(request)
    token = backend.authenticate(header(request, b"api_token"))
    playback = backend.playback
    if playback is not None:  # a recording answers what it holds first (serve --playback)
        replayed = playback.answer(operation, context_of(request), token, backend, public_base(request))
        if replayed is not None:
            return replayed
    body = _json_body(request)
    validate_request(operation.request_schema, body)
    options = with_defaults(operation.request_schema, body)
    operation.check(options, backend.settings)
    webhook_url = check_webhook_url(options.get("webhook_url"))
    base_url = public_base(request)
    resolver = backend.resolver(base_url)
    settings = backend.settings
    inputs = await resolver.resolve(operation.images_in(options), operation.formats(settings))
    _moderate_inputs(options, inputs)
    pixels = operation.decoded_pixels(options, inputs)
    check_request_pixels(pixels, settings.max_request_pixels, len(inputs))
    context = context_of(request)
    timeline = JobTimeline.from_action(context.job_rule) if context.job_rule else None
    sync = operation.sync_allowed and bool(options.get("sync"))  # (enhance is async only: sync is ignored)
    webhook = WebhookTarget(webhook_url, token, context.webhook_rules) if webhook_url else None
    accept = functools.partial(backend.accept, context.request_id, token, operation, options, inputs, base_url)
    if sync:  # its pixels reserved before the job exists: a 503 leaves nothing behind
        async with backend.pixel_budget.reserved(pixels, wait=settings.decode_wait_seconds):
            job = accept(sync=True, timeline=timeline, webhook=webhook)
            return JSONResponse(await backend.answer_sync(job))
    job = accept(sync=False, timeline=timeline, webhook=webhook)
    return JSONResponse(
        {"request_id": job.request_id, "status_url": operations.status_url(base_url, job.request_id)}, status_code=202
    )


def _json_body(request: Request) -> Any:
    """The request's JSON body, as the traffic layer read (and size-checked) it; 400 when not JSON."""
    declared = header(request, b"content-type")
    content_type = ("application/json" if declared is None else declared).split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise BadRequest(f"Content-Type: expected application/json, got {content_type or 'nothing'}")
    return context_of(request).json()


def _moderate_inputs(options: Mapping[str, Any], inputs: Mapping[str, InputImage]) -> None:
    if not options.get("visual_input_content_moderation"):
        return
    for field, image in inputs.items():
        if UNSAFE_INPUT_MARKER in image.markers:
            raise ModerationFailed(
                f"{field}: the input image failed content moderation (visual_input_content_moderation)"
            )


async def status(request: Request) -> Response:
    backend = backend_of(request)
    token = backend.authenticate(header(request, b"api_token"))
    return JSONResponse(await backend.status(request.path_params["request_id"], token))


async def result_image(request: Request) -> Response:
    """A result image. Like Bria's CDN links, it needs no api_token."""
    name = request.path_params["name"]
    data = backend_of(request).result_image(name)
    if data is None:
        raise ImageNotFound(f"no result image {name} (unknown or expired)")
    return Response(data, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})


async def sample_image(request: Request) -> Response:
    name = request.path_params["name"]
    data = samples.sample(name)
    if data is None:
        raise ImageNotFound(f"no sample image {name}; samples: {', '.join(samples.sample_names())}")
    return Response(data, media_type=samples.content_type(name))


async def uploaded_image(request: Request) -> Response:
    """An input image a test put on the fake (``BriaBackend.upload`` or ``POST /bria-mock/uploads``)."""
    upload = backend_of(request).uploaded(request.path_params["name"])
    if upload is None:
        raise ImageNotFound(f"no upload {request.path_params['name']}")
    # nosniff: a browser shows the bytes as the (image) type they were uploaded with, never as a page.
    return Response(upload[0], media_type=upload[1], headers={"X-Content-Type-Options": "nosniff"})


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document())
