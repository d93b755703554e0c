"""The contract suite's parts: deviation checks, spend guard, target choice, client, recording and
drift, the report, and the ``verify`` command's own decisions."""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import Phase

from mock_server import drift, verify
from mock_server.contract_tests import profiles
from mock_server.contract_tests.client import BriaApi, Observer, as_curl
from mock_server.contract_tests.guard import MAX_SLEEP_SECONDS, SpendGuard
from mock_server.contract_tests.recording import Recorder
from mock_server.contract_tests.target import FAKE_TOKEN, Target, choose_target
from mock_server.drift import compare_recording
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image
from mock_server.verify import render_markdown
from mock_server.verify_report import build_report, check_api_response, check_image_response, status_is_documented

ACCEPTED: dict[str, Any] = {"request_id": "r1", "status_url": "http://bria.test/v2/status/r1"}
ERROR: dict[str, Any] = {"code": 400, "message": "Bad Request", "details": "image: required"}
ENVELOPE: dict[str, Any] = {"error": ERROR, "request_id": "r1"}
SECRET = "secret-token-5f3a"


def deviations(operation: str, status: int, body: Any, content_type: str = "application/json") -> set[tuple[str, str]]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        (found.kind, found.field) for found in check_api_response(operation, status, content_type, content).deviations
    }


# --- classifying deviations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "status", "body", "expected"),
    [
        ("remove_background", 202, ACCEPTED, set()),
        ("remove_background", 202, {"request_id": "r1"}, {("missing_field", "status_url")}),
        ("replace_background", 202, {**ACCEPTED, "eta": 3}, {("extra_field", "eta")}),
        ("replace_background", 202, {**ACCEPTED, "request_id": 7}, {("type_mismatch", "request_id")}),
        (
            "remove_background",
            400,
            {**ENVELOPE, "error": {**ERROR, "code": "400"}},
            {("type_mismatch", "error.code")},
        ),
        ("remove_background", 401, ENVELOPE, {("enum_mismatch", "error.code")}),
        ("status", 200, {"request_id": "r1", "status": "FAILED"}, {("enum_mismatch", "status")}),
        (
            "remove_background",
            200,
            {"request_id": "r1", "result": {}},
            {("missing_field", "result.image_url")},
        ),
        (
            "remove_background",
            418,
            {**ENVELOPE, "error": {**ERROR, "code": 418}},
            {("unexpected_status", "")},
        ),
        ("status", 415, {**ENVELOPE, "error": {**ERROR, "code": 415}}, {("unexpected_status", "")}),
        ("remove_background", 202, b"<html>busy</html>", {("invalid_json", "body")}),
    ],
    ids=[
        "conforms",
        "missing",
        "extra",
        "type",
        "code-string",
        "code-differs",
        "state",
        "nested",
        "418",
        "415-status",
        "html",
    ],
)
def test_each_deviation_is_classified_with_its_field(
    operation: str, status: int, body: Any, expected: set[tuple[str, str]]
) -> None:
    assert deviations(operation, status, body) == expected


def test_the_content_type_is_checked_on_its_own() -> None:
    assert deviations("remove_background", 202, ACCEPTED, "text/plain") == {("wrong_content_type", "Content-Type")}
    assert deviations("remove_background", 202, ACCEPTED, "application/json; charset=utf-8") == set()
    assert check_image_response(200, "image/png").deviations == ()
    assert [found.kind for found in check_image_response(200, "image/jpeg").deviations] == ["wrong_content_type"]


def test_documented_status_codes_come_from_the_openapi_document() -> None:
    assert status_is_documented("replace_background", 460)
    assert status_is_documented("remove_background", 503)  # listed as 5XX
    assert not status_is_documented("remove_background", 418)
    assert not status_is_documented("status", 422)


# --- the spend guard -----------------------------------------------------------------------


def test_only_accepted_posts_to_the_edit_endpoints_are_billable() -> None:
    guard = SpendGuard(max_calls=2)
    for method, billable_route, status in [
        ("POST", True, 200),
        ("POST", True, 202),
        ("POST", True, 400),
        ("GET", False, 200),
    ]:
        guard.count(method, billable_route, status)

    assert guard.billable_calls == 2
    assert not guard.allows_another_call()
    assert guard.refused == 1
    assert SpendGuard(max_calls=None, billable_calls=10_000).allows_another_call()


@pytest.mark.parametrize(
    ("retry_after", "attempt", "slept"),
    [
        ("2", 0, 2.0),
        ("Sat, 21 Nov 2026 10:00:05 GMT", 0, 5.0),
        ("86400", 0, MAX_SLEEP_SECONDS),
        (None, 0, 1.0),
        ("soon", 2, 4.0),
    ],
    ids=["seconds", "http-date", "bounded", "backoff", "unreadable-backoff"],
)
def test_a_429_waits_as_retry_after_asks_within_bounds(retry_after: str | None, attempt: int, slept: float) -> None:
    sleeps: list[float] = []
    now = email.utils.parsedate_to_datetime("Sat, 21 Nov 2026 10:00:00 GMT").timestamp()
    guard = SpendGuard(sleep=sleeps.append, clock=lambda: now)

    guard.wait_after_429(retry_after, attempt)

    assert sleeps == [pytest.approx(slept)]
    assert guard.should_retry(429, 2) and not guard.should_retry(429, 3) and not guard.should_retry(503, 0)


# --- choosing the target -------------------------------------------------------------------


def test_options_win_over_the_environment_and_nothing_means_the_fake() -> None:
    environ = {"BRIA_BASE_URL": "https://env.example/", "BRIA_API_TOKEN": "env-token"}

    assert choose_target("https://opt.example", "opt-token", environ).base_url == "https://opt.example"
    assert choose_target(None, None, environ).token == "env-token"
    assert choose_target(None, None, {}).base_url is None and choose_target(None, None, {}).token == FAKE_TOKEN
    reason = choose_target("https://opt.example", None, {}).missing_token_reason()
    assert reason is not None and "BRIA_API_TOKEN" in reason and "--bria-token" in reason


def test_the_profile_comes_from_the_option_then_the_environment_and_live_runs_never_shrink() -> None:
    assert profiles.choose_profile("ci", {"HYPOTHESIS_PROFILE": "quick"}) == "ci"
    assert profiles.choose_profile(None, {"HYPOTHESIS_PROFILE": "bria-ci"}) == "ci"
    assert profiles.choose_profile(None, {"HYPOTHESIS_PROFILE": "someone-elses"}) == "quick"
    previous = profiles.active(), profiles.is_live()
    try:
        profiles.use("quick", live=True)
        live = profiles.contract_settings()
        profiles.use("ci", live=False)
        nightly = profiles.contract_settings(cost=4)
    finally:
        profiles.use(previous[0], live=previous[1])

    assert live.max_examples == profiles.LIVE_QUICK_EXAMPLES and Phase.shrink not in live.phases
    assert nightly.max_examples == 50 and Phase.shrink in nightly.phases


# --- the client ----------------------------------------------------------------------------


@pytest.fixture
def make_api() -> Iterator[Callable[..., BriaApi]]:
    """``make_api(base_url, token, guard=None, **options)``: the suite's client, closed after the test."""
    made: list[BriaApi] = []

    def make(base_url: str, token: str, guard: SpendGuard | None = None, **options: Any) -> BriaApi:
        made.append(BriaApi(Target(base_url, token), guard or SpendGuard(max_calls=None), Observer(), **options))
        return made[-1]

    yield make
    for api in made:
        api.close()


def test_a_429_is_retried_three_times_then_the_test_is_skipped(
    bria_mock: BriaMock, make_api: Callable[..., BriaApi]
) -> None:
    sleeps: list[float] = []
    api = make_api(bria_mock.base_url, "bria-mock-429", SpendGuard(max_calls=None, sleep=sleeps.append))

    with pytest.raises(pytest.skip.Exception, match="rate limited"):
        api.status("any-id")

    assert sleeps == [1.0, 1.0, 1.0]  # the fake's Retry-After, three times
    assert len(api.observer.observations) == 4


def test_the_spend_cap_skips_before_sending(bria_mock: BriaMock, make_api: Callable[..., BriaApi]) -> None:
    api = make_api(bria_mock.base_url, "t", SpendGuard(max_calls=1))
    body = {"image": make_image("JPEG", size=(16, 16)).base64}

    assert api.submit("remove_background", body).status_code == 202
    with pytest.raises(pytest.skip.Exception, match="spend cap reached"):
        api.submit("remove_background", body)

    assert api.guard.billable_calls == 1
    assert len(api.observer.observations) == 1


def test_a_deviating_answer_fails_at_once_with_a_curl_reproduction(make_api: Callable[..., BriaApi]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(202, json={"request_id": "r1"}))
    api = make_api("http://bria.test", SECRET, transport=transport)

    with pytest.raises(AssertionError, match="missing_field status_url") as failure:
        api.submit("remove_background", {"image": "aGk="})

    assert "curl -sS -X POST http://bria.test/v2/image/edit/remove_background" in str(failure.value)
    assert SECRET not in str(failure.value)


def test_curl_shows_trigger_tokens_but_not_real_ones() -> None:
    secret = httpx.Request("GET", "http://bria.test/v2/status/x", headers={"api_token": SECRET})
    trigger = httpx.Request("GET", "http://bria.test/v2/status/x", headers={"api_token": "bria-mock-429"})

    assert '"api_token: $BRIA_API_TOKEN"' in as_curl(secret) and SECRET not in as_curl(secret)
    assert "'api_token: bria-mock-429'" in as_curl(trigger)


# --- recording and drift -------------------------------------------------------------------


@pytest.fixture
def recorded(bria_mock: BriaMock, tmp_path: Path, make_api: Callable[..., BriaApi]) -> Path:
    """A small recording of the fake: a sync call and its image, an async call polled to the end."""
    directory = tmp_path / "recording"
    api = make_api(bria_mock.base_url, SECRET, recorder=Recorder(directory, target=bria_mock.base_url, live=True))
    image = make_image("JPEG", size=(24, 16)).base64
    done = api.submit("remove_background", {"image": image, "sync": True}).json()
    api.download(done["result"]["image_url"])
    accepted = api.submit("replace_background", {"image": image, "prompt": "#00FF00", "original_quality": True})
    final = api.poll(accepted.json()["status_url"])[-1]
    api.download(final["result"]["image_url"])
    return directory


def edit_exchange(directory: Path, index: int, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / drift.EXCHANGES
    exchanges = [json.loads(line) for line in path.read_text().splitlines()]
    change(exchanges[index])
    path.write_text("".join(json.dumps(exchange) + "\n" for exchange in exchanges))


def test_a_recording_redacts_the_token_and_keeps_images_as_files(recorded: Path) -> None:
    _, exchanges = drift.load_recording(recorded)
    everything = "".join(path.read_text(errors="replace") for path in recorded.rglob("*") if path.is_file())

    assert SECRET not in everything
    assert exchanges[0]["request"]["headers"]["api_token"] == drift.REDACTED
    image = exchanges[0]["request"]["json"]["image"]
    assert hashlib.sha256((recorded / image["$file"]).read_bytes()).hexdigest() == image["sha256"]
    result = exchanges[1]["response"]["image"]
    assert (result["format"], result["mode"], result["size"]) == ("PNG", "RGBA", [24, 16])
    assert hashlib.sha256((recorded / result["file"]).read_bytes()).hexdigest() == result["sha256"]


def test_a_recording_of_the_fake_shows_no_drift(recorded: Path) -> None:
    report = compare_recording(recorded)

    assert report["ok"], report["differences"]
    assert report["compared"] == len(drift.load_recording(recorded)[1]) - 1  # the IN_PROGRESS poll is timing


def _add_field(exchange: dict[str, Any]) -> None:
    exchange["response"]["json"]["result"]["debug"] = True


def _plain_text(exchange: dict[str, Any]) -> None:
    exchange["response"]["headers"]["content-type"] = "text/plain"


def _grey(exchange: dict[str, Any]) -> None:
    exchange["response"]["image"]["mode"] = "L"


def _retry_after(exchange: dict[str, Any]) -> None:
    exchange["response"]["headers"]["retry-after"] = "30"


@pytest.mark.parametrize(
    ("index", "change", "aspect", "recorded_value", "fake_value"),
    [
        (0, _add_field, "field result.debug", "present", "absent"),
        (2, _plain_text, "header content-type", "text/plain", "application/json"),
        (1, _grey, "image mode", "L", "RGBA"),
        (0, _retry_after, "header retry-after", "30", None),
    ],
    ids=["field", "content-type", "image-mode", "retry-after"],
)
def test_a_recording_that_differs_in_one_thing_shows_exactly_that(
    recorded: Path,
    index: int,
    change: Callable[[dict[str, Any]], None],
    aspect: str,
    recorded_value: Any,
    fake_value: Any,
) -> None:
    edit_exchange(recorded, index, change)

    differences = compare_recording(recorded)["differences"]

    assert [(found["exchange"], found["aspect"], found["recorded"], found["fake"]) for found in differences] == [
        (index + 1, aspect, recorded_value, fake_value)
    ]


def test_verify_compare_exits_1_on_drift_and_writes_the_report(recorded: Path, tmp_path: Path) -> None:
    edit_exchange(recorded, 2, lambda exchange: exchange["response"].update(status=200))

    exit_code = verify.run_compare(recorded, tmp_path / "out")

    assert exit_code == 1
    assert (
        "`POST /v2/image/edit/replace_background` | status | `200` | `202`"
        in (tmp_path / "out" / "drift.md").read_text()
    )


# --- the report ----------------------------------------------------------------------------


def observation(test: str, status: int, found: list[dict[str, Any]]) -> dict[str, Any]:
    endpoint = "POST /v2/image/edit/remove_background"
    return {
        "test": test,
        "operation": "remove_background",
        "endpoint": endpoint,
        "status_code": status,
        "deviations": found,
    }


def test_the_report_has_a_row_per_endpoint_and_status_and_merges_repeated_deviations() -> None:
    missing = {"kind": "missing_field", "operation": "remove_background", "status_code": 202, "field": "status_url"}
    missing["detail"] = "documented as required, absent"
    seen = [observation("t::a", 202, [missing]), observation("t::b", 202, [missing]), observation("t::c", 200, [])]
    tests = [
        {"nodeid": "t::a", "outcome": "failed", "message": "boom"},
        {"nodeid": "t::c", "outcome": "passed", "message": ""},
    ]

    report = build_report(
        target={"url": "u", "live": True}, profile="quick", spend={"billable_calls": 3}, observations=seen, tests=tests
    )

    assert [(row["status_code"], row["result"], row["responses"]) for row in report["endpoints"]] == [
        (200, "pass", 1),
        (202, "fail", 2),
    ]
    assert [(entry["kind"], entry["field"], entry["count"], entry["tests"]) for entry in report["deviations"]] == [
        ("missing_field", "status_url", 2, ["t::a", "t::b"])
    ]
    assert report["summary"]["ok"] is False
    markdown = render_markdown(report)
    assert (
        "**FAIL**" in markdown
        and "| missing_field | `POST /v2/image/edit/remove_background` | 202 | `status_url` |" in markdown
    )


# --- the verify command --------------------------------------------------------------------


def verify_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    verify.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_verify_without_the_test_dependencies_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "hypothesis_jsonschema" else real_find_spec(name),
    )

    assert verify.run_verify(verify_args()) == 2
    assert "pip install 'bria-mock[verify]'" in capsys.readouterr().err


def test_verify_refuses_a_live_target_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BRIA_API_TOKEN", raising=False)

    assert verify.run_verify(verify_args("--target", "https://engine.example")) == 2
    assert "needs a token" in capsys.readouterr().err


def test_verify_passes_its_options_to_the_installed_suite(tmp_path: Path) -> None:
    args = verify_args(
        "--target", "https://e.example", "--token", "T", "--max-calls", "5", "--profile", "ci", "-k", "sync"
    )

    argv = verify.pytest_arguments(args, tmp_path / "pytest.ini", tmp_path)

    assert Path(argv[0]) == verify.suite_directory() and (verify.suite_directory() / "conftest.py").is_file()
    options = ("--bria-target", "--bria-token", "--bria-max-calls", "--bria-profile", "-k")
    assert {option: argv[argv.index(option) + 1] for option in options} == {
        "--bria-target": "https://e.example",
        "--bria-token": "T",
        "--bria-max-calls": "5",
        "--bria-profile": "ci",
        "-k": "sync",
    }
