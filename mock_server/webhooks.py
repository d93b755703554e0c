"""Webhook deliveries: a job that ends POSTs its status body, signed, to its ``webhook_url``.

:meth:`Webhooks.deliver` takes the body a status poll returns at that moment, lets the rules
decide (endpoint ``webhook``: delay, drop, duplicate, reorder, a bad signature, a stale
timestamp, a tampered body, another retry policy), and schedules the attempts on the fake's
clock. A non-2xx answer, a connection error or a timeout is retried with backoff (``attempts``
in all, waits of ``backoff`` doubling each time) until the receiver answers 2xx: delivery is
at-least-once, receivers dedupe by ``Bria-Webhook-Id``. Each attempt is signed anew, with the
wall-clock time of sending as its timestamp. Every attempt is recorded in the webhook
log (``webhook_log.WebhookLog``, or the shared store's).
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from mock_server import operations
from mock_server.bodies import parse_json_or_error
from mock_server.rules import Traffic
from mock_server.traffic import sample_latency
from mock_server.webhook_signing import signed_headers, signing_key
from mock_server.webhook_targets import AddressPolicy, AttemptResult, post

if TYPE_CHECKING:
    from mock_server.config import Settings
    from mock_server.ids import NamespaceId
    from mock_server.jobs import Clock
    from mock_server.rules import Decision, Rule
    from mock_server.scheduler import Scheduler
    from mock_server.state import Attempts, Rules

_WRONG_KEY_SUFFIX = "bria-mock: a wrong key"  # bad_signature signs with the token's key for another token


@dataclasses.dataclass(frozen=True)
class WebhookTarget:
    """Where a job's webhook goes, whose token signs it, and the header rules of its request."""

    url: str
    token: str
    header_rules: tuple[Rule, ...] = ()


@dataclasses.dataclass(frozen=True)
class DeliveryPlan:
    """What the rules that fired make of one delivery (every attempt of it)."""

    attempts: int
    backoff: float
    delay: float = 0.0
    drop: bool = False
    duplicate_gap: float | None = None
    reorder_hold: float | None = None
    bad_signature: bool = False
    stale_seconds: int = 0
    tampered: bool = False
    rules: tuple[str, ...] = ()

    @classmethod
    def from_decision(cls, decision: Decision, settings: Settings) -> DeliveryPlan:
        """The settings' retry policy, changed by each fired action (the first of a kind wins)."""
        first: dict[str, dict[str, Any] | None] = {kind: next(iter(decision.actions(kind)), None) for kind in _KINDS}
        retry = first["retry"] or {}
        return cls(
            attempts=max(1, retry.get("attempts", settings.webhook_attempts)),
            backoff=retry.get("backoff", settings.webhook_backoff_seconds),
            delay=sum(sample_latency(action) for action in decision.actions("delay")),
            drop=first["drop"] is not None,
            duplicate_gap=first["duplicate"].get("gap_seconds", 0.0) if first["duplicate"] else None,
            reorder_hold=first["reorder"].get("hold_seconds", 60.0) if first["reorder"] else None,
            bad_signature=first["bad_signature"] is not None,
            stale_seconds=int(first["stale_timestamp"].get("seconds", 600)) if first["stale_timestamp"] else 0,
            tampered=first["tampered_body"] is not None,
            rules=tuple(decision.rule_ids),
        )


_KINDS = ("retry", "drop", "duplicate", "reorder", "bad_signature", "stale_timestamp", "tampered_body")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One job's webhook on its way: the body (what a poll returned then) and its plan."""

    request_id: str
    target: WebhookTarget
    body: bytes
    plan: DeliveryPlan
    owner: str | None  # the namespace of the job's token: a namespaced reset drops its deliveries
    copy: int = 1  # 2: the copy a duplicate rule sends


class Webhooks:
    """The deliveries of one backend: scheduling, retries, faults, and the record of every attempt."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        scheduler: Scheduler,
        rules: Rules,
        log: Attempts,
        namespace_id: NamespaceId,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._scheduler = scheduler
        self._rules = rules
        self._policy = AddressPolicy.from_allowlist(settings.webhook_allowlist)
        self.log = log
        self._namespace_id = namespace_id
        self._held: list[Delivery] = []  # held by a reorder rule until the next delivery
        self._client: httpx.AsyncClient | None = None

    def deliver(self, request_id: str, target: WebhookTarget, body: bytes) -> None:
        """Start delivering a job's status body (call on the event loop, when the job has ended)."""
        now = self._clock.now()
        traffic = Traffic(operations.WEBHOOK, "POST", target.token, _json_or_none(body))
        decision = self._rules.decide(traffic, now, extra=target.header_rules)
        plan = DeliveryPlan.from_decision(decision, self._settings)
        delivery = Delivery(request_id, target, body, plan, self._namespace_id(target.token))
        if delivery.plan.drop:
            self._record(delivery, 1, None, {}, AttemptResult(None, "dropped by a rule: never sent", 0.0), sent=False)
            return
        first = now + delivery.plan.delay
        if delivery.plan.reorder_hold is not None:
            self._held.append(delivery)
            self._scheduler.at(now + delivery.plan.reorder_hold, partial(self._release, delivery), delivery.owner)
        else:
            self._schedule(delivery, 1, first)
        if delivery.plan.duplicate_gap is not None:
            copy = dataclasses.replace(delivery, copy=2)
            self._schedule(copy, 1, first + delivery.plan.duplicate_gap)

    def clear(self, namespace: str | None = None) -> None:
        """Forget the record and the held deliveries: all, or one namespace's (scheduled work is the scheduler's)."""
        self.log.clear(namespace)
        self._held = [held for held in self._held if namespace is not None and held.owner != namespace]

    async def aclose(self) -> None:
        """Close the HTTP client (at shutdown)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _schedule(self, delivery: Delivery, attempt: int, due: float) -> None:
        self._scheduler.at(due, partial(self._attempt, delivery, attempt), delivery.owner)

    async def _attempt(self, delivery: Delivery, attempt: int) -> None:
        """Sign and send one attempt, record it, and schedule the next one when it failed."""
        plan = delivery.plan
        timestamp = int(time.time()) - plan.stale_seconds
        key = signing_key(delivery.target.token)
        if plan.bad_signature:
            key = signing_key(delivery.target.token + _WRONG_KEY_SUFFIX)
        headers = signed_headers(key, delivery.request_id, timestamp, delivery.body)
        body = delivery.body[:-1] + b',"tampered":true}' if plan.tampered else delivery.body
        result, sent_headers = await post(
            self._http(), delivery.target.url, headers, body,
            policy=self._policy, timeout=self._settings.webhook_timeout_seconds,
        )  # fmt: skip
        self._record(delivery, attempt, timestamp, sent_headers, result, body=body)
        if not result.delivered and not result.refused and attempt < plan.attempts:
            wait = plan.backoff * 2 ** (attempt - 1)
            self._schedule(delivery, attempt + 1, self._clock.now() + wait)
        if attempt == 1:
            self._release_held(delivery)

    def _release_held(self, sent: Delivery) -> None:
        """A delivery went out: the ones a reorder rule held go right after it."""
        released = [held for held in self._held if held.request_id != sent.request_id]
        self._held = [held for held in self._held if held.request_id == sent.request_id]
        for held in released:
            self._schedule(held, 1, self._clock.now())

    async def _release(self, delivery: Delivery) -> None:
        """The hold of a reordered delivery ran out before another delivery came: send it now."""
        if any(held is delivery for held in self._held):
            self._held = [held for held in self._held if held is not delivery]
            await self._attempt(delivery, 1)

    def _record(
        self,
        delivery: Delivery,
        attempt: int,
        timestamp: int | None,
        headers: dict[str, str],
        result: AttemptResult,
        *,
        body: bytes | None = None,
        sent: bool = True,
    ) -> None:
        self.log.record(
            request_id=delivery.request_id,
            namespace=delivery.owner,
            url=delivery.target.url,
            delivery=delivery.copy,
            attempt=attempt,
            at=self._clock.now(),
            timestamp=timestamp,
            headers=headers,
            body=(delivery.body if body is None else body).decode("utf-8"),
            status=result.status,
            error=result.error,
            latency_ms=result.latency_ms,
            rules=list(delivery.plan.rules),
            sent=sent,
        )

    def _http(self) -> httpx.AsyncClient:
        # One client per backend, made on the loop that sends (no proxy or .netrc from the environment).
        if self._client is None:
            headers = {"User-Agent": "bria-mock-webhooks"}
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=None, headers=headers)
        return self._client


def _json_or_none(body: bytes) -> object:
    parsed = parse_json_or_error(body)  # (always JSON: the fake rendered it)
    return None if isinstance(parsed, Exception) else parsed
