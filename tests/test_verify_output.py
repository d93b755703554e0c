"""What ``bria-mock verify`` tells its user: the target on the first line (a bria-mock named as one),
progress on long work, why checks were skipped, what a drift comparison left out."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server import verify
from mock_server.contract_tests.client import BriaApi, Observer
from mock_server.contract_tests.guard import SpendGuard
from mock_server.contract_tests.recording import Recorder
from mock_server.contract_tests.target import Target, choose_target
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image
from mock_server.verify_report import build_report

NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port: nothing answers HTTP there


def test_without_target_verify_runs_the_fake_whatever_bria_base_url_says(tmp_path: Path) -> None:
    args = argparse_verify()

    argv = verify.pytest_arguments(args, tmp_path / "pytest.ini", tmp_path)
    line = verify.target_line(None, {"BRIA_BASE_URL": "http://127.0.0.1:8000"})

    assert argv[argv.index("--bria-target") + 1] == verify.FAKE_TARGET
    assert line.startswith("bria-mock verify: target: the fake, on a local port (no --target given)")
    assert "BRIA_BASE_URL=http://127.0.0.1:8000 is not read: pass --target to verify it" in line


def argparse_verify(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    verify.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_the_suite_option_fake_beats_an_exported_base_url() -> None:
    choice = choose_target(verify.FAKE_TARGET, None, {"BRIA_BASE_URL": "http://127.0.0.1:8000"})

    assert choice.base_url is None and not choice.live
    assert choice.describe() == "the fake, on a local port (from --bria-target fake)"


def test_a_running_fake_is_recognised_as_a_bria_mock(bria_mock: BriaMock) -> None:
    choice = choose_target(bria_mock.base_url, "t", {}).identified()

    assert verify.is_bria_mock(bria_mock.base_url)
    assert choice.describe() == f"{bria_mock.base_url} (a bria-mock, not Bria's service, from --bria-target)"
    assert verify.target_line(bria_mock.base_url, {}) == (
        f"bria-mock verify: target: {bria_mock.base_url} (a bria-mock, not Bria's service, from --target)"
    )


def test_a_url_that_does_not_answer_as_a_bria_mock_is_taken_as_live() -> None:
    assert not verify.is_bria_mock(NOTHING_LISTENS)
    assert verify.target_line(NOTHING_LISTENS, {}).endswith("(a live service, from --target)")


def test_a_long_test_gets_progress_lines() -> None:
    lines: list[tuple[str, int]] = []
    observer = Observer(on_progress=lambda test, responses, seconds: lines.append((test, responses)))
    observer.progress_seconds = 0
    observer.start_test("t::long")

    for _ in range(3):
        observer.add(object())  # type: ignore[arg-type]

    assert lines == [("t::long", 1), ("t::long", 2), ("t::long", 3)]


def test_a_short_test_gets_none() -> None:
    lines: list[object] = []
    observer = Observer(on_progress=lambda *progress: lines.append(progress))
    observer.start_test("t::short")

    observer.add(object())  # type: ignore[arg-type]

    assert lines == []


def test_the_report_says_why_checks_were_skipped() -> None:
    tests = [
        {"nodeid": "t::a", "outcome": "skipped", "message": "fake only: trigger tokens"},
        {"nodeid": "t::b", "outcome": "skipped", "message": "fake only: trigger tokens"},
        {"nodeid": "t::c", "outcome": "skipped", "message": "spend cap reached: 20 billable calls"},
        {"nodeid": "t::d", "outcome": "passed", "message": ""},
    ]
    report = build_report(target={"url": "u", "live": True}, profile="quick", spend={}, observations=[], tests=tests)

    markdown = verify.render_markdown(report)

    assert "## Skipped tests" in markdown
    assert "| fake only: trigger tokens | 2 | `a`, `b` |" in markdown
    assert "| spend cap reached: 20 billable calls | 1 | `c` |" in markdown


@pytest.fixture
def recording(bria_mock: BriaMock, tmp_path: Path) -> Iterator[Path]:
    """A recording of an async job polled to its end: its first poll answered IN_PROGRESS."""
    directory = tmp_path / "recording"
    recorder = Recorder(directory, target=bria_mock.base_url, live=True)
    api = BriaApi(Target(bria_mock.base_url, "t"), SpendGuard(max_calls=None), Observer(), recorder)
    accepted = api.submit(
        "replace_background", {"image": make_image("PNG", "RGB", (24, 16)).base64, "prompt": "#00FF00"}
    )
    api.poll(accepted.json()["status_url"])
    yield directory
    api.close()


def test_compare_shows_progress_and_lists_what_it_did_not_compare(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify.run_compare(recording, tmp_path / "out", progress_seconds=0) == 0

    output = capsys.readouterr().out
    drift_md = (tmp_path / "out" / "drift.md").read_text(encoding="utf-8")
    assert output.startswith(f"bria-mock verify --compare: replaying {recording} against a fresh fake")
    assert "of 3 exchanges replayed" in output
    assert "## Not compared" in drift_md
    assert "- In every exchange, field values (request ids" in drift_md
    assert "- 1 exchange(s), IN_PROGRESS: how long a job runs is timing, not contract (#2)" in drift_md


@pytest.mark.subprocess
def test_verify_with_an_exported_base_url_verifies_the_fake_and_leaves_no_hypothesis_folder(
    bria_mock: BriaMock, tmp_path: Path
) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("BRIA_", "HYPOTHESIS_"))}
    environment |= {"BRIA_BASE_URL": bria_mock.base_url, "BRIA_API_TOKEN": "anything"}
    command = [
        "bria-mock",
        "verify",
        "--report-dir",
        "report",
        "-k",
        "never_issued or (sync_and_async and remove_background)",
    ]

    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)

    assert done.stdout.splitlines()[0].startswith("bria-mock verify: target: the fake, on a local port"), done.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["target"]["live"] is False and report["summary"]["ok"], done.stdout
    assert not (tmp_path / "report" / ".hypothesis").exists() and not (tmp_path / ".hypothesis").exists()
