"""Where the fake's state lives: this process's memory (the default), or a Redis/Valkey server shared
by every process that names it (``state = redis://...``), so that workers and hosts act as one fake.

Each kind of state has one interface and two implementations, chosen here and nowhere else:

============  ==================================  ===========================================
state         in memory                           shared (Redis/Valkey)
============  ==================================  ===========================================
jobs          ``jobs.JobStore``                   ``state.redis_jobs.RedisJobStore``
rules         ``rules.RuleBook``                  ``state.redis_rules.RedisRuleBook``
journal       ``journal.Journal``                 ``state.redis_journal.RedisJournal``
rate limits   ``ratelimit.RateLimiter``           ``state.redis_small.RedisRateLimiter``
uploads       ``uploads.Uploads``                 ``state.redis_small.RedisUploads``
webhook log   ``webhook_log.WebhookLog``          ``state.redis_journal.RedisWebhookLog``
clock         ``jobs.Clock``                      ``state.redis_small.SharedClock``
============  ==================================  ===========================================

What must be exact across processes (a rule's ``times``, a bucket's tokens, a job processed once, a
webhook delivered once, the journal's bounds) is one atomic operation on the server (a script or
``SET NX``), never a read-modify-write in Python. What stays per process: the crash log, the
scheduler (a webhook job's end is scheduled by the process that accepted it; a due poll on any
process may end it first, and whichever does delivers it, once; a reset anywhere drops the work
every process scheduled before it), and the inspector's recent inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from mock_server import ids
from mock_server.ids import NamespaceId
from mock_server.jobs import Clock, JobStore
from mock_server.journal import Journal
from mock_server.ratelimit import RateLimiter, per_minute
from mock_server.rules import RuleBook
from mock_server.uploads import Uploads
from mock_server.webhook_log import WebhookLog

if TYPE_CHECKING:
    from mock_server.config import Settings
    from mock_server.jobs import Job, JobTimeline, Outcome, WorkOrder
    from mock_server.journal import Entry
    from mock_server.rules import Decision, Rule, Traffic
    from mock_server.webhook_log import Attempt


class Jobs(Protocol):
    """Jobs and their result images, bounded (see ``jobs.JobStore`` for the rules both stores follow)."""

    def __len__(self) -> int: ...
    def create(
        self,
        request_id: str,
        endpoint: str,
        *,
        owner: str | None = None,
        timeline: JobTimeline | None = None,
        sync: bool = False,
        work: WorkOrder | None = None,
    ) -> Job: ...
    def settle(self, job: Job, outcome: Outcome) -> None: ...
    def get(self, request_id: str) -> Job | None: ...
    def poll(self, request_id: str, owner: str | None) -> tuple[Job, int] | None: ...
    def work_of(self, job: Job) -> WorkOrder | None: ...
    def save_schedule(self, job: Job) -> None: ...
    def claim(self, job: Job) -> bool: ...
    def renew_claim(self, request_id: str) -> None: ...
    def claim_delivery(self, request_id: str) -> bool: ...
    async def wait_outcome(self, job: Job, timeout: float) -> Outcome | None: ...
    def result_image(self, request_id: str) -> bytes | None: ...
    def snapshot(self) -> list[Job]: ...
    def count(self, owner: str | None = None) -> int: ...
    @property
    def image_bytes(self) -> int: ...
    def clear(self, owner: str | None = None) -> None: ...


class Rules(Protocol):
    """The fault rules and their counters (see ``rules.RuleBook``)."""

    def next_id(self) -> str: ...
    def add(self, rules: Iterable[Rule]) -> list[Rule]: ...
    def add_missing(self, rules: Iterable[Rule]) -> list[Rule]: ...
    def remove(self, rule_id: str, token: str | None = None) -> bool: ...
    def clear(self, token: str | None = None) -> None: ...
    def list(self, token: str | None = None) -> list[Rule]: ...
    def __bool__(self) -> bool: ...
    def decide(self, traffic: Traffic, now: float, extra: Iterable[Rule] = ()) -> Decision: ...


class Exchanges(Protocol):
    """The journal (see ``journal.Journal``)."""

    max_entries: int
    max_bytes: int
    namespace_id: NamespaceId  # how its entries' token ids are made

    def record(self, **fields: Any) -> Entry | None: ...
    def entries(self, **criteria: Any) -> list[Entry]: ...
    def clear(self, token: str | None = None) -> None: ...
    def __len__(self) -> int: ...
    @property
    def bytes_held(self) -> int: ...


class Attempts(Protocol):
    """The webhook attempt log (see ``webhook_log.WebhookLog``)."""

    def record(self, **fields: Any) -> Attempt: ...
    def attempts(
        self,
        *,
        namespace: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        delivered: bool | None = None,
        url: str | None = None,
    ) -> list[Attempt]: ...
    def clear(self, namespace: str | None = None) -> None: ...
    def __len__(self) -> int: ...


class Resets(Protocol):
    """Marks of resets, so that work another process scheduled before a reset is dropped when due."""

    def stamp(self, owner: str | None) -> object: ...
    def current(self, owner: str | None, stamp: object) -> bool: ...
    def mark(self, owner: str | None) -> None: ...


class LocalResets:
    """In memory there is one process: a reset clears its scheduler itself, nothing to mark."""

    def stamp(self, owner: str | None) -> object:
        return None

    def current(self, owner: str | None, stamp: object) -> bool:
        return True

    def mark(self, owner: str | None) -> None:
        pass


class RateLimits(Protocol):
    """Rate-limit buckets (see ``ratelimit.RateLimiter``)."""

    configured_limit: int | None

    @property
    def limit(self) -> int | None: ...
    def configure(self, limit: int | None) -> None: ...
    def take(self, token: str, endpoint: str) -> float | None: ...
    def retry_after(self, wait: float) -> str: ...
    def state(self, token: str | None = None) -> list[dict[str, object]]: ...
    def clear(self, token: str | None = None) -> None: ...


class UploadedImages(Protocol):
    """Images uploaded for tests (see ``uploads.Uploads``)."""

    max_count: int
    max_bytes: int

    def add(self, data: bytes, content_type: str) -> str: ...
    def get(self, name: str) -> tuple[bytes, str] | None: ...
    def clear(self) -> None: ...
    @property
    def total_bytes(self) -> int: ...


@dataclasses.dataclass
class State:
    """The state of one fake, whichever store holds it."""

    clock: Clock
    jobs: Jobs
    rules: Rules
    journal: Exchanges
    limiter: RateLimits
    uploads: UploadedImages
    webhook_log: Attempts
    resets: Resets = dataclasses.field(default_factory=LocalResets)
    shared: bool = False
    namespace_id: NamespaceId = ids.namespace_id  # a token's namespace id, as this state keys it
    close: Callable[[], None] = lambda: None  # releases the store's connections
    # Read the shared values again (a request starts; the scheduler looks at the clock): see SharedView.
    refresh: Callable[[], None] = lambda: None


def open_state(settings: Settings) -> State:
    """The state the settings name: in memory, or on the Redis/Valkey server of ``settings.state``."""
    if settings.state != "memory":
        from mock_server.state.redis_store import open_shared_state

        return open_shared_state(settings)
    clock = Clock()
    return State(
        clock=clock,
        jobs=JobStore(
            clock, ttl=settings.job_ttl_seconds, max_jobs=settings.max_jobs, max_result_bytes=settings.max_result_bytes
        ),
        rules=RuleBook(),
        journal=Journal(max_entries=settings.journal_max_entries, max_bytes=settings.journal_max_bytes),
        limiter=RateLimiter(clock.now, per_minute(settings.rate_limit)),
        uploads=Uploads(),
        webhook_log=WebhookLog(max_entries=settings.webhook_log_max_entries, max_bytes=settings.webhook_log_max_bytes),
    )
