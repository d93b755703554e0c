"""Fault rules on the shared store: one rule book, and exact counters, for every process.

A rule's ``matched`` count is one atomic increment, so the n-th matching call is the n-th in every
process; whether it fires (``calls``, ``after``, ``for_seconds``, ``schedule``, the seeded draw of
call n) is a function of n, and ``times`` and ``fired`` are checked and counted by one script: a rule
with ``times: 3`` fires exactly three times however many processes see matching calls.

Keys: ``rules`` (id -> spec), ``rules-order`` (ids in the order added), ``rule-counts`` (``<id>:matched``,
``<id>:fired``), ``rule-history:<id>`` (a ring of the last ``HISTORY_KEPT`` calls), ``rule-ids``; each
change bumps ``rules-version``, which every request reads (see ``SharedView``). Counters are kept under
a rule's own number (``rule-numbers``, never reset), not its id: a rule added again with the same id
after a reset (``flaky`` in every test) starts from nothing, whatever a request in flight still counts.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mock_server.errors import BadRequest
from mock_server.rules import HISTORY_KEPT, Decision, Rule, Traffic, check_unique
from mock_server.state.redis_store import RULES_VERSION, decode, encode

if TYPE_CHECKING:
    from mock_server.state.redis_store import Store

# Add rules unless an id is taken. KEYS: rules, order, version. ARGV: only-missing flag, then id, spec pairs.
_ADD = """
local only_missing = ARGV[1] == '1'
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 and not only_missing then return ARGV[i] end
end
for i = 2, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[i]) end
end
redis.call('INCR', KEYS[3])
return ''
"""
# Record whether call n fires, unless ``times`` are used up. KEYS: counts, history.
# ARGV: id, n, candidate (1/0), times (-1: none), ring size.
_RECORD = """
local fire = ARGV[3] == '1'
local times = tonumber(ARGV[4])
if fire and times >= 0 and tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':fired') or '0') >= times then
  fire = false
end
if fire then redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':fired', 1) end
redis.call('SETRANGE', KEYS[2], (tonumber(ARGV[2]) - 1) % tonumber(ARGV[5]), fire and '1' or '0')
if fire then return 1 end
return 0
"""


class SharedRule(Rule):
    """A rule whose counters live on the store, under its number."""

    store: Store | None = None
    number: str = ""

    def _count_match(self) -> int:
        assert self.store is not None
        return int(self.store.client.hincrby(self.store.key("rule-counts"), f"{self.number}:matched", 1))

    def _record(self, call: int, fire: bool) -> bool:
        assert self.store is not None
        keys = [self.store.key("rule-counts"), self.store.key("rule-history", self.number)]
        times = self.spec.get("times", -1)
        record = self.store.script("record-rule", _RECORD)
        return bool(record(keys=keys, args=[self.number, call, int(fire), times, HISTORY_KEPT]))

    def read_counts(self) -> SharedRule:
        """Fill ``matched``, ``fired`` and ``history`` from the store (for showing the rule)."""
        assert self.store is not None
        counts = self.store.key("rule-counts")
        matched, fired = self.store.client.hmget(counts, f"{self.number}:matched", f"{self.number}:fired")
        self.matched, self.fired = int(matched or 0), int(fired or 0)
        ring = self.store.client.get(self.store.key("rule-history", self.number)) or b""
        calls = range(max(1, self.matched - HISTORY_KEPT + 1), self.matched + 1)
        slots = [(call - 1) % HISTORY_KEPT for call in calls]
        self.history = collections.deque((ring[slot : slot + 1] == b"1" for slot in slots), maxlen=HISTORY_KEPT)
        return self


class RedisRuleBook:
    """``rules.RuleBook`` on the store: rules added on any process apply on all of them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys = [store.key("rules"), store.key("rules-order"), RULES_VERSION]
        self._add = store.script("add-rules", _ADD)
        self._cached: tuple[int, list[SharedRule]] = (-1, [])

    def next_id(self) -> str:
        return f"rule-{self._store.client.incr(self._store.key('rule-ids'))}"

    def add(self, rules: Iterable[Rule]) -> list[Rule]:
        return self._put(list(rules), only_missing=False)

    def add_missing(self, rules: Iterable[Rule]) -> list[Rule]:
        """Add the rules whose ids are not there yet (a rules file, loaded by every process)."""
        return self._put(list(rules), only_missing=True)

    def _put(self, rules: list[Rule], *, only_missing: bool) -> list[Rule]:
        check_unique(rules)
        first = int(self._store.client.incrby(self._store.key("rule-numbers"), len(rules))) - len(rules) + 1
        pairs = itertools.chain.from_iterable(
            (rule.id, _record(rule, str(first + index))) for index, rule in enumerate(rules)
        )
        taken = self._add(keys=self._keys, args=[int(only_missing), *pairs])
        self._store.view.forget()
        if taken:
            raise BadRequest(f"rule: id {taken.decode()} is already in use")
        return rules

    def remove(self, rule_id: str, token: str | None = None) -> bool:
        rule = next((rule for rule in self._current() if rule.id == rule_id), None)
        if rule is None or (token is not None and rule.spec.get("token") != token):
            return False
        self._delete([rule])
        return True

    def clear(self, token: str | None = None) -> None:
        if token is None:
            self._store.delete_matching("rule-history:*")
            self._store.client.delete(self._keys[0], self._keys[1], self._store.key("rule-counts"))
            self._store.client.incr(RULES_VERSION)
            self._store.view.forget()
            return
        self._delete([rule for rule in self._current() if rule.spec.get("token") == token])

    def __bool__(self) -> bool:
        return bool(self._current())

    def decide(self, traffic: Traffic, now: float, extra: Iterable[Rule] = ()) -> Decision:
        decision = Decision()
        for rule in itertools.chain(extra, self._current()):
            if rule.matches(traffic) and rule.fires(now):
                decision.fired.append(rule)
        return decision

    def _delete(self, rules: list[SharedRule]) -> None:
        if not rules:
            return
        pipe = self._store.client.pipeline(transaction=True)
        pipe.hdel(self._keys[0], *(rule.id for rule in rules))
        for rule in rules:
            pipe.lrem(self._keys[1], 0, rule.id)
            pipe.hdel(self._store.key("rule-counts"), f"{rule.number}:matched", f"{rule.number}:fired")
            pipe.delete(self._store.key("rule-history", rule.number))
        pipe.incr(RULES_VERSION)
        pipe.execute()
        self._store.view.forget()

    def _current(self) -> list[SharedRule]:
        """The rules in the order added, read again only when a process has changed them."""
        version = self._store.view.values()[1]
        if self._cached[0] != version:
            order = [rule_id.decode() for rule_id in self._store.client.lrange(self._keys[1], 0, -1)]
            specs = self._store.client.hmget(self._keys[0], order) if order else []
            rules = [_rule(self._store, raw) for raw in specs if raw is not None]
            self._cached = (version, rules)
        return self._cached[1]

    def list(self, token: str | None = None) -> list[Rule]:
        return [rule.read_counts() for rule in self._current() if token is None or rule.spec.get("token") == token]


def _record(rule: Rule, number: str) -> bytes:
    return encode({"spec": rule.spec, "added_at": rule.added_at, "number": number})


def _rule(store: Store, raw: bytes) -> SharedRule:
    record: dict[str, Any] = decode(raw)
    rule = SharedRule(spec=record["spec"], id=record["spec"]["id"], added_at=record["added_at"])
    rule.store, rule.number = store, record["number"]
    return rule
