"""The fake's state and the rules that decide answers: one ``BriaBackend`` per app, on ``app.state.backend``.

Handlers read HTTP and call these methods; every failure is raised as a ``BriaError``.
State is reached from here: jobs and their result images, rules, the journal, rate-limit buckets,
the clock, uploads and the webhook log through ``self.state`` (in memory, or on a shared store:
see ``mock_server.state``); the scheduler, webhook deliveries and the crash log are this process's.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Coroutine, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from mock_server.config import Settings
from mock_server.errors import CrashLog, JobNotFound, ModerationFailed, ServerError, Unauthorized
from mock_server.jobs import Job, JobState, JobTimeline, Outcome, Progression, WorkOrder
from mock_server.pixel_budget import process_budget
from mock_server.recent_inputs import RecentInputs
from mock_server.resolver import RESULTS_PATH, UPLOADS_PATH, InputResolver, sample_file
from mock_server.responses import JSONResponse
from mock_server.rules import Rule, load_rules_file, parse_rule
from mock_server.scheduler import Scheduler, cancel_from_any_thread
from mock_server.state import open_state
from mock_server.triggers import JOB_FAILURE_TOKENS, UNSAFE_OUTPUT_MARKER, is_trigger_token, token_error
from mock_server.webhooks import Webhooks

if TYPE_CHECKING:
    from mock_server.operations import Inputs, Operation
    from mock_server.playback import Playback
    from mock_server.webhooks import WebhookTarget

# How long a due status poll waits for processing still under way before answering IN_PROGRESS.
PROCESSING_TIMEOUT_SECONDS = 60.0
# With a shared store, how often a process processing a job renews its claim (which lapses after
# redis_jobs.CLAIM_SECONDS: then another process takes the job over).
CLAIM_RENEW_SECONDS = 3.0
# With a shared store, how often the scheduler looks whether another process advanced the clock.
SHARED_CLOCK_LOOK_SECONDS = 0.1


class BriaBackend:
    """Jobs, result images, rules, journal, rate limits, clock, uploads and auth for one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.progression = Progression(polls=settings.progress_polls, seconds=settings.progress_seconds)
        self.state = open_state(settings)  # in this process's memory, or on a shared store
        self.namespace_id = self.state.namespace_id
        self.clock = self.state.clock
        self.jobs = self.state.jobs
        self.rules = self.state.rules
        self.journal = self.state.journal
        self.limiter = self.state.limiter
        self.uploads = self.state.uploads
        self._tasks: set[asyncio.Task[None]] = set()
        self.crashes = CrashLog()
        self.playback: Playback | None = None  # a recording that answers first (serve --playback)
        look_every = SHARED_CLOCK_LOOK_SECONDS if self.state.shared else None
        self.scheduler = Scheduler(
            self.clock, self.crashes.record, self.state.resets, refresh=self.state.refresh, look_every=look_every
        )
        self.clock.on_advance(self.scheduler.wake)  # advancing the clock runs what falls due
        self.webhooks = Webhooks(
            settings, self.clock, self.scheduler, self.rules, self.state.webhook_log, self.namespace_id
        )
        self.pixel_budget = process_budget(settings.max_decoding_pixels)  # the process's, shared by its apps
        self.recent_inputs = RecentInputs()  # base64 inputs the journal keeps as digests, for the inspector
        self._initial_rules = load_rules_file(settings.rules_file, self.clock.now()) if settings.rules_file else []
        self.rules.add_missing(self._initial_rules)  # (a shared store may have them from another process)

    def reset(self, token: str | None = None) -> None:
        """Back to new: jobs, rules, journal and rate-limit buckets; or only one token's namespace.

        A full reset keeps the rules of the rules file (they are part of the configuration).
        """
        namespace = self.namespace_id(token) if token is not None else None
        self.state.resets.mark(namespace)  # other processes drop what they scheduled before it
        self.jobs.clear(namespace)
        self.scheduler.clear(namespace)
        self.webhooks.clear(namespace)
        self.rules.clear(token)
        self.journal.clear(token)
        self.limiter.clear(token)
        if self.playback is not None:  # each recorded sequence starts again from its first answer
            self.playback.rewind(self.namespace_id(token) if token is not None else None)
        if token is None:
            self.crashes.clear()
            self.uploads.clear()
            self.recent_inputs.clear()
            for task in self._tasks:  # an in-process handle resets from the test's thread
                cancel_from_any_thread(task)
            self._tasks.clear()
            self.clock.reset()
            self.rules.add_missing(parse_rule(rule.spec, self.clock.now()) for rule in self._initial_rules)

    def add_rules(self, specs: Any) -> list[Rule]:
        """Add rules from their JSON form (one rule or a list); 400 naming the problem."""
        specs = specs if isinstance(specs, list) else [specs]
        return self.rules.add([parse_rule(spec, self.clock.now(), self.rules.next_id()) for spec in specs])

    async def aclose(self) -> None:
        """Cancel this process's background processing and deliveries at shutdown.

        Nothing is reset: a shared store's state belongs to every process on it, and stays.
        """
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.scheduler.aclose()
        await self.webhooks.aclose()
        self.state.close()

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

    # --- jobs -------------------------------------------------------------------------------

    def resolver(self, base_url: str) -> InputResolver:
        """The image resolver for one request: its own URLs (by its Host) resolve on the fake."""
        return InputResolver(self.settings, base_url, self.local_file)

    def accept(
        self,
        request_id: str,
        token: str,
        operation: Operation,
        options: Mapping[str, Any],
        inputs: Inputs,
        base_url: str,
        *,
        sync: bool,
        timeline: JobTimeline | None = None,
        webhook: WebhookTarget | None = None,
    ) -> Job:
        """A new job for a checked request. An async job is processed on its first due status poll
        (see ``status``); ``timeline`` (from a ``job`` rule) holds it longer or ends it another way.

        A job with a ``webhook`` is not left to polls: it ends on the fake's clock, when its timeline
        says (``Progression.ends_at``), and delivers its webhook; a sync one delivers once answered.
        """
        operation.check_inputs(options, inputs)
        first = next(iter(inputs.values()), None)  # the image being edited (``image``, or ``images[0]``)
        output_unsafe = bool(options.get("visual_output_content_moderation")) and (
            first is not None and UNSAFE_OUTPUT_MARKER in first.markers
        )
        forced_by = token if token in JOB_FAILURE_TOKENS else None
        order = WorkOrder(operation.name, options, inputs, base_url, forced_by, output_unsafe)
        job = self.jobs.create(
            request_id, operation.name, owner=self.namespace_id(token), timeline=timeline, sync=sync, work=order
        )
        if webhook is not None:
            self.expect_webhook(job, webhook)
        return job

    def expect_webhook(self, job: Job, webhook: WebhookTarget) -> None:
        """Schedule the end of an async job with a webhook on the fake's clock."""
        job.webhook = webhook
        if job.sync:
            return  # (delivered by answer_sync)
        job.by_clock = True
        job.ends_at = self.progression.ends_at(job, self.settings.webhook_seconds_per_poll)
        self.jobs.save_schedule(job)
        if job.ends_at is not None:
            self.scheduler.at(job.ends_at, partial(self._end_and_deliver, job), job.owner)

    async def _end_and_deliver(self, accepted: Job) -> None:
        """A webhook job's time has come: process it (unless a poll already did) and deliver it."""
        job = self.jobs.get(accepted.request_id)
        if job is None or (not self.state.shared and job is not accepted):
            return  # expired, or gone with a reset
        await self._process(job)
        while job.outcome is None and job.task is not None:  # (processing over a minute: keep waiting)
            await asyncio.wait({job.task})
        self.deliver(job)

    def deliver(self, job: Job) -> None:
        """Send an ended job's webhook (its status body, as a poll gets it), once whichever process ends it."""
        if job.webhook is None or job.outcome is None or not self.jobs.claim_delivery(job.request_id):
            return
        body = JSONResponse(self.status_body(job.request_id, job.outcome)).body  # the bytes a poll gets
        self.webhooks.deliver(job.request_id, job.webhook, bytes(body))

    async def answer_sync(self, job: Job) -> dict[str, Any]:
        """Process a sync job in the request itself (a reset cannot cancel a call in flight) and
        return the 200 body, or raise the error its outcome carries."""
        await self._run(job)
        outcome = job.outcome
        if outcome is None:  # (its work is the request's own: only a shared store's reset can take it)
            raise ServerError("the job was reset while it was processed")
        self.deliver(job)
        if outcome.state is not JobState.COMPLETED:
            raise outcome.error or ServerError("processing failed")
        body = {"result": outcome.result, "request_id": job.request_id}
        return body if outcome.warning is None else {**body, "warning": outcome.warning}

    async def _process(self, job: Job) -> None:
        """Process an async job unless it is done, and wait for it (every caller waits for the same run).

        A sync job is processed by its own request: a poll while it runs answers IN_PROGRESS. The
        first to claim the job runs it, in a task of its own (a poll that leaves does not stop it); the
        others wait for its outcome. On a shared store a claim whose process stopped renewing it (it
        died) lapses, and the next to look claims the job itself.
        """
        if job.outcome is not None or job.sync:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROCESSING_TIMEOUT_SECONDS
        while job.outcome is None and (left := deadline - loop.time()) > 0:
            if self.jobs.claim(job):
                job.task = self._start(self._run_claimed(job))
                await asyncio.wait({job.task}, timeout=left)
                return
            job.outcome = await self.jobs.wait_outcome(job, left)

    async def _run_claimed(self, job: Job) -> None:
        """Process a claimed job, renewing the claim while it runs (however long it waits for pixels)."""
        renewal = self._start(self._renew_claim(job.request_id))
        try:
            await self._run(job)
        finally:
            renewal.cancel()

    async def _renew_claim(self, request_id: str) -> None:
        while True:
            await asyncio.sleep(CLAIM_RENEW_SECONDS)
            self.jobs.renew_claim(request_id)

    def _start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of this backend's, cancelled at shutdown."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, job: Job) -> None:
        """Process a job to its outcome, in the thread pool; a bug ends it UNKNOWN, never lost."""
        order = self.jobs.work_of(job)
        if order is None:  # (on a shared store: ended by another process meanwhile, or gone with a reset)
            current = self.jobs.get(job.request_id)
            job.outcome = current.outcome if current is not None else None
            return
        try:
            outcome = self._ending(order, job) or await self._produce(order, job)
        except Exception as exc:  # as a real 500 would
            self.crashes.record(exc, f"while processing job {job.request_id}")
            outcome = Outcome(JobState.UNKNOWN, error=ServerError("processing failed"))
        finally:
            job.task = None
        self.jobs.settle(job, outcome)

    @staticmethod
    def _ending(order: WorkOrder, job: Job) -> Outcome | None:
        """How the job ends without being computed: a trigger token's failure, or a job rule's ending."""
        forced = JOB_FAILURE_TOKENS.get(order.forced_by or "")
        if forced is not None:
            return Outcome(forced, error=ServerError(f"job failure forced by trigger token {order.forced_by}"))
        if job.timeline is not None and job.timeline.ending is not None:
            return job.timeline.ending
        return None

    async def _produce(self, order: WorkOrder, job: Job) -> Outcome:
        """Compute the job's outcome in a worker thread, once the process's pixel budget has room for
        its decoded images (waiting on the event loop, so that waiting jobs hold no thread)."""
        from mock_server.operations import operation

        produce = operation(order.operation)
        async with self.pixel_budget.reserved(produce.decoded_pixels(order.options, order.inputs), wait=None):
            return await run_in_threadpool(self.run_order, order, job)

    def run_order(self, order: WorkOrder, job: Job) -> Outcome:
        """Compute a job's outcome from its work order (in a worker thread, its pixels reserved)."""
        from mock_server.operations import operation

        output = operation(order.operation).produce(order.options, order.inputs)
        if order.output_unsafe:
            details = "visual_output_content_moderation: the result failed content moderation"
            return Outcome(JobState.ERROR, error=ModerationFailed(details))
        image_url = {} if output.image is None else {"image_url": f"{order.base_url}{RESULTS_PATH}{job.request_id}.png"}
        fields = dict(output.fields)
        warning = fields.pop("warning", None)
        return Outcome(JobState.COMPLETED, result={**image_url, **fields}, image=output.image, warning=warning)

    # --- status and results -----------------------------------------------------------

    async def status(self, request_id: str, token: str) -> dict[str, Any]:
        """The status service's body for one poll (which counts toward the job's progression).

        The first poll that the progression says is due processes the job and waits for it;
        later polls while it runs wait too: how many polls a job takes never depends on the
        machine's speed.
        """
        polled = self.jobs.poll(request_id, self.namespace_id(token))
        if polled is None:  # (another token's job is not there for you either)
            raise JobNotFound(f"no job {request_id}")
        job, polls_before = polled
        due = self.progression.due(job, self.clock.now(), polls_before)
        if due:
            await self._process(job)
            self.deliver(job)  # a webhook job ended by a poll (any process's): delivered once, by the first
        if not due or job.outcome is None:
            return {"request_id": request_id, "status": JobState.IN_PROGRESS.value}
        return self.status_body(request_id, job.outcome)

    def status_body(self, request_id: str, outcome: Outcome) -> dict[str, Any]:
        """What the status service says of a job that has ended."""
        state = outcome.state.value
        if outcome.state is JobState.ERROR:
            state = self.settings.failed_status  # ERROR, or FAILED for clients that wait for it
        body: dict[str, Any] = {"request_id": request_id, "status": state}
        if outcome.result is not None:
            body["result"] = outcome.result
        if outcome.warning is not None:
            body["warning"] = outcome.warning
        if outcome.error is not None:
            body["error"] = outcome.error.as_object()
        return body

    def upload(self, data: bytes, content_type: str) -> str:
        """Keep an input image on the fake (until reset) and return its path, ``/uploads/<digest>``."""
        return f"{UPLOADS_PATH}{self.uploads.add(data, content_type)}"

    def uploaded(self, name: str) -> tuple[bytes, str] | None:
        return self.uploads.get(name)

    def result_image(self, name: str) -> bytes | None:
        """The bytes behind ``/results/<request_id>.png``; None once the job is gone."""
        return self.jobs.result_image(name.removesuffix(".png")) if name.endswith(".png") else None

    def local_file(self, path: str) -> bytes | None:
        """The bytes the fake serves at ``path`` (a result, a sample or an upload), for image URLs."""
        if path.startswith(RESULTS_PATH):
            return self.result_image(path.removeprefix(RESULTS_PATH))
        if path.startswith(UPLOADS_PATH):
            upload = self.uploaded(path.removeprefix(UPLOADS_PATH))
            return upload[0] if upload else None
        return sample_file(path)
