"""Fault-injection rules: one model behind the header, the rules file, the admin API and Python.

A rule matches requests (endpoint, method, token, body fields, which call) and acts on them
(an error, latency, a slow body, a broken connection, a job timeline), or matches the fake's
webhook deliveries (endpoint ``webhook``, the status body as body) and acts on those (delay,
drop, duplicate, reorder, a bad signature, a stale timestamp, a tampered body, another retry policy). ``times``,
``probability`` with a ``seed``, and an explicit ``schedule`` limit how often it fires; the
seeded draws make a random schedule replay exactly, and a schedule is a list a test can shrink.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import hashlib
import itertools
import random
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mock_server import operations
from mock_server.bodies import parse_json
from mock_server.contract import describe, load_schema
from mock_server.errors import BadRequest

if TYPE_CHECKING:
    from jsonschema import Draft7Validator

RULE_SCHEMA = "admin/rule"
TERMINAL_ACTIONS = frozenset({"error", "connection"})
# Actions on the webhook deliveries the fake makes (endpoint ``webhook``), never on requests to it.
WEBHOOK_ACTIONS = frozenset(
    {"delay", "drop", "duplicate", "reorder", "bad_signature", "stale_timestamp", "tampered_body", "retry"}
)
HISTORY_KEPT = 1000


@dataclasses.dataclass(frozen=True)
class Traffic:
    """What a rule can match on, for one request (or one webhook delivery: endpoint ``webhook``)."""

    endpoint: str  # an operation's name, status, result, sample, other or webhook (see operations.endpoint_names)
    method: str
    token: str | None
    body: Any = None


@dataclasses.dataclass
class Rule:
    """One rule, parsed and validated from its JSON form (see ``schemas/admin/rule.json``)."""

    spec: dict[str, Any]
    id: str
    added_at: float
    matched: int = 0  # calls that matched everything but the firing limits
    fired: int = 0
    # Fire / don't fire per matching call, the last HISTORY_KEPT of them: a replayable schedule.
    history: collections.deque[bool] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=HISTORY_KEPT))

    @property
    def action(self) -> dict[str, Any]:
        action: dict[str, Any] = self.spec["action"]
        return action

    @property
    def on_webhooks(self) -> bool:
        """Whether the rule acts on webhook deliveries (its action is one of ``WEBHOOK_ACTIONS``)."""
        return self.action["type"] in WEBHOOK_ACTIONS

    def matches(self, traffic: Traffic) -> bool:
        """Whether the request is one this rule is about (before counting and limits)."""
        spec = self.spec
        if spec.get("endpoint", "any") not in ("any", traffic.endpoint):
            return False
        if (traffic.endpoint == operations.WEBHOOK) != self.on_webhooks:
            return False
        if spec.get("method", "any") not in ("any", traffic.method):
            return False
        if "token" in spec and spec["token"] != traffic.token:
            return False
        return _body_matches(spec.get("body"), traffic.body)

    def fires(self, now: float) -> bool:
        """Count a matching call and decide whether the rule acts on it (the draw is always made)."""
        call = self._count_match()
        spec = self.spec
        fire = self._allowed(call, now) and draw(spec.get("seed"), call) < spec.get("probability", 1.0)
        schedule = spec.get("schedule")
        if schedule is not None:
            fire = fire and call <= len(schedule) and schedule[call - 1]
        return self._record(call, fire)

    def _count_match(self) -> int:
        """Count a matching call; its number (1 for the first). (A shared rule counts on the store.)"""
        self.matched += 1
        return self.matched

    def _record(self, call: int, fire: bool) -> bool:
        """Whether call ``call`` fires (``fire``, unless ``times`` are used up), counted and kept in the history."""
        fire = fire and ("times" not in self.spec or self.fired < self.spec["times"])
        self.history.append(fire)
        self.fired += fire
        return fire

    def _allowed(self, call: int, now: float) -> bool:
        spec = self.spec
        if "calls" in spec and call not in spec["calls"]:
            return False
        if call <= spec.get("after", 0):
            return False
        return "for_seconds" not in spec or now - self.added_at < spec["for_seconds"]

    def to_json(self) -> dict[str, Any]:
        return {**self.spec, "id": self.id, "matched": self.matched, "fired": self.fired, "history": list(self.history)}


@functools.cache
def rule_schema() -> Mapping[str, Any]:
    """``schemas/admin/rule.json`` with the endpoint names filled in from the operation table."""
    schema = copy.deepcopy(dict(load_schema(RULE_SCHEMA)))
    schema["properties"]["endpoint"]["enum"] = [*operations.endpoint_names(), "any"]
    return schema


@functools.cache
def rule_validator() -> Draft7Validator:
    """The rule schema's validator, built once per process."""
    from jsonschema import Draft7Validator

    return Draft7Validator(rule_schema())


def parse_rule(spec: Any, now: float, default_id: str = "rule") -> Rule:
    """A rule from its JSON form; 400 naming the field when it breaks the rule schema."""
    errors = list(rule_validator().iter_errors(spec))
    if errors:
        raise BadRequest(f"rule: {describe(errors[0])}")
    never = _never_applies(spec)
    if never:
        raise BadRequest(f"rule: {never}")
    rule_id = str(spec.get("id") or default_id)
    return Rule(spec={**spec, "id": rule_id}, id=rule_id, added_at=now)


def draw(seed: Any, call: int) -> float:
    """The random draw of a rule's ``call``-th matching call, in [0, 1): with a ``seed``, a function of
    the seed and the call's number alone, so that a schedule replays exactly, in one process or many."""
    if seed is None:
        return random.random()
    digest = hashlib.sha256(f"{seed}:{call}".encode()).digest()
    return int.from_bytes(digest[:7], "big") / 2**56


# Requests that never create a job: a job action matching only them could never apply.
_NO_JOBS = {"endpoint": ("status", "result"), "method": ("GET",)}


def _never_applies(spec: Mapping[str, Any]) -> str | None:
    """Why a valid rule could never act (a job action on requests that create no job, a webhook
    action on requests, a request action on webhooks), or None."""
    kind, endpoint = spec["action"]["type"], spec.get("endpoint", "any")
    if (kind in WEBHOOK_ACTIONS) != (endpoint == operations.WEBHOOK) and endpoint != "any":
        if kind in WEBHOOK_ACTIONS:
            return f"action.type: {kind} acts on webhook deliveries; use endpoint webhook (or any), not {endpoint}"
        return f"endpoint: webhook deliveries take only the actions {', '.join(sorted(WEBHOOK_ACTIONS))}, not {kind}"
    if kind != "job":
        return None
    for field, values in _NO_JOBS.items():
        if spec.get(field) in values:
            return (
                f"{field}: a job action shapes the jobs that edit requests (POST remove_background or "
                f"replace_background) create, and {field} {spec[field]} matches none; "
                "match an edit endpoint, or any"
            )
    return None


@dataclasses.dataclass
class Decision:
    """What the rules do to one request: the rules that fired and their actions, in order."""

    fired: list[Rule] = dataclasses.field(default_factory=list)

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.fired]

    def actions(self, kind: str) -> list[dict[str, Any]]:
        return [rule.action for rule in self.fired if rule.action["type"] == kind]

    @property
    def terminal(self) -> dict[str, Any] | None:
        """The first error or connection fault: it replaces the fake's own answer."""
        return next((rule.action for rule in self.fired if rule.action["type"] in TERMINAL_ACTIONS), None)


class RuleBook:
    """The active rules of one backend, evaluated in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()  # the Python API may add rules from a test's thread
        self._ids = itertools.count(1)  # per book: a new fake numbers its rules from rule-1

    def next_id(self) -> str:
        return f"rule-{next(self._ids)}"

    def add(self, rules: Iterable[Rule]) -> list[Rule]:
        added = list(rules)
        check_unique(added)
        with self._lock:
            known = {rule.id for rule in self._rules}
            for rule in added:
                if rule.id in known:
                    raise BadRequest(f"rule: id {rule.id} is already in use")
            self._rules.extend(added)
        return added

    def add_missing(self, rules: Iterable[Rule]) -> list[Rule]:
        """Add the rules whose ids are not there yet (a rules file's, at start and after a reset)."""
        with self._lock:
            known = {rule.id for rule in self._rules}
        return self.add(rule for rule in rules if rule.id not in known)

    def remove(self, rule_id: str, token: str | None = None) -> bool:
        """Remove a rule; a namespaced caller (``token``) removes only its own."""
        with self._lock:
            before = len(self._rules)
            self._rules = [
                rule
                for rule in self._rules
                if rule.id != rule_id or (token is not None and rule.spec.get("token") != token)
            ]
            return len(self._rules) != before

    def clear(self, token: str | None = None) -> None:
        """Drop every rule, or only the rules of one token's namespace."""
        with self._lock:
            self._rules = [rule for rule in self._rules if token is not None and rule.spec.get("token") != token]

    def list(self, token: str | None = None) -> list[Rule]:
        return [rule for rule in self._rules if token is None or rule.spec.get("token") == token]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def decide(self, traffic: Traffic, now: float, extra: Iterable[Rule] = ()) -> Decision:
        """Evaluate one request against ``extra`` (one-off rules from its header) and the book."""
        decision = Decision()
        with self._lock:
            for rule in itertools.chain(extra, self._rules):
                if rule.matches(traffic) and rule.fires(now):
                    decision.fired.append(rule)
        return decision


def check_unique(rules: list[Rule]) -> None:
    """400 when rules added together share an id."""
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise BadRequest(f"rule: id {rule.id} is given to more than one of the rules added")
        seen.add(rule.id)


def _body_matches(expected: Mapping[str, Any] | None, body: Any) -> bool:
    if not expected:
        return True
    if not isinstance(body, Mapping):
        return False
    return all(field in body and body[field] == value for field, value in expected.items())


RULE_HEADER = "x-bria-mock-rule"
_PREFER_KEYS = {"code", "retry-after", "latency", "fault", "job", "job-polls"}


def rules_from_headers(headers: Mapping[str, str], now: float) -> list[Rule]:
    """One-off rules for this request alone (a webhook action: for its job's delivery):
    ``X-Bria-Mock-Rule`` (a rule or an action, as JSON)
    and Prism-style ``Prefer: code=503, retry-after=2`` (also ``latency=MS``, ``fault=NAME``,
    ``job=STATE``, ``job-polls=N``)."""
    found: list[Rule] = []
    raw = headers.get(RULE_HEADER)
    if raw:
        found.append(parse_rule(_header_json(raw), now, "header"))
    prefer = _prefer(headers.get("prefer", ""))
    if prefer:
        found.extend(parse_rule({"action": action}, now, "prefer") for action in _prefer_actions(prefer))
    return found


def _header_json(raw: str) -> Any:
    try:
        spec = parse_json(raw.encode("utf-8", "surrogatepass"))
    except BadRequest as exc:
        raise BadRequest(f"X-Bria-Mock-Rule: {exc.details.removeprefix('body: ')}") from None
    return {"action": spec} if isinstance(spec, dict) and "type" in spec else spec


def _prefer(value: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in value.replace(";", ",").split(","))
    named = {key.strip().lower(): val.strip() for key, val in (p for p in pairs if len(p) == 2)}
    return {key: val for key, val in named.items() if key in _PREFER_KEYS}  # names are case-insensitive


def _prefer_actions(prefer: Mapping[str, str]) -> list[dict[str, Any]]:
    try:
        actions: list[dict[str, Any]] = []
        if "latency" in prefer:
            actions.append({"type": "latency", "ms": float(prefer["latency"])})
        if "code" in prefer:
            extra = {"headers": {"Retry-After": prefer["retry-after"]}} if "retry-after" in prefer else {}
            actions.append({"type": "error", "status": int(prefer["code"]), **extra})
        if "fault" in prefer:
            actions.append({"type": "connection", "fault": prefer["fault"]})
        if "job" in prefer or "job-polls" in prefer:
            job: dict[str, Any] = {"type": "job", "state": prefer.get("job", "COMPLETED").upper()}
            if "job-polls" in prefer:
                job["polls"] = int(prefer["job-polls"])
            actions.append(job)
        return actions
    except ValueError:
        raise BadRequest(f"Prefer: a number was expected in {dict(prefer)}") from None


def load_rules_file(path: str, now: float) -> list[Rule]:
    """Rules from a JSON file: a list of rules, or ``{"rules": [...]}``. Errors name the file."""
    try:
        data = parse_json(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"rules file {path}: {exc}") from None
    except BadRequest as exc:
        raise ValueError(f"rules file {path}: {exc.details}") from None
    specs = data.get("rules", []) if isinstance(data, dict) else data
    if not isinstance(specs, list):
        raise ValueError(f'rules file {path}: expected a list of rules or {{"rules": [...]}}')
    try:
        return [parse_rule(spec, now, f"file-{index}") for index, spec in enumerate(specs, start=1)]
    except BadRequest as exc:
        raise ValueError(f"rules file {path}: {exc.details}") from None
