"""The contract suite's options, target, spend guard, profiles, recording and report.

One suite, two targets: the fake (default, served on a free local port) or a live base URL
(``--bria-target`` / ``BRIA_BASE_URL`` with ``--bria-token`` / ``BRIA_API_TOKEN``). Tests marked
``fake_only`` are skipped on a live target; tests marked ``risky`` (moderation-triggering or
deliberately broken requests) run live only with ``--bria-live-risky``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mock_server.config import Settings
from mock_server.contract_tests import profiles
from mock_server.contract_tests.client import PROGRESS_SECONDS, BriaApi, Observer, ProgressLine
from mock_server.contract_tests.guard import DEFAULT_MAX_CALLS, SpendGuard
from mock_server.contract_tests.recording import Recorder
from mock_server.contract_tests.target import Target, TargetChoice, choose_target
from mock_server.server import ServerThread
from mock_server.verify import FAKE_TARGET

SUITE_DIR = Path(__file__).resolve().parent
_OUTCOME_RANK = {"passed": 0, "skipped": 1, "failed": 2}
MESSAGE_CHARS = 2000


@dataclasses.dataclass
class SuiteRun:
    """This run's state: the target chosen, what was spent, what was seen, how each test ended."""

    choice: TargetChoice
    guard: SpendGuard
    observer: Observer = dataclasses.field(default_factory=Observer)
    target: Target | None = None
    tests: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


RUN = pytest.StashKey[SuiteRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bria", "bria-mock contract suite")
    group.addoption(
        "--bria-target",
        metavar="URL",
        help=f"base URL of a live service, or {FAKE_TARGET} for the fake whatever BRIA_BASE_URL says "
        "(default: BRIA_BASE_URL, else the fake)",
    )
    group.addoption("--bria-token", metavar="T", help="api_token for the live service (default: BRIA_API_TOKEN)")
    group.addoption(
        "--bria-max-calls",
        type=int,
        default=DEFAULT_MAX_CALLS,
        metavar="N",
        help=f"live runs: cap on billable calls (accepted edit requests), then skip (default {DEFAULT_MAX_CALLS})",
    )
    group.addoption(
        "--bria-live-risky",
        action="store_true",
        help="live runs: also send moderation-triggering and deliberately broken requests",
    )
    group.addoption("--bria-profile", choices=[profiles.QUICK, profiles.CI], help="Hypothesis profile (default quick)")
    group.addoption("--bria-record", metavar="DIR", help="save every exchange (token redacted, images as files)")
    group.addoption("--bria-report-dir", metavar="DIR", help="write report.json and report.md there")
    group.addoption(
        "--bria-poll-timeout", type=float, default=120.0, metavar="S", help="live runs: seconds to poll a job"
    )
    group.addoption(
        "--bria-progress-seconds",
        type=float,
        default=PROGRESS_SECONDS,
        metavar="S",
        help=f"a test still running gets a progress line this often (default {PROGRESS_SECONDS:g}; 0: every response)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fake_only(reason): needs the fake (trigger tokens, samples); skipped live")
    config.addinivalue_line(
        "markers", "risky: moderation-triggering or deliberately broken; live only with --bria-live-risky"
    )
    choice = choose_target(config.getoption("bria_target"), config.getoption("bria_token"), os.environ).identified()
    profiles.use(profiles.choose_profile(config.getoption("bria_profile"), os.environ), live=choice.live)
    guard = SpendGuard(max_calls=config.getoption("bria_max_calls") if choice.live else None)
    run = SuiteRun(choice, guard)
    run.observer.progress_seconds = config.getoption("bria_progress_seconds")
    run.observer.on_progress = _progress_printer(config)
    config.stash[RUN] = run


def _progress_printer(config: pytest.Config) -> ProgressLine | None:
    """Progress lines on pytest's terminal (none where there is no terminal, e.g. an xdist worker)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return None

    def say(test: str, responses: int, seconds: float) -> None:
        terminal.write_line(f"bria: still running {test}: {responses} responses in {seconds:.0f} s")

    return say


def pytest_report_header(config: pytest.Config) -> str:
    run = config.stash[RUN]
    return f"bria contract suite: target {run.choice.describe()}; profile {profiles.active()}; {run.guard.summary()}"


def _in_suite(item: pytest.Item) -> bool:
    return SUITE_DIR in item.path.resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason, what a live run must not or cannot do."""
    run = config.stash[RUN]
    no_token = run.choice.missing_token_reason()
    for item in filter(_in_suite, items):
        if no_token:
            item.add_marker(pytest.mark.skip(reason=no_token))
        elif run.choice.live and (marker := item.get_closest_marker("fake_only")):
            why = marker.args[0] if marker.args else "needs the fake"
            item.add_marker(pytest.mark.skip(reason=f"fake only: {why}"))
        elif run.choice.live and item.get_closest_marker("risky") and not config.getoption("bria_live_risky"):
            reason = "moderation-triggering or deliberately broken request: live only with --bria-live-risky"
            item.add_marker(pytest.mark.skip(reason=reason))


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bria_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The service under test: the live one chosen, or the fake with default settings on a free port."""
    run = request.config.stash[RUN]
    if run.choice.base_url is not None:
        run.target = Target(run.choice.base_url, run.choice.token or "", bria_mock=run.choice.bria_mock)
        yield run.target
        return
    settings = Settings()  # defaults only: a developer's BRIA_MOCK_* variables must not change the contract
    with ServerThread(settings) as server:
        run.target = Target(server.base_url, run.choice.token or "", settings)
        yield run.target


@pytest.fixture(scope="session")
def bria_api(request: pytest.FixtureRequest, bria_target: Target) -> Iterator[BriaApi]:
    """The suite's client on the target: spend-guarded, contract-checked, recorded when asked."""
    run = request.config.stash[RUN]
    record = request.config.getoption("bria_record")
    recorder = Recorder(Path(record), target=bria_target.base_url, live=bria_target.live) if record else None
    api = BriaApi(
        bria_target, run.guard, run.observer, recorder, poll_timeout=request.config.getoption("bria_poll_timeout")
    )
    yield api
    api.close()


@pytest.fixture(autouse=True)
def _bria_current_test(request: pytest.FixtureRequest) -> None:
    """Responses are attributed to the test that caused them."""
    request.config.stash[RUN].observer.start_test(request.node.nodeid)


# --- outcomes, curl reproductions, report -------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record each test's outcome; a failing one gets its last requests as curl commands."""
    report = yield
    run = item.config.stash[RUN]
    if report.failed and run.observer.curl_log:
        report.sections.append(("bria: the last requests, as curl", "\n\n".join(run.observer.curl_log)))
    if report.when == "call" or not report.passed:
        _record_outcome(run, report)
    return report


def _record_outcome(run: SuiteRun, report: pytest.TestReport) -> None:
    outcome = report.outcome
    previous = run.tests.get(report.nodeid)
    if previous is not None and _OUTCOME_RANK[previous["outcome"]] >= _OUTCOME_RANK[outcome]:
        return
    message = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        message = str(report.longrepr[2]).removeprefix("Skipped: ")
    elif report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = str(crash.message) if crash is not None else report.longreprtext.strip()[-MESSAGE_CHARS:]
    run.tests[report.nodeid] = {"nodeid": report.nodeid, "outcome": outcome, "message": message[:MESSAGE_CHARS]}


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN, None)
    directory = session.config.getoption("bria_report_dir")
    if run is None or not directory:
        return
    from mock_server.verify import write_report
    from mock_server.verify_report import build_report

    target = run.target or Target(run.choice.base_url or "", "")
    report = build_report(
        target={
            "url": target.base_url or None,
            "live": run.choice.live,
            "source": run.choice.source,
            "bria_mock": run.choice.bria_mock,
        },
        profile=profiles.active(),
        spend=run.guard.as_dict(),
        observations=[observation.as_dict() for observation in run.observer.observations],
        tests=list(run.tests.values()),
    )
    write_report(report, Path(directory))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None or not run.tests:
        return
    deviations = sum(len(observation.verdict.deviations) for observation in run.observer.observations)
    where = run.target.label if run.target else (run.choice.base_url or "the fake")
    terminalreporter.section("bria contract suite")
    terminalreporter.write_line(f"target: {where}")
    terminalreporter.write_line(f"spent: {run.guard.summary()}")
    terminalreporter.write_line(f"checked: {len(run.observer.observations)} responses, {deviations} deviation(s)")
    if config.getoption("bria_report_dir"):
        terminalreporter.write_line(f"report: {config.getoption('bria_report_dir')}/report.json and report.md")
