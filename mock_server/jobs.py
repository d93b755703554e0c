"""Jobs and their store: how an accepted request progresses, what it ends with, when it expires."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mock_server.errors import BriaError, error_for_code

if TYPE_CHECKING:
    from mock_server.inputs import InputImage
    from mock_server.webhooks import WebhookTarget

MAX_ADVANCE_SECONDS = 10 * 365 * 24 * 3600.0


class JobState(enum.StrEnum):
    """The status service's states. ``FAILED`` is not one: the status service never sends it; a failed
    job reports it instead of ``ERROR`` only with the setting ``failed_status=FAILED``."""

    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"


class Clock:
    """Monotonic seconds that tests can move forward (time-based progressions, expiry, the scheduler)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._on_advance: list[Callable[[], None]] = []

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each ``advance`` (from the advancing thread): the scheduler looks again."""
        self._on_advance.append(listener)

    def now(self) -> float:
        return time.monotonic() + self._offset

    @property
    def offset(self) -> float:
        """Seconds the clock has been moved forward since the last full reset."""
        return self._offset

    def reset(self) -> None:
        """Back to real time; only for a full reset, when no stored time is left to confuse."""
        self._offset = 0.0

    def advance(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_ADVANCE_SECONDS:  # also refuses NaN and infinity
            raise ValueError(f"the clock moves forward by 0 to {MAX_ADVANCE_SECONDS:.0f} seconds at a time")
        self._offset += seconds
        for listener in self._on_advance:
            listener()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: its terminal state, the result fields or the error object, and the image."""

    state: JobState
    result: dict[str, Any] | None = None
    error: BriaError | None = None  # for ERROR and UNKNOWN: what the status body's ``error`` says
    image: bytes | None = None
    warning: str | None = None  # beside ``result``, as the spec places it (an ip_signal request's)


@dataclasses.dataclass(frozen=True)
class JobTimeline:
    """A job's own progression, from a ``job`` rule: held longer, held forever, or ending otherwise."""

    polls: int | None = None
    seconds: float | None = None
    forever: bool = False
    ending: Outcome | None = None  # None: the job's own result

    @classmethod
    def from_action(cls, action: dict[str, Any]) -> JobTimeline:
        state = JobState(action.get("state", "COMPLETED"))
        held = "polls" in action or "seconds" in action
        ending = None
        if state in (JobState.ERROR, JobState.UNKNOWN):
            code = action.get("code", 500)
            details = action.get("details", f"job {state.value.lower()} injected by a bria-mock rule")
            ending = Outcome(state, error=error_for_code(code, details))
        forever = state is JobState.IN_PROGRESS and not held
        return cls(polls=action.get("polls"), seconds=action.get("seconds"), forever=forever, ending=ending)


@dataclasses.dataclass(frozen=True)
class WorkOrder:
    """What computes an accepted job's outcome: plain data, so that a shared store can keep it and any
    process can run it (see ``BriaBackend.run_order``)."""

    operation: str  # the operation's name in the table
    options: Mapping[str, Any]  # the validated request
    inputs: Mapping[str, InputImage]  # its checked input images, by field
    base_url: str  # where the result image's URL points
    forced_by: str | None = None  # a trigger token that forces the job's failure
    output_unsafe: bool = False  # output moderation asked for, and the input is marked unsafe

    @property
    def pending_bytes(self) -> int:
        """The bytes of the input images it keeps until it is processed."""
        return sum(len(image.data) for image in self.inputs.values())


@dataclasses.dataclass
class Job:
    """One accepted request. ``outcome`` is set once, when processing ends, and never changes.

    An async job is processed when first needed (its first due status poll), not when it is
    accepted: until then ``work`` holds what computes its outcome (counted toward the store's
    byte bound by the size of its input images).
    """

    request_id: str
    endpoint: str
    created_at: float
    owner: str | None = None  # the namespace_id of the token that created it: its namespace
    timeline: JobTimeline | None = None
    sync: bool = False  # a sync job: its outcome was the answer, so polls report it at once
    polls: int = 0
    outcome: Outcome | None = None
    work: WorkOrder | None = dataclasses.field(default=None, repr=False)
    # The processing of the job while it runs, until it has set ``outcome`` (in this process).
    task: asyncio.Task[None] | None = dataclasses.field(default=None, repr=False)
    # A job with ``webhook_url`` ends on the fake's clock at ``ends_at`` without being polled (never,
    # for an IN_PROGRESS timeline); polls of it go by that time alone. ``webhook`` is where it goes:
    # whichever ends the job (its schedule, or a due poll, in any process) delivers it, once.
    by_clock: bool = False
    ends_at: float | None = None
    webhook: WebhookTarget | None = dataclasses.field(default=None, repr=False)
    delivered: bool = False  # its webhook is on its way (in memory: a shared store keeps its own mark)

    @property
    def pending_bytes(self) -> int:
        return self.work.pending_bytes if self.work is not None else 0


class JobStore:
    """Jobs in this process's memory, oldest first, bounded by a time-to-live, a count and the bytes of
    images (the shared store: ``mock_server.state.redis_jobs.RedisJobStore``).

    Expiry rule (documented in the README): a job and its result image are kept for
    ``ttl`` seconds after the request was accepted; at most ``max_jobs`` are kept, and
    their images (results, and the inputs of jobs not processed yet) take at most
    ``max_result_bytes``; past either bound the oldest job goes first. Either way its
    id then answers 404 NOT_FOUND and its image 404.
    """

    def __init__(self, clock: Clock, *, ttl: float, max_jobs: int, max_result_bytes: int) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max_jobs = max(1, max_jobs)
        self._max_bytes = max(0, max_result_bytes)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the plugin's handle reads and resets from a test's thread

    def __len__(self) -> int:
        return len(self._jobs)

    def create(
        self,
        request_id: str,
        endpoint: str,
        *,
        owner: str | None = None,
        timeline: JobTimeline | None = None,
        sync: bool = False,
        work: WorkOrder | None = None,
    ) -> Job:
        """Record a new job and drop what has expired or is over the bounds."""
        job = Job(request_id, endpoint, self._clock.now(), owner=owner, timeline=timeline, sync=sync, work=work)
        with self._lock:
            self._expire()
            self._jobs[request_id] = job
            self._bytes += _image_size(job)
            self._trim()
        return job

    def settle(self, job: Job, outcome: Outcome) -> None:
        """Give a job its outcome (once), counting its result image instead of its inputs."""
        with self._lock:
            kept = self._jobs.get(job.request_id) is job  # an expired job's image is not kept
            before = _image_size(job)
            job.outcome, job.work = outcome, None
            if kept:
                self._bytes += _image_size(job) - before
                self._trim()

    def get(self, request_id: str) -> Job | None:
        """The job, or None when it was never created or has expired."""
        with self._lock:
            self._expire()
            return self._jobs.get(request_id)

    def poll(self, request_id: str, owner: str | None) -> tuple[Job, int] | None:
        """Count a status poll of the job if ``owner``'s: the job and how many polls it had before this one."""
        with self._lock:
            self._expire()
            job = self._jobs.get(request_id)
            if job is None or job.owner != owner:
                return None
            job.polls += 1
            return job, job.polls - 1

    def work_of(self, job: Job) -> WorkOrder | None:
        """What computes the job's outcome (None once it has one)."""
        return job.work

    def save_schedule(self, job: Job) -> None:
        """Keep ``by_clock`` and ``ends_at`` once set (a store in memory holds the job itself)."""

    def claim(self, job: Job) -> bool:
        """Whether the caller processes the job: the first to ask (the job has no task yet)."""
        return job.task is None

    def renew_claim(self, request_id: str) -> None:
        """(A shared store's: keep this process's claim while it processes the job.)"""

    def claim_delivery(self, request_id: str) -> bool:
        """Whether the caller delivers the job's webhook: the first to ask (a poll or the schedule)."""
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None or job.delivered:
                return False
            job.delivered = True
            return True

    async def wait_outcome(self, job: Job, timeout: float) -> Outcome | None:
        """The outcome the job's task computes, once it is there (None: not within ``timeout``, or no task)."""
        if job.task is not None:
            await asyncio.wait({job.task}, timeout=timeout)
        return job.outcome

    def result_image(self, request_id: str) -> bytes | None:
        """A job's result image, or None (no such job, not ended, or no image)."""
        job = self.get(request_id)
        return job.outcome.image if job is not None and job.outcome is not None else None

    def snapshot(self) -> list[Job]:
        """The kept jobs, oldest first, to read (the inspector's list): nothing is polled or processed."""
        with self._lock:
            self._expire()
            return list(self._jobs.values())

    def count(self, owner: str | None = None) -> int:
        """How many jobs are kept, or how many of one owner's."""
        with self._lock:
            return len(self._jobs) if owner is None else sum(job.owner == owner for job in self._jobs.values())

    @property
    def image_bytes(self) -> int:
        """The bytes of images held: results, and the inputs of jobs not processed yet."""
        return self._bytes

    def clear(self, owner: str | None = None) -> None:
        """Drop every job, or only one owner's."""
        with self._lock:
            for request_id in [rid for rid, job in self._jobs.items() if owner is None or job.owner == owner]:
                self._bytes -= _image_size(self._jobs.pop(request_id))

    def _expire(self) -> None:
        deadline = self._clock.now() - self._ttl
        while self._jobs and next(iter(self._jobs.values())).created_at <= deadline:
            self._drop_oldest()

    def _trim(self) -> None:
        while len(self._jobs) > self._max_jobs or (self._bytes > self._max_bytes and len(self._jobs) > 1):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, job = self._jobs.popitem(last=False)
        self._bytes -= _image_size(job)


def _image_size(job: Job) -> int:
    """The bytes a job holds: its result image, or the input images it waits to process."""
    if job.outcome is None:
        return job.pending_bytes
    return len(job.outcome.image) if job.outcome.image is not None else 0


@dataclasses.dataclass(frozen=True)
class Progression:
    """How long a job answers IN_PROGRESS: a number of status polls and a number of seconds."""

    polls: int
    seconds: float

    def due(self, job: Job, now: float, polls_before: int) -> bool:
        """Whether this poll (the job had ``polls_before`` before it) may report the job's outcome.

        Polls only go up and time only goes forward, so once due a job stays due: together
        with an outcome that never changes, a job never goes back from a terminal state.
        """
        if job.sync:
            return True
        if job.by_clock:  # it ends on the clock, polled or not: polls agree with its webhook
            return job.ends_at is not None and now >= job.ends_at
        timeline = job.timeline or JobTimeline()
        polls = self.polls if timeline.polls is None else timeline.polls
        seconds = self.seconds if timeline.seconds is None else timeline.seconds
        return not timeline.forever and polls_before >= polls and now - job.created_at >= seconds

    def ends_at(self, job: Job, seconds_per_poll: float) -> float | None:
        """When a job that is not polled (one with a webhook) ends on the fake's clock, or None: never.

        Its timeline's polls count as ``seconds_per_poll`` each; the later of that and its seconds wins.
        """
        timeline = job.timeline or JobTimeline()
        if timeline.forever:
            return None
        polls = self.polls if timeline.polls is None else timeline.polls
        seconds = self.seconds if timeline.seconds is None else timeline.seconds
        return job.created_at + max(seconds, polls * seconds_per_poll)
