"""HTTP endpoints: parse the request, call the backend, wrap its answer. No rules live here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from mock_server import openapi, samples
from mock_server.backend import BriaBackend, Call
from mock_server.bodies import parse_json
from mock_server.contract import validate_request
from mock_server.errors import BadRequest, ImageNotFound
from mock_server.ids import new_request_id
from mock_server.jobs import JobTimeline
from mock_server.operations import (
    REMOVE_BACKGROUND,
    REPLACE_BACKGROUND,
    plan_remove_background,
    plan_replace_background,
)
from mock_server.responses import JSONResponse
from mock_server.traffic import BODY_KEY, JOB_KEY, JSON_KEY

if TYPE_CHECKING:
    from starlette.requests import Request

_PLANNERS = {REMOVE_BACKGROUND: plan_remove_background, REPLACE_BACKGROUND: plan_replace_background}
_JSON_TYPES = ("application/json", "text/json")
REQUEST_ID_KEY = "bria_mock.request_id"


def backend_of(request: Request) -> BriaBackend:
    backend: BriaBackend = request.app.state.backend
    return backend


def request_id_of(request: Request) -> str:
    """The id of this request: the job's id, and the ``request_id`` of any error it gets."""
    state = request.scope.setdefault("state", {})  # the dict behind request.state, read directly: cheaper
    if REQUEST_ID_KEY not in state:
        state[REQUEST_ID_KEY] = new_request_id()
    rid: str = state[REQUEST_ID_KEY]
    return rid


def public_base(request: Request) -> str:
    """The fake's address as the client should use it: the configured public URL or the Host seen."""
    configured: str = backend_of(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host") or "{}:{}".format(*(request.scope.get("server") or ("localhost", 80)))
    return f"{request.scope['scheme']}://{host}{request.scope.get('root_path', '')}".rstrip("/")


async def remove_background(request: Request) -> Response:
    return await _submit(request, REMOVE_BACKGROUND)


async def replace_background(request: Request) -> Response:
    return await _submit(request, REPLACE_BACKGROUND)


async def _submit(request: Request, endpoint: str) -> Response:
    backend = backend_of(request)
    token = backend.authenticate(request.headers.get("api_token"))
    body = await read_json(request)
    validate_request(f"{endpoint}.request", body)
    call = Call(request_id=request_id_of(request), token=token, base_url=public_base(request))
    planner = _PLANNERS[endpoint]
    job_rule = request.scope.get("state", {}).get(JOB_KEY)
    timeline = JobTimeline.from_action(job_rule) if job_rule else None
    status_code, payload = await backend.submit(
        call, endpoint, bool(body.get("sync")), lambda load: planner(body, load, backend.settings), timeline
    )
    return JSONResponse(payload, status_code=status_code)


async def status(request: Request) -> Response:
    backend = backend_of(request)
    token = backend.authenticate(request.headers.get("api_token"))
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
    return Response(upload[0], media_type=upload[1])


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document())


async def read_json(request: Request) -> Any:
    """The request's JSON body, as the traffic layer read (and size-checked) it; 400 when not JSON."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise BadRequest(f"Content-Type: expected application/json, got {content_type or 'nothing'}")
    state = request.scope.get("state", {})
    if JSON_KEY in state:
        return state[JSON_KEY]
    raw = state[BODY_KEY] if BODY_KEY in state else await request.body()
    return parse_json(raw)
