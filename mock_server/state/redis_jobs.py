"""Jobs on the shared store: any process polls, processes (once) and serves the result of any job.

Keys (after the ``bria-mock:`` prefix): ``job:<id>`` a hash (``meta``, ``owner``, ``polls``, ``outcome``, and until
it is processed ``work`` with one ``img:<field>`` per input image), ``result:<id>`` the result image,
``jobs`` the jobs by creation time, ``job-sizes`` and ``job-bytes`` the bytes each holds and their sum,
``claim:<id>`` the process processing it, ``delivered:<id>`` that its webhook went out.

The bounds are those of ``jobs.JobStore``: ``job_ttl_seconds`` on the fake's clock, ``max_jobs`` and
``max_result_bytes``, the oldest job going first, enforced by one script whenever a job is added or ends.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

from mock_server.errors import error_for_code
from mock_server.inputs import InputImage
from mock_server.jobs import Job, JobState, JobTimeline, Outcome, WorkOrder
from mock_server.state.redis_store import decode, encode, process_id

if TYPE_CHECKING:
    from mock_server.config import Settings
    from mock_server.jobs import Clock
    from mock_server.state.redis_store import Store
    from mock_server.webhooks import WebhookTarget

# How often a poll waiting for another process's processing looks for the outcome.
WAIT_STEP_SECONDS = 0.01
# A claim lapses unless renewed (backend.CLAIM_RENEW_SECONDS): a process that dies while processing a job
# holds it up this long at most.
CLAIM_SECONDS = 10

# Drop expired jobs, then the oldest while over the count or the bytes. KEYS: jobs zset, sizes hash,
# bytes counter. ARGV: prefix, deadline (created at or before: expired), max jobs, max bytes.
_DROP = """
local function drop(id)
  local size = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[1] .. 'job:' .. id, ARGV[1] .. 'result:' .. id, ARGV[1] .. 'claim:' .. id,
    ARGV[1] .. 'delivered:' .. id)
  return redis.call('INCRBY', KEYS[3], -size)
end
"""
_TRIM_BODY = (
    _DROP
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do drop(id) end
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
local count = redis.call('ZCARD', KEYS[1])
while count > tonumber(ARGV[3]) or (total > tonumber(ARGV[4]) and count > 1) do
  total = drop(redis.call('ZRANGE', KEYS[1], 0, 0)[1])
  count = count - 1
end
"""
)
_TRIM = _TRIM_BODY + "return count"
# Drop every job, or one owner's (a reset), atomically. KEYS: those of _TRIM. ARGV: prefix, owner ('': all).
_CLEAR = (
    _DROP
    + """
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if ARGV[2] == '' or redis.call('HGET', ARGV[1] .. 'job:' .. id, 'owner') == ARGV[2] then drop(id) end
end
return redis.call('ZCARD', KEYS[1])
"""
)
# Add a job, then trim (one round trip). KEYS: those of _TRIM, then the job. ARGV: those of _TRIM, then the
# job's id, creation time, bytes held, and its hash's field/value pairs.
_CREATE = (
    """
redis.call('HSET', KEYS[4], unpack(ARGV, 8))
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[5], ARGV[7])
redis.call('INCRBY', KEYS[3], ARGV[7])
"""
    + _TRIM_BODY
    + "return count"
)
# Count a poll of a job if the caller owns it; its fields without the input images. KEYS: job. ARGV: owner.
_POLL = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
local polls = redis.call('HINCRBY', KEYS[1], 'polls', 1)
local fields = redis.call('HMGET', KEYS[1], 'meta', 'outcome')
return {fields[1], polls, fields[2] or ''}
"""
# Give a job its outcome once, its result image instead of its inputs. KEYS: job, result, sizes, bytes.
# ARGV: id, outcome, image ('' when none), result time-to-live (ms).
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[2]) == 0 then return 0 end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field == 'work' or field:sub(1, 4) == 'img:' then redis.call('HDEL', KEYS[1], field) end
end
if #ARGV[3] > 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('HSET', KEYS[3], ARGV[1], #ARGV[3])
redis.call('INCRBY', KEYS[4], #ARGV[3] - old)
return 1
"""


class RedisJobStore:
    """``jobs.JobStore`` on the store: the same bounds, shared by every process."""

    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self._store = store
        self._clock = clock
        self._ttl = settings.job_ttl_seconds
        self._max_jobs = max(1, settings.max_jobs)
        self._max_bytes = max(0, settings.max_result_bytes)
        self._index, self._sizes, self._bytes = store.key("jobs"), store.key("job-sizes"), store.key("job-bytes")
        self._trim_script = store.script("trim-jobs", _TRIM)
        self._create_script = store.script("create-job", _CREATE)
        self._poll_script = store.script("poll-job", _POLL)
        self._settle_script = store.script("settle-job", _SETTLE)

    def __len__(self) -> int:
        return self.count()

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
        job = Job(request_id, endpoint, self._clock.now(), owner=owner, timeline=timeline, sync=sync, work=work)
        fields: dict[str, Any] = {"meta": _meta(job), "polls": 0, "owner": owner or ""}
        if work is not None:
            fields["work"] = _work_spec(work)
            fields.update({f"img:{name}": image.data for name, image in work.inputs.items()})
        keys = [self._index, self._sizes, self._bytes, self._key(request_id)]
        pairs = [item for field in fields.items() for item in field]
        self._create_script(keys=keys, args=[*self._trim_args(), request_id, job.created_at, job.pending_bytes, *pairs])
        return job

    def settle(self, job: Job, outcome: Outcome) -> None:
        ttl_ms = max(1, int(self._ttl * 1000))
        keys = [self._key(job.request_id), self._store.key("result", job.request_id), self._sizes, self._bytes]
        self._settle_script(keys=keys, args=[job.request_id, _outcome_json(outcome), outcome.image or b"", ttl_ms])
        job.outcome, job.work = outcome, None
        self._trim()

    def get(self, request_id: str) -> Job | None:
        meta, polls, outcome = self._store.client.hmget(self._key(request_id), "meta", "polls", "outcome")
        if meta is None:
            return None
        job = _job(request_id, meta, int(polls or 0), outcome)
        return None if job.created_at <= self._deadline() else job

    def poll(self, request_id: str, owner: str | None) -> tuple[Job, int] | None:
        found = self._poll_script(keys=[self._key(request_id)], args=[owner or ""])
        if not found:
            return None
        meta, polls, outcome = found[0], int(found[1]), found[2] or None
        job = _job(request_id, meta, polls, outcome)
        return None if job.created_at <= self._deadline() else (job, polls - 1)

    def work_of(self, job: Job) -> WorkOrder | None:
        """The job's work order, with its input images (read only to process it, unless this process made it)."""
        if job.work is not None:
            return job.work
        fields = self._store.client.hgetall(self._key(job.request_id))
        return _work(decode(fields[b"work"]), fields) if b"work" in fields else None

    def save_schedule(self, job: Job) -> None:
        self._store.client.hset(self._key(job.request_id), "meta", _meta(job))

    def claim(self, job: Job) -> bool:
        """Whether this process processes the job: the first to ask, of all processes."""
        key = self._store.key("claim", job.request_id)
        return bool(self._store.client.set(key, process_id(), nx=True, ex=CLAIM_SECONDS))

    def renew_claim(self, request_id: str) -> None:
        """Keep this process's claim on the job while it processes it."""
        self._store.client.expire(self._store.key("claim", request_id), CLAIM_SECONDS)

    def claim_delivery(self, request_id: str) -> bool:
        """Whether this process delivers the job's webhook: the first to ask, of all processes."""
        key = self._store.key("delivered", request_id)
        return bool(self._store.client.set(key, process_id(), nx=True, ex=max(1, int(self._ttl))))

    async def wait_outcome(self, job: Job, timeout: float) -> Outcome | None:
        """The outcome another process is computing, once it is there; None when it is not there within
        ``timeout``, or when the claim has lapsed without one (its process died: claim the job again)."""
        request_id = job.request_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pipe = self._store.client.pipeline(transaction=False)
            pipe.hget(self._key(request_id), "outcome")
            pipe.exists(self._store.key("claim", request_id))
            raw, claimed = pipe.execute()
            if raw is not None:
                return _outcome(decode(raw))
            if not claimed or loop.time() >= deadline:
                return None
            await asyncio.sleep(WAIT_STEP_SECONDS)

    def result_image(self, request_id: str) -> bytes | None:
        if self.get(request_id) is None:
            return None
        image: bytes | None = self._store.client.get(self._store.key("result", request_id))
        return image

    def snapshot(self) -> list[Job]:
        """The kept jobs, oldest first (their inputs and images are not read)."""
        ids = [member.decode() for member in self._store.client.zrangebyscore(self._index, self._deadline(), "+inf")]
        pipe = self._store.client.pipeline(transaction=False)
        for request_id in ids:
            pipe.hmget(self._key(request_id), "meta", "polls", "outcome")
        jobs = []
        for request_id, (meta, polls, outcome) in zip(ids, pipe.execute(), strict=True):
            if meta is not None:
                jobs.append(_job(request_id, meta, int(polls or 0), outcome))
        return jobs

    def count(self, owner: str | None = None) -> int:
        if owner is None:
            return int(self._store.client.zcount(self._index, f"({self._deadline()}", "+inf"))
        return sum(job.owner == owner for job in self.snapshot())

    @property
    def image_bytes(self) -> int:
        return int(self._store.client.get(self._bytes) or 0)

    def clear(self, owner: str | None = None) -> None:
        """Drop every job, or one owner's, with their results and claims (one script: nothing drifts)."""
        keys = [self._index, self._sizes, self._bytes]
        self._store.script("clear-jobs", _CLEAR)(keys=keys, args=[self._store.key(""), owner or ""])

    def _trim(self) -> None:
        self._trim_script(keys=[self._index, self._sizes, self._bytes], args=self._trim_args())

    def _trim_args(self) -> list[Any]:
        return [self._store.key(""), self._deadline(), self._max_jobs, self._max_bytes]

    def _deadline(self) -> float:
        return self._clock.now() - self._ttl

    def _key(self, request_id: str) -> str:
        return self._store.key("job", request_id)


# --- records: a job as the store keeps it -------------------------------------------------------------


def _meta(job: Job) -> bytes:
    return encode(
        {
            "endpoint": job.endpoint,
            "created_at": job.created_at,
            "owner": job.owner,
            "timeline": _timeline_json(job.timeline),
            "sync": job.sync,
            "by_clock": job.by_clock,
            "ends_at": job.ends_at,
            "webhook": _webhook_json(job.webhook),
        }
    )


def _job(request_id: str, meta_json: bytes, polls: int, outcome: bytes | None) -> Job:
    """A job as its hash holds it; its work order is read only to process it (``work_of``)."""
    meta = decode(meta_json)
    job = Job(
        request_id,
        meta["endpoint"],
        meta["created_at"],
        owner=meta["owner"],
        timeline=_timeline(meta["timeline"]),
        sync=meta["sync"],
        polls=polls,
        by_clock=meta["by_clock"],
        ends_at=meta["ends_at"],
        webhook=_webhook(meta.get("webhook"), meta["created_at"]),
    )
    if outcome is not None:
        job.outcome = _outcome(decode(outcome))
    return job


def _webhook_json(target: WebhookTarget | None) -> dict[str, Any] | None:
    """Where the job's webhook goes (its token signs it): whichever process ends the job delivers it."""
    if target is None:
        return None
    return {"url": target.url, "token": target.token, "rules": [rule.spec for rule in target.header_rules]}


def _webhook(record: dict[str, Any] | None, now: float) -> WebhookTarget | None:
    from mock_server.rules import parse_rule
    from mock_server.webhooks import WebhookTarget

    if record is None:
        return None
    rules = tuple(parse_rule(spec, now, spec.get("id", "header")) for spec in record["rules"])
    return WebhookTarget(record["url"], record["token"], rules)


def _work_spec(work: WorkOrder) -> bytes:
    inputs = {
        name: {"format": image.format, "size": image.size, "markers": sorted(image.markers)}
        for name, image in work.inputs.items()
    }
    return encode(
        {
            "operation": work.operation,
            "options": work.options,
            "inputs": inputs,
            "base_url": work.base_url,
            "forced_by": work.forced_by,
            "output_unsafe": work.output_unsafe,
        }
    )


def _work(spec: dict[str, Any], fields: dict[bytes, Any]) -> WorkOrder:
    inputs = {
        name: InputImage(
            fields[f"img:{name}".encode()], info["format"], tuple(info["size"]), frozenset(info["markers"])
        )
        for name, info in spec["inputs"].items()
    }
    return WorkOrder(
        spec["operation"], spec["options"], inputs, spec["base_url"], spec["forced_by"], spec["output_unsafe"]
    )


def _outcome_json(outcome: Outcome) -> bytes:
    """A job's outcome as its hash keeps it (its image is kept under ``result:<id>``)."""
    return encode(_outcome_record(outcome, with_image=False))


def _outcome_record(outcome: Outcome, *, with_image: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"state": outcome.state.value, "result": outcome.result, "warning": outcome.warning}
    if outcome.error is not None:
        record["error"] = {"status": outcome.error.status_code, "details": outcome.error.details}
    if with_image and outcome.image is not None:  # (a timeline's ending: a replayed result, rare and small)
        record["image"] = base64.b64encode(outcome.image).decode()
    return record


def _outcome(record: dict[str, Any]) -> Outcome:
    error = record.get("error")
    image = base64.b64decode(record["image"]) if "image" in record else None
    return Outcome(
        JobState(record["state"]),
        result=record.get("result"),
        error=error_for_code(error["status"], error["details"]) if error else None,
        image=image,
        warning=record.get("warning"),
    )


def _timeline_json(timeline: JobTimeline | None) -> dict[str, Any] | None:
    if timeline is None:
        return None
    ending = _outcome_record(timeline.ending, with_image=True) if timeline.ending is not None else None
    return {"polls": timeline.polls, "seconds": timeline.seconds, "forever": timeline.forever, "ending": ending}


def _timeline(record: dict[str, Any] | None) -> JobTimeline | None:
    if record is None:
        return None
    ending = _outcome(record["ending"]) if record["ending"] is not None else None
    return JobTimeline(polls=record["polls"], seconds=record["seconds"], forever=record["forever"], ending=ending)
