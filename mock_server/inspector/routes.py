"""The inspector's routes: the page and its files, and the read-only data it shows.

Every data route goes through the admin API's protection (loopback, or the admin token). The page
itself holds no data: with an admin token set it is served to anyone, so that it can ask for the
token; without one it answers loopback callers only, like the other controls.
"""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mock_server.admin import PREFIX, checked_backend
from mock_server.bodies import is_whole_number
from mock_server.errors import BadRequest, ImageNotFound
from mock_server.inspector import exchanges, images, jobs
from mock_server.operations import STATUS_PATH
from mock_server.resolver import RESULTS_PATH
from mock_server.responses import JSONResponse
from mock_server.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

    from mock_server.backend import BriaBackend
    from mock_server.jobs import Job
    from mock_server.journal import Entry

STATIC = importlib.resources.files("mock_server.inspector") / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript"}
# The page loads nothing from elsewhere, runs only its own scripts and never is framed by another site.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def page(request: Request) -> Response:
    """``/bria-mock/ui``: the inspector's page."""
    return _static(request, "index.html")


async def asset(request: Request) -> Response:
    """``/bria-mock/ui/<file>``: the page's stylesheet and scripts."""
    return _static(request, request.path_params["name"])


def _static(request: Request, name: str) -> Response:
    backend = request.app.state.backend
    if not backend.settings.admin_token:
        checked_backend(request)  # loopback only, as the controls are
    suffix = name[name.rfind(".") :] if "." in name else ""
    resource = STATIC / name
    if "/" in name or suffix not in MEDIA_TYPES or not resource.is_file():
        raise ImageNotFound(f"no inspector file {name}")
    return Response(resource.read_bytes(), media_type=MEDIA_TYPES[suffix], headers=SECURITY_HEADERS)


async def list_exchanges(request: Request) -> Response:
    """A page of exchanges, newest first: ``limit``, ``before`` (an id), ``endpoint``, ``status_class``,
    ``namespace`` (a namespace id) and ``q`` (text in the method, path, operation, status or rules)."""
    backend = checked_backend(request)
    wanted = exchanges.ExchangeFilter.from_query(request.query_params)
    limit, before = exchanges.page_bounds(request.query_params)
    now = backend.clock.now()

    def page_of_rows() -> dict[str, object]:
        return exchanges.listing(backend.journal.entries(), wanted, limit, before, now)

    # Off the event loop: copying and filtering thousands of entries must not hold up the API's requests.
    return JSONResponse(await run_in_threadpool(page_of_rows))


async def show_exchange(request: Request) -> Response:
    """One exchange whole (as ``GET /bria-mock/journal`` shows it), its input images and its job."""
    backend = checked_backend(request)
    entry = _entry(request, backend)
    job = _job_of(entry, backend)
    detail = {
        **entry.to_json(),
        "age": round(backend.clock.now() - entry.at, 3),
        "inputs": images.describe(entry, backend),
        "job": jobs.job_view(job, backend) if job is not None else None,
    }
    return JSONResponse(detail)


async def exchange_input(request: Request) -> Response:
    """The bytes of one input image of an exchange, when they are still kept (see ``images``)."""
    backend = checked_backend(request)
    entry = _entry(request, backend)
    number = _whole_number(request.path_params["number"], "number")
    data = images.input_bytes(entry, number, backend)
    if data is None:
        raise ImageNotFound(f"input {number} of exchange {entry.id} is not kept")
    return Response(data, media_type=images.media_type(data), headers={"X-Content-Type-Options": "nosniff"})


async def list_jobs(request: Request) -> Response:
    """Every kept job, newest first; looking is never a status poll."""
    backend = checked_backend(request)
    kept = backend.jobs.snapshot()
    return JSONResponse({"jobs": [jobs.job_view(job, backend) for job in reversed(kept)]})


async def show_job(request: Request) -> Response:
    """One job and the status body a poll would now see (without counting as one)."""
    backend = checked_backend(request)
    job = _job(request, backend)
    return JSONResponse({**jobs.job_view(job, backend), "status_body": jobs.status_body(job, backend)})


async def job_result(request: Request) -> Response:
    """A job's result image, read without going through the API (no journal entry, no rule)."""
    backend = checked_backend(request)
    job = _job(request, backend)
    image = backend.jobs.result_image(job.request_id)  # (from the store, wherever the job was processed)
    if image is None:
        raise ImageNotFound(f"job {job.request_id} has no result image")
    return Response(image, media_type="image/png", headers={"X-Content-Type-Options": "nosniff"})


def _entry(request: Request, backend: BriaBackend) -> Entry:
    entry_id = _whole_number(request.path_params["entry_id"], "entry_id")
    entry = exchanges.find(backend.journal.entries(), entry_id)
    if entry is None:
        raise ImageNotFound(f"no exchange {entry_id} in the journal")
    return entry


def _job(request: Request, backend: BriaBackend) -> Job:
    job = backend.jobs.get(request.path_params["request_id"])
    if job is None:
        raise ImageNotFound(f"no job {request.path_params['request_id']}")
    return job


def _job_of(entry: Entry, backend: BriaBackend) -> Job | None:
    """The job an exchange is about: a status poll's or result's by its path; a submission's by
    namespace, operation and time (the journal keeps no response body, and the job is created
    during the exchange, within its duration)."""
    named = _request_id_in(entry.path)
    if named is not None:
        return backend.jobs.get(named)
    if entry.status not in (200, 202):
        return None
    earliest = entry.at - entry.duration_ms / 1000 - 0.001
    candidates = [
        job
        for job in backend.jobs.snapshot()
        if job.owner == entry.token_id and job.endpoint == entry.endpoint and earliest <= job.created_at <= entry.at
    ]
    return candidates[-1] if candidates else None


def _request_id_in(path: str) -> str | None:
    for prefix in (STATUS_PATH, RESULTS_PATH):
        if path.startswith(prefix):
            return path.removeprefix(prefix).removesuffix(".png") or None
    return None


def _whole_number(value: str, name: str) -> int:
    if not is_whole_number(value):
        raise BadRequest(f"{name}: expected a whole number, got {value!r}")
    return int(value)


ROUTES = [
    Route("GET", f"{PREFIX}/ui", page),
    Route("GET", f"{PREFIX}/ui/{{name}}", asset),
    Route("GET", f"{PREFIX}/exchanges", list_exchanges),
    Route("GET", f"{PREFIX}/exchanges/{{entry_id}}", show_exchange),
    Route("GET", f"{PREFIX}/exchanges/{{entry_id}}/inputs/{{number}}", exchange_input),
    Route("GET", f"{PREFIX}/jobs", list_jobs),
    Route("GET", f"{PREFIX}/jobs/{{request_id}}", show_job),
    Route("GET", f"{PREFIX}/jobs/{{request_id}}/result.png", job_result),
]
