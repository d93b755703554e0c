"""``bria-mock verify``: run the installed contract suite against the fake or a live service and
write its report; or, with ``--compare``, replay a recording against the fake and report drift.

pytest and Hypothesis are needed only here, and are not runtime dependencies: they come with the
``verify`` extra (``pip install 'bria-mock[verify]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_REPORT_DIR = "bria-verify-report"
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
# Live runs cost money: at most this many billable calls unless told otherwise.
DEFAULT_MAX_CALLS = 20
BASE_URL_VARIABLE = "BRIA_BASE_URL"
TOKEN_VARIABLE = "BRIA_API_TOKEN"
# ``--bria-target fake``: the suite serves the fake itself, whatever BRIA_BASE_URL says.
FAKE_TARGET = "fake"
# How a bria-mock names itself in its OpenAPI document's title (mock_server.openapi).
BRIA_MOCK_TITLE_MARK = "bria-mock"
PROBE_TIMEOUT_SECONDS = 5.0
# Long work reports progress this often (the suite's long tests, and --compare).
DEFAULT_PROGRESS_SECONDS = 15.0
TEST_DEPENDENCIES = ("pytest", "hypothesis", "hypothesis_jsonschema")
INSTALL_HINT = "pip install 'bria-mock[verify]'"
# Hypothesis's pytest plugin (its pytest11 entry point), loaded by name when autoloading is off.
HYPOTHESIS_PLUGIN = "_hypothesis_pytestplugin"
# The suite's own pytest configuration: a project's pytest.ini or pyproject.toml must not apply to it.
_SUITE_INI = """\
[pytest]
addopts = --strict-markers --import-mode=importlib -p no:cacheprovider
xfail_strict = true
"""


def add_verify_parser(subparsers: Any) -> None:
    """Add the ``verify`` subcommand to ``bria-mock``'s subparsers."""
    parser = subparsers.add_parser(
        "verify",
        help="run the contract suite against the fake or a live service and write a report",
        description=(
            "Run bria-mock's contract suite (schemas, status codes, content types, Hypothesis properties) "
            "against the fake (default) or a live service, and write report.json and report.md. "
            "With --compare, replay a recording against the fake instead and write drift.json and drift.md. "
            "Exit status: 0 all passed, 1 a failure, a deviation or drift, 2 a usage error or missing dependencies."
        ),
    )
    configure_parser(parser)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        metavar="URL",
        help=f"base URL of a live service (default: the fake, on a local port; {BASE_URL_VARIABLE} is not read)",
    )
    parser.add_argument("--token", metavar="T", help="api_token for the live service (default: BRIA_API_TOKEN)")
    parser.add_argument(
        "--report-dir",
        metavar="DIR",
        default=DEFAULT_REPORT_DIR,
        help=f"where reports go (default {DEFAULT_REPORT_DIR})",
    )
    parser.add_argument(
        "--max-calls",
        type=int,
        default=DEFAULT_MAX_CALLS,
        metavar="N",
        help=f"live runs: at most N billable calls, then tests are skipped (default {DEFAULT_MAX_CALLS})",
    )
    parser.add_argument("--profile", choices=["quick", "ci"], help="Hypothesis profile: quick (default) or ci (large)")
    parser.add_argument("--record", metavar="DIR", help="save every exchange there (token redacted, images as files)")
    parser.add_argument(
        "--compare", metavar="RECORDING_DIR", help="do not run the suite: replay this recording against the fake"
    )
    parser.add_argument(
        "--live-risky", action="store_true", help="live runs: also send moderation-triggering and broken requests"
    )
    parser.add_argument(
        "--poll-timeout", type=float, metavar="S", help="live runs: seconds to poll one job (default 120)"
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=DEFAULT_PROGRESS_SECONDS,
        metavar="S",
        help=f"long work says how it is getting on this often (default {DEFAULT_PROGRESS_SECONDS:g})",
    )
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="only the tests matching EXPR (as pytest -k)")


def run_verify(args: argparse.Namespace) -> int:
    """Run ``bria-mock verify``; the process exit status."""
    if args.compare:
        return run_compare(Path(args.compare), Path(args.report_dir), args.progress_seconds)
    missing = [name for name in TEST_DEPENDENCIES if importlib.util.find_spec(name) is None]
    if missing:
        print(f"bria-mock verify needs {', '.join(missing)}: {INSTALL_HINT}", file=sys.stderr)
        return 2
    # The target is what the command line names, never a variable exported for something else
    # (the SDK reads BRIA_BASE_URL too, and it often points at a running fake).
    target = args.target
    if target and not (args.token or os.environ.get(TOKEN_VARIABLE)):
        print(f"bria-mock verify: a live target ({target}) needs a token: --token or BRIA_API_TOKEN", file=sys.stderr)
        return 2
    print(target_line(target, os.environ), flush=True)
    return run_suite(args, Path(args.report_dir))


def target_line(target: str | None, environ: Mapping[str, str]) -> str:
    """The first line of a run: what is verified, and why that target."""
    if target is None:
        line = "bria-mock verify: target: the fake, on a local port (no --target given)"
        if environ.get(BASE_URL_VARIABLE):
            line += f"; {BASE_URL_VARIABLE}={environ[BASE_URL_VARIABLE]} is not read: pass --target to verify it"
        return line
    kind = "a bria-mock, not Bria's service" if is_bria_mock(target) else "a live service"
    return f"bria-mock verify: target: {target} ({kind}, from --target)"


def is_bria_mock(base_url: str) -> bool:
    """Whether ``base_url`` serves a bria-mock: its ``/openapi.json`` names itself in its title.

    One GET that no service bills; any failure (no such document, not JSON, no answer) means no.
    """
    import httpx  # a dependency of the package; imported here to keep the CLI's start-up light

    try:
        answer = httpx.get(f"{base_url.rstrip('/')}/openapi.json", timeout=PROBE_TIMEOUT_SECONDS)
        title = answer.json().get("info", {}).get("title", "") if answer.status_code == 200 else ""
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return isinstance(title, str) and BRIA_MOCK_TITLE_MARK in title


def run_suite(args: argparse.Namespace, report_dir: Path) -> int:
    import pytest

    report_path = report_dir / REPORT_JSON
    report_path.unlink(missing_ok=True)  # a stale report must not pass for this run's
    with tempfile.TemporaryDirectory(prefix="bria-verify-") as scratch:
        ini = Path(scratch) / "pytest.ini"
        ini.write_text(_SUITE_INI, encoding="utf-8")
        with _hypothesis_storage(Path(scratch) / "hypothesis"):
            exit_code = int(pytest.main(pytest_arguments(args, ini, report_dir)))
    if not report_path.is_file():
        print(f"bria-mock verify: the suite wrote no report (pytest exit status {exit_code})", file=sys.stderr)
        return exit_code or 2
    report = json.loads(report_path.read_text(encoding="utf-8"))
    print(summary_line(report, report_dir))
    if exit_code not in (0, 1):  # interrupted, internal or usage error, no tests: not a verdict
        return exit_code
    return 0 if report["summary"]["ok"] and exit_code == 0 else 1


@contextlib.contextmanager
def _hypothesis_storage(scratch: Path) -> Iterator[None]:
    """Hypothesis's bit of disk state goes to a scratch folder, not beside the report or into the working
    directory; a storage directory the user chose is kept."""
    from hypothesis.configuration import set_hypothesis_home_dir

    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    set_hypothesis_home_dir(scratch)
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)


def pytest_arguments(args: argparse.Namespace, ini: Path, report_dir: Path) -> list[str]:
    """The pytest command line that runs the installed suite with this verify run's options.

    Installed pytest plugins are not loaded (a coverage, random-order or timeout plugin would change
    the run, and loading them all is slow), except Hypothesis's own.
    """
    suite = suite_directory()
    argv = [str(suite), "-c", str(ini), "--rootdir", str(suite), "-rfEs", "--bria-report-dir", str(report_dir)]
    argv += ["--disable-plugin-autoload", "-p", HYPOTHESIS_PLUGIN]
    argv += ["--bria-max-calls", str(args.max_calls), "--bria-progress-seconds", str(args.progress_seconds)]
    options = {
        "--bria-target": args.target or FAKE_TARGET,
        "--bria-token": args.token,
        "--bria-profile": args.profile,
        "--bria-record": args.record,
        "--bria-poll-timeout": args.poll_timeout,
        "-k": args.keyword,
    }
    for option, value in options.items():
        if value is not None:
            argv += [option, str(value)]
    if args.live_risky:
        argv.append("--bria-live-risky")
    return argv


def suite_directory() -> Path:
    """The installed contract suite (``mock_server/contract_tests``, or the checkout's folder)."""
    # Imported by name: the package must not depend on its test kit, for type checkers included.
    suite = importlib.import_module("mock_server.contract_tests")
    return Path(str(suite.__file__)).resolve().parent


def summary_line(report: dict[str, Any], report_dir: Path) -> str:
    summary, tests, spend = report["summary"], report["summary"]["tests"], report["spend"]
    verdict = "PASS" if summary["ok"] else "FAIL"
    counts = f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
    return (
        f"bria-mock verify: {verdict} against {_target_text(report['target'])}: {counts}; "
        f"{summary['deviations']} deviation(s) in {summary['responses']} responses; "
        f"{spend['billable_calls']} billable call(s); report: {report_dir / REPORT_MARKDOWN}"
    )


def run_compare(recording_dir: Path, report_dir: Path, progress_seconds: float = DEFAULT_PROGRESS_SECONDS) -> int:
    """Replay a recording against a fresh fake and write the drift report."""
    from mock_server.drift import compare_recording, write_drift_report

    print(f"bria-mock verify --compare: replaying {recording_dir} against a fresh fake", flush=True)
    try:
        report = compare_recording(recording_dir, progress=_compare_progress(progress_seconds))
    except (OSError, ValueError) as exc:
        print(f"bria-mock verify --compare: {exc}", file=sys.stderr)
        return 2
    _, markdown = write_drift_report(report, report_dir)
    verdict = "no drift" if report["ok"] else f"DRIFT: {len(report['differences'])} difference(s)"
    print(f"bria-mock verify --compare: {verdict} in {report['compared']} compared exchanges; report: {markdown}")
    return 0 if report["ok"] else 1


def _compare_progress(every: float) -> Callable[[int, int], None]:
    """A progress callback printing "N of M exchanges replayed" at most every ``every`` seconds."""
    started = last = time.monotonic()

    def say(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every and done < total:
            last = now
            print(
                f"bria-mock verify --compare: {done} of {total} exchanges replayed ({now - started:.0f} s)", flush=True
            )

    return say


# --- writing ------------------------------------------------------------------------------


def write_report(report: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / REPORT_JSON, directory / REPORT_MARKDOWN
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, markdown_path


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report for people: verdict, spend, the endpoint table, deviations, failed tests."""
    summary, tests = report["summary"], report["summary"]["tests"]
    lines = [
        "# bria-mock contract report",
        "",
        f"- Target: {_target_text(report['target'])}",
        f"- Verdict: **{'PASS' if summary['ok'] else 'FAIL'}**: {tests['passed']} passed, {tests['failed']} failed, "
        f"{tests['skipped']} skipped; {summary['responses']} responses checked, {summary['deviations']} deviation(s)",
        f"- Hypothesis profile: {report['profile']}",
        f"- Spend: {_spend_line(report['spend'])}",
        f"- Created: {report['created']}",
        "",
        "## Endpoints",
        "",
        "| endpoint | status | responses | deviations | result |",
        "|---|---:|---:|---:|---|",
    ]
    for row in report["endpoints"]:
        result = "pass" if row["result"] == "pass" else "**fail**"
        lines.append(
            f"| `{row['endpoint']}` | {row['status_code']} | {row['responses']} | {row['deviations']} | {result} |"
        )
    lines += ["", "## Deviations", ""]
    if report["deviations"]:
        lines += ["| kind | endpoint | status | field | detail | seen |", "|---|---|---:|---|---|---:|"]
        for entry in report["deviations"]:
            cells = [entry["kind"], f"`{entry['endpoint']}`", str(entry["status_code"]), f"`{entry['field']}`"]
            cells += [_cell(entry["detail"]), str(entry["count"])]
            lines.append(f"| {' | '.join(cells)} |")
    else:
        lines.append("None: every response matched its schema, status code and content type.")
    failed = [test for test in report["tests"] if test["outcome"] == "failed"]
    if failed:
        lines += ["", "## Failed tests", ""]
        lines += [f"- `{test['nodeid']}`: {_cell(test.get('message', ''))}" for test in failed]
    return "\n".join(lines + _skipped_section(report["tests"])) + "\n"


def _target_text(target: Mapping[str, Any]) -> str:
    if not target.get("live"):
        return f"{target.get('url')} (the fake, on a local port)"
    kind = "a bria-mock, not Bria's service" if target.get("bria_mock") else "live"
    return f"{target.get('url')} ({kind}, from {target.get('source')})"


def _skipped_section(tests: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why checks were skipped: each reason once, with how many tests and which."""
    reasons: dict[str, list[str]] = {}
    for test in tests:
        if test["outcome"] == "skipped":
            reasons.setdefault(test.get("message") or "no reason given", []).append(test["nodeid"])
    if not reasons:
        return []
    lines = ["", "## Skipped tests", "", "| reason | tests | which |", "|---|---:|---|"]
    for reason, nodeids in sorted(reasons.items(), key=lambda item: -len(item[1])):
        names = ", ".join(f"`{nodeid.rsplit('::', 1)[-1]}`" for nodeid in nodeids[:5])
        lines.append(f"| {_cell(reason)} | {len(nodeids)} | {names}{', ...' if len(nodeids) > 5 else ''} |")
    return lines


def _spend_line(spend: Mapping[str, Any]) -> str:
    cap = spend.get("max_calls")
    text = f"{spend.get('billable_calls', 0)} billable call(s) of {'no cap' if cap is None else cap}"
    if spend.get("refused_by_cap"):
        text += f"; {spend['refused_by_cap']} refused by the cap"
    if spend.get("rate_limited"):
        text += f"; {spend['rate_limited']} rate-limited answer(s)"
    return text


def _cell(text: str) -> str:
    """One Markdown table cell: one line, no pipes, not too long."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= 200 else f"{flat[:197]}..."


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mock_server.verify``: the same as ``bria-mock verify``."""
    parser = argparse.ArgumentParser(prog="bria-mock verify")
    configure_parser(parser)
    return run_verify(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
