"""The fake's state and rules: one ``BriaBackend`` per app, on ``app.state.backend``.

Handlers parse HTTP and call these methods; everything that decides an answer lives here
or in the modules it calls, and every failure is raised as a ``BriaError``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from mock_server import samples
from mock_server.config import Settings
from mock_server.errors import (
    BadRequest,
    DownloadFailed,
    ImageNotFound,
    JobNotFound,
    Unauthorized,
    error_for_code,
    error_object,
)
from mock_server.ids import namespace_id
from mock_server.inputs import InputImage, TooLargeToDecodeHere, check_image, decode_base64, url_scheme
from mock_server.jobs import Clock, Job, JobState, JobStore, JobTimeline, Outcome, Progression
from mock_server.journal import Journal
from mock_server.operations import REMOVE_BACKGROUND, ImageLoader, Plan
from mock_server.ratelimit import RateLimiter, per_minute
from mock_server.rules import Rule, RuleBook, load_rules_file, parse_rule
from mock_server.triggers import JOB_FAILURE_TOKENS, NOT_FOUND_HOST, is_trigger_token, token_error

logger = logging.getLogger("mock_server")

RESULTS_PATH = "/results/"
SAMPLES_PATH = "/samples/"
UPLOADS_PATH = "/uploads/"
MAX_UPLOADS = 1000
MAX_CRASHES = 100  # kept for the pytest plugin; each holds its traceback
# How long a due status poll waits for processing still under way before answering IN_PROGRESS.
PROCESSING_TIMEOUT_SECONDS = 60.0
# Inputs checked on the event loop, where a thread hop would cost more than the work: base64
# values up to this many characters, decoding at most this many pixels. Larger inputs, and URLs,
# are read in the thread pool, so that they never hold up other requests.
INLINE_MAX_CHARS = 128 * 1024
INLINE_MAX_PIXELS = 256 * 256
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
_FORMATS_BUT_WEBP = _FORMATS - {"WEBP"}


@dataclasses.dataclass(frozen=True)
class Call:
    """What the backend needs to know about the HTTP request it serves."""

    request_id: str
    token: str
    base_url: str  # where the fake is reached: the base of every URL it hands out


class BriaBackend:
    """Jobs, result images, auth and input resolution for one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.progression = Progression(polls=settings.progress_polls, seconds=settings.progress_seconds)
        self.jobs = JobStore(
            self.clock,
            ttl=settings.job_ttl_seconds,
            max_jobs=settings.max_jobs,
            max_result_bytes=settings.max_result_bytes,
        )
        self.rules = RuleBook()
        self.journal = Journal(max_entries=settings.journal_max_entries, max_bytes=settings.journal_max_bytes)
        self.limiter = RateLimiter(self.clock.now, per_minute(settings.rate_limit))
        self._tasks: set[asyncio.Task[None]] = set()
        # Unexpected exceptions while serving (bugs in the fake), oldest first: the pytest
        # plugin re-raises them in the test that caused them instead of leaving a bare 500.
        self.crashes: collections.deque[BaseException] = collections.deque(maxlen=MAX_CRASHES)
        self.uploads: dict[str, tuple[bytes, str]] = {}
        self._initial_rules = load_rules_file(settings.rules_file, self.clock.now()) if settings.rules_file else []
        self.rules.add(self._initial_rules)

    def reset(self, token: str | None = None) -> None:
        """Back to new: jobs, rules, journal and rate-limit buckets; or only one token's namespace.

        A full reset keeps the rules of the rules file (they are part of the configuration).
        """
        self.jobs.clear(namespace_id(token) if token is not None else None)
        self.rules.clear(token)
        self.journal.clear(token)
        self.limiter.clear(token)
        if token is None:
            self.crashes.clear()
            self.uploads.clear()
            for task in self._tasks:
                task.cancel()
            self._tasks.clear()
            self.clock.reset()
            self.rules.add(parse_rule(rule.spec, self.clock.now()) for rule in self._initial_rules)

    def add_rules(self, specs: Any) -> list[Rule]:
        """Add rules from their JSON form (one rule or a list); 400 naming the problem."""
        specs = specs if isinstance(specs, list) else [specs]
        return self.rules.add([parse_rule(spec, self.clock.now(), self.rules.next_id()) for spec in specs])

    async def aclose(self) -> None:
        """Cancel background processing at shutdown."""
        tasks = list(self._tasks)
        self.reset()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- auth -------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> str:
        """The caller's token, or 401; a trigger token raises its error here."""
        if not token:
            raise Unauthorized("api_token: the header is missing or empty")
        if self.settings.tokens and not is_trigger_token(token) and not self._accepted(token):
            raise Unauthorized("api_token: this token is not accepted")
        forced = token_error(token)
        if forced is not None:
            raise forced
        return token

    def _accepted(self, token: str) -> bool:
        # Constant-time comparison: how fast a wrong token fails must not tell what is right.
        return any(hmac.compare_digest(token.encode(), known.encode()) for known in self.settings.tokens)

    # --- submitting -------------------------------------------------------------------

    def loader(self, call: Call, *, inline: bool = False) -> ImageLoader:
        """The image loader for one request: its own URLs (by its Host) resolve locally.

        An ``inline`` loader (for the event loop) raises :class:`TooLargeToDecodeHere` instead
        of fetching a URL or decoding a large image.
        """
        local_hosts = _local_hosts(call.base_url, self.settings.public_url)
        return partial(self._load_image, local_hosts=local_hosts, inline=inline)

    def _load_image(
        self, value: str, field: str, *, endpoint: str, local_hosts: frozenset[str], inline: bool
    ) -> InputImage:
        if inline and (len(value) > INLINE_MAX_CHARS or url_scheme(value) is not None):
            raise TooLargeToDecodeHere(field)
        data = self._image_bytes(value, field, local_hosts)
        refuse_webp = endpoint == REMOVE_BACKGROUND and not self.settings.rmbg_accept_webp
        return check_image(
            data,
            field,
            formats=_FORMATS_BUT_WEBP if refuse_webp else _FORMATS,
            max_pixels=self.settings.max_image_pixels,
            decode_limit=INLINE_MAX_PIXELS if inline else None,
        )

    async def submit(
        self,
        call: Call,
        endpoint: str,
        sync: bool,
        prepare: Callable[[ImageLoader], Plan],
        timeline: JobTimeline | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Accept a request: 200 with the result when ``sync``, else 202.

        ``prepare`` checks the request and reads its images with the loader it is given. An
        async job is processed on its first due status poll (see ``status``). ``timeline``
        (from a ``job`` rule) holds the job IN_PROGRESS longer or ends it another way.
        """
        plan = await self._prepare(call, prepare)
        job = self.jobs.create(
            call.request_id,
            endpoint,
            owner=namespace_id(call.token),
            timeline=timeline,
            sync=sync,
            work=partial(self._finish, call, plan),
            pending_bytes=plan.input_bytes,
        )
        if sync:  # the answer is the outcome: the status service reports it at once, holds ignored
            await self._run(job)  # in the request itself: a reset cannot cancel a call in flight
            return 200, self._sync_body(job)
        return 202, {"request_id": job.request_id, "status_url": f"{call.base_url}/v2/status/{job.request_id}"}

    async def _prepare(self, call: Call, prepare: Callable[[ImageLoader], Plan]) -> Plan:
        """Check a request: on the event loop when its images are small, else in the thread pool."""
        try:
            return prepare(self.loader(call, inline=True))
        except TooLargeToDecodeHere:
            return await run_in_threadpool(prepare, self.loader(call))

    async def _process(self, job: Job) -> None:
        """Process an async job unless it is done, and wait for it (every caller waits for the same run).

        A sync job is processed by its own request: a poll while it runs answers IN_PROGRESS.
        """
        if job.outcome is not None or job.sync:
            return
        if job.task is None:
            job.task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(job.task)
            job.task.add_done_callback(self._tasks.discard)
        await asyncio.wait({job.task}, timeout=PROCESSING_TIMEOUT_SECONDS)

    async def _run(self, job: Job) -> None:
        """Process a job to its outcome, in the thread pool; a bug ends it UNKNOWN, never lost."""
        work = job.work
        try:
            assert work is not None, "a job without an outcome has its work"
            outcome = await run_in_threadpool(work, job)
        except Exception as exc:  # as a real 500 would
            logger.exception("bria-mock failed while processing job %s", job.request_id)
            self.crashes.append(exc)
            outcome = Outcome(JobState.UNKNOWN, error=error_object(500, "processing failed"))
        finally:
            job.task = None
        self.jobs.settle(job, outcome)

    def _finish(self, call: Call, plan: Plan, job: Job) -> Outcome:
        forced = JOB_FAILURE_TOKENS.get(call.token)
        if forced is not None:
            return Outcome(forced, error=error_object(500, f"job failure forced by trigger token {call.token}"))
        if job.timeline is not None and job.timeline.ending is not None:
            return job.timeline.ending
        image = plan.render()
        if plan.output_unsafe:
            details = "visual_output_content_moderation: the result failed content moderation"
            return Outcome(JobState.ERROR, error=error_object(422, details))
        result = {"image_url": f"{call.base_url}{RESULTS_PATH}{call.request_id}.png", **plan.result_fields}
        return Outcome(JobState.COMPLETED, result=result, image=image)

    def _sync_body(self, job: Job) -> dict[str, Any]:
        outcome = job.outcome
        assert outcome is not None
        if outcome.state is JobState.COMPLETED:
            return {"result": outcome.result, "request_id": job.request_id}
        error = outcome.error or {}
        raise error_for_code(int(error.get("code", 500)), str(error.get("details", "")))

    # --- status and results -----------------------------------------------------------

    async def status(self, request_id: str, token: str) -> dict[str, Any]:
        """The status service's body for one poll (which counts toward the job's progression).

        The first poll that the progression says is due processes the job and waits for it;
        later polls while it runs wait too: how many polls a job takes never depends on the
        machine's speed.
        """
        job = self.jobs.get(request_id)
        if job is None or job.owner != namespace_id(token):  # another token's job is not there for you
            raise JobNotFound(f"no job {request_id}")
        due = self.progression.due(job, self.clock.now())
        if due:
            await self._process(job)
        if not due or job.outcome is None:
            return {"request_id": request_id, "status": JobState.IN_PROGRESS.value}
        body: dict[str, Any] = {"request_id": request_id, "status": job.outcome.state.value}
        if job.outcome.result is not None:
            body["result"] = job.outcome.result
        if job.outcome.error is not None:
            body["error"] = job.outcome.error
        return body

    def upload(self, data: bytes, content_type: str) -> str:
        """Keep an input image on the fake (until reset) and return its path, ``/uploads/<digest>``."""
        name = hashlib.sha256(data).hexdigest()[:32]
        self.uploads[name] = (data, content_type)
        while len(self.uploads) > MAX_UPLOADS:  # the oldest go first
            del self.uploads[next(iter(self.uploads))]
        return f"{UPLOADS_PATH}{name}"

    def uploaded(self, name: str) -> tuple[bytes, str] | None:
        return self.uploads.get(name)

    def result_image(self, name: str) -> bytes | None:
        """The bytes behind ``/results/<request_id>.png``; None once the job is gone."""
        job = self.jobs.get(name.removesuffix(".png")) if name.endswith(".png") else None
        return job.outcome.image if job and job.outcome else None

    # --- reading image URLs -------------------------------------------------------------

    def _image_bytes(self, value: str, field: str, local_hosts: frozenset[str]) -> bytes:
        scheme = url_scheme(value)
        if scheme is None:
            return decode_base64(value, field)
        if scheme not in {"http", "https"}:
            raise BadRequest(f"{field}: only http and https URLs are supported, not {scheme}")
        return self._fetch(value, field, local_hosts)

    def _fetch(self, url: str, field: str, local_hosts: frozenset[str]) -> bytes:
        """Resolve a URL: the fake's own results, samples and uploads locally; the reserved
        not-found host as 404; anything else 460, or fetched when remote fetching is on."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:  # e.g. "http://[::1/x": an unbalanced or invalid IPv6 literal
            raise BadRequest(f"{field}: not a valid URL") from None
        if not host:
            raise BadRequest(f"{field}: the URL has no host")
        if host == NOT_FOUND_HOST:
            raise ImageNotFound(f"{field}: no image at {url}")
        if host in local_hosts:
            data = self._local_resource(parts.path)
            if data is None:
                raise ImageNotFound(f"{field}: no image at {url}")
            return data
        if not self.settings.allow_remote_fetch:
            raise DownloadFailed(f"{field}: could not download {url} (remote fetching is off: allow_remote_fetch)")
        from mock_server.fetch import fetch_image  # (httpcore and ssl: imported only when fetching is on)

        return fetch_image(
            url, field, max_bytes=self.settings.fetch_max_bytes, timeout=self.settings.fetch_timeout_seconds
        )

    def _local_resource(self, path: str) -> bytes | None:
        if path.startswith(RESULTS_PATH):
            return self.result_image(path.removeprefix(RESULTS_PATH))
        if path.startswith(SAMPLES_PATH):
            return samples.sample(path.removeprefix(SAMPLES_PATH))
        if path.startswith(UPLOADS_PATH):
            upload = self.uploaded(path.removeprefix(UPLOADS_PATH))
            return upload[0] if upload else None
        return None


@functools.lru_cache(maxsize=64)  # a fake is reached by a few names: parse them once
def _local_hosts(base_url: str, public_url: str) -> frozenset[str]:
    """The hosts whose URLs the fake resolves itself: loopback, and the names it is reached by."""
    return _LOOPBACK_HOSTS | ({_host(base_url), _host(public_url)} - {""})


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
