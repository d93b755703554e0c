"""Hypothesis profiles of the contract suite: ``quick`` for every day, ``ci`` for the nightly run.

They apply to the suite's own tests only (through :func:`contract_settings`), never through
``settings.load_profile``: a project that runs the suite beside its own tests keeps its profile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hypothesis import HealthCheck, Phase, settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
QUICK = "quick"
CI = "ci"
# Every example against a live service is a billable call: quick live runs stay tiny.
LIVE_QUICK_EXAMPLES = 3

_SLOW_IO = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile(
    "bria-quick",
    # Derandomized: the everyday run tests the same examples each time, so it never flakes.
    settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=_SLOW_IO),
)
settings.register_profile(
    "bria-ci",
    settings(max_examples=200, deadline=None, database=None, suppress_health_check=_SLOW_IO),
)


@dataclasses.dataclass
class _Active:
    name: str = QUICK
    live: bool = False


_active = _Active()


def choose_profile(option: str | None, environ: Mapping[str, str]) -> str:
    """``--bria-profile`` wins; else ``HYPOTHESIS_PROFILE`` when it names one of ours; else quick."""
    if option:
        return option
    named = environ.get(PROFILE_VARIABLE, "").removeprefix("bria-")
    return named if named in (QUICK, CI) else QUICK


def use(name: str, *, live: bool) -> None:
    """Make ``name`` the profile of this run's contract tests (called once, at configure time)."""
    if name not in (QUICK, CI):
        raise ValueError(f"unknown contract profile {name!r}: use {QUICK} or {CI}")
    _active.name, _active.live = name, live


def active() -> str:
    return _active.name


def is_live() -> bool:
    return _active.live


# The quick profile's examples for one property over the whole operation table, shared out among
# the operations (the ci profile runs its full count for each).
QUICK_TABLE_EXAMPLES = 72


def contract_settings(cost: int = 1, spread: int = 1) -> settings:
    """Settings for one property: the active profile's examples, divided by what each example costs
    and, in the quick profile, shared among the ``spread`` operations the property is run for."""
    base = settings.get_profile(f"bria-{_active.name}")
    examples = max(2, base.max_examples // cost)
    if _active.name == QUICK and spread > 1:
        examples = max(2, min(examples, QUICK_TABLE_EXAMPLES // spread // cost))
    if not _active.live:
        return settings(base, max_examples=examples)
    if _active.name == QUICK:
        examples = min(examples, LIVE_QUICK_EXAMPLES)
    # Live, every shrinking step is another billable call: report the failing example as found.
    phases = [phase for phase in base.phases if phase is not Phase.shrink]
    return settings(base, max_examples=examples, phases=phases)
