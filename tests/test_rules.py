"""The rule model and its four surfaces: header, rules file, admin API, Python API."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from mock_server.config import Settings
from mock_server.fixtures.plugin import BriaMock
from mock_server.server import ServerThread

RMBG = "/v2/image/edit/remove_background"
FAIL_TWICE = {"endpoint": "remove_background", "action": {"type": "error", "status": 503}, "times": 2}


def codes(api: httpx.Client, mock: BriaMock, n: int = 3, **extra: object) -> list[int]:
    return [api.post(RMBG, json={"image": mock.url("/samples/subject.jpg"), **extra}).status_code for _ in range(n)]


def test_python_api_fail_twice_then_succeed(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    bria_inprocess.add_rule(FAIL_TWICE)

    assert codes(api, bria_inprocess) == [503, 503, 202]


def test_admin_api_add_list_delete_and_reset(socket_api: httpx.Client, bria_mock: BriaMock, client_for) -> None:  # type: ignore[no-untyped-def]
    admin = client_for(bria_mock.base_url, token=None)
    added = admin.post("/bria-mock/rules", json={**FAIL_TWICE, "id": "flaky"})
    assert added.status_code == 201
    assert codes(socket_api, bria_mock, 1) == [503]

    listed = admin.get("/bria-mock/rules").json()["rules"]
    assert [(rule["id"], rule["fired"]) for rule in listed] == [("flaky", 1)]
    assert admin.delete("/bria-mock/rules/flaky").status_code == 200
    assert codes(socket_api, bria_mock, 1) == [202]
    assert admin.delete("/bria-mock/rules/flaky").status_code == 404

    admin.post("/bria-mock/rules", json=FAIL_TWICE)
    assert admin.post("/bria-mock/reset", json={}).status_code == 200
    assert admin.get("/bria-mock/rules").json()["rules"] == []


def test_admin_api_refuses_a_bad_rule_with_the_envelope(bria_mock: BriaMock) -> None:
    response = httpx.post(bria_mock.url("/bria-mock/rules"), json={"action": {"type": "error", "status": "x"}})

    assert response.status_code == 400
    assert response.json()["error"]["details"].startswith("rule: ")


def test_rules_file_at_start(tmp_path: Path, client_for) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [FAIL_TWICE]}))
    with ServerThread(Settings(rules_file=str(rules))) as server:
        api = client_for(server.base_url)
        mock = BriaMock.serving(server)
        assert codes(api, mock) == [503, 503, 202]
        server.reset()  # a reset brings the file's rules back, fresh
        assert codes(api, mock) == [503, 503, 202]


@pytest.mark.subprocess
def test_a_broken_rules_file_is_a_clear_error_at_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"action": {"type": "nope"}}]))

    done = subprocess.run(
        ["bria-mock", "serve", "--port", "0", "--rules", str(rules)], capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 2
    assert f"rules file {rules}: rule: " in done.stderr


def test_header_rules_apply_to_that_request_only(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    image = bria_inprocess.url("/samples/subject.jpg")
    first = api.post(RMBG, json={"image": image}, headers={"X-Bria-Mock-Rule": json.dumps(FAIL_TWICE)})

    assert first.status_code == 503
    assert codes(api, bria_inprocess, 2) == [202, 202]


def test_match_on_body_fields_method_and_call_count(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    bria_inprocess.add_rules(
        {"body": {"sync": True}, "method": "POST", "action": {"type": "error", "status": 500}},
        {"endpoint": "remove_background", "calls": [2], "action": {"type": "error", "status": 502}},
    )

    assert codes(api, bria_inprocess, 1, sync=True) == [500]
    assert codes(api, bria_inprocess, 3) == [502, 202, 202]  # the 2nd matching call: the sync one was the 1st


def test_seeded_probability_replays_the_same_schedule(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    rule = {"endpoint": "remove_background", "action": {"type": "error", "status": 503}, "probability": 0.5, "seed": 7}

    schedules = []
    for _ in range(2):
        bria_inprocess.reset()
        bria_inprocess.add_rule(rule)
        schedules.append(codes(api, bria_inprocess, 12))

    assert schedules[0] == schedules[1]
    assert {503, 202} == set(schedules[0])


def test_an_explicit_schedule_fires_exactly_where_it_says(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    bria_inprocess.add_rule({"action": {"type": "error", "status": 500}, "schedule": [False, True, True, False]})

    assert codes(api, bria_inprocess, 5) == [202, 500, 500, 202, 202]
    assert list(bria_inprocess.rules()[0].history) == [False, True, True, False, False]


def test_for_seconds_limits_a_rule_on_the_virtual_clock(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    bria_inprocess.add_rule({"action": {"type": "error", "status": 503}, "for_seconds": 60})
    assert codes(api, bria_inprocess, 1) == [503]

    bria_inprocess.advance(60)

    assert codes(api, bria_inprocess, 1) == [202]


def test_namespaces_keep_tokens_apart(bria_mock: BriaMock, client_for) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client_for(bria_mock.base_url, token="alice"), client_for(bria_mock.base_url, token="bob")
    alice.post("/bria-mock/rules", json={"endpoint": "remove_background", "action": {"type": "error", "status": 503}})
    bobs_job = bob.post(RMBG, json={"image": bria_mock.url("/samples/subject.jpg")}).json()["request_id"]

    assert codes(alice, bria_mock, 1) == [503]
    assert codes(bob, bria_mock, 1) == [202]
    assert alice.get(f"/v2/status/{bobs_job}").status_code == 404  # not alice's job
    assert alice.post("/bria-mock/reset", json={}).status_code == 200
    assert bob.get(f"/v2/status/{bobs_job}").status_code == 200  # alice's reset left bob alone
    assert codes(alice, bria_mock, 1) == [202]


@pytest.mark.parametrize("header", [{}, {"X-Bria-Mock-Admin-Token": "wrong"}])
def test_the_admin_token_protects_the_controls(make_server, header: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    server = make_server(admin_token="s3cret")

    assert httpx.get(f"{server.base_url}/bria-mock/rules", headers=header).status_code == 401
    ok = httpx.get(f"{server.base_url}/bria-mock/rules", headers={"X-Bria-Mock-Admin-Token": "s3cret"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/bria-mock/clock/advance", b'{"seconds": NaN}'),
        ("/bria-mock/clock/advance", b'{"seconds": 1e400}'),
        ("/bria-mock/rate-limit", b'{"per_minute": 1e400}'),
        ("/bria-mock/rules", b'{"action": {"type": "error", "status": 503}, "probability": NaN}'),
        ("/bria-mock/rules", b'{"action": {"type": "error", "status": 200}}'),
        ("/bria-mock/rules", b'{"action": {"type": "latency", "ms": 1e12}}'),
    ],
)
def test_non_finite_or_out_of_range_control_values_are_400_and_change_nothing(
    bria_mock: BriaMock, path: str, body: bytes
) -> None:
    before = bria_mock.now()

    response = httpx.post(bria_mock.url(path), content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert bria_mock.now() - before < 60
    assert bria_mock.rules() == []
    assert httpx.get(bria_mock.url("/bria-mock/state")).status_code == 200


@pytest.mark.parametrize("query", ["limit=abc", "status=abc"])
def test_bad_journal_queries_are_400(bria_mock: BriaMock, query: str) -> None:
    assert httpx.get(bria_mock.url(f"/bria-mock/journal?{query}")).status_code == 400


@pytest.mark.parametrize(
    "headers", [{"Prefer": "latency=inf"}, {"X-Bria-Mock-Rule": "[" * 100_000}, {"X-Bria-Mock-Rule": "{bad"}]
)
def test_bad_header_rules_are_400(api: httpx.Client, bria_inprocess: BriaMock, headers: dict[str, str]) -> None:
    assert api.get("/v2/status/x", headers=headers).status_code == 400


def test_prefer_names_are_case_insensitive(api: httpx.Client) -> None:
    assert api.get("/v2/status/x", headers={"Prefer": "Code=503"}).status_code == 503


def test_a_namespace_cannot_see_or_delete_another_ones_state(bria_mock: BriaMock, client_for) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client_for(bria_mock.base_url, token="alice"), client_for(bria_mock.base_url, token="bob")
    alice.post(
        "/bria-mock/rules", json={"id": "alices", "endpoint": "result", "action": {"type": "error", "status": 500}}
    )
    alice.post(RMBG, json={"image": bria_mock.url("/samples/subject.jpg")})

    assert bob.delete("/bria-mock/rules/alices").status_code == 404
    assert bob.get("/bria-mock/state").json()["jobs"] == 0
    assert alice.get("/bria-mock/state").json()["jobs"] == 1


def test_a_rules_history_is_bounded(
    api: httpx.Client, bria_inprocess: BriaMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mock_server.rules.HISTORY_KEPT", 3)
    rule = bria_inprocess.add_rule(endpoint="status", action={"type": "latency", "ms": 0})
    for _ in range(5):
        api.get("/v2/status/x")

    assert (rule.matched, list(rule.history)) == (5, [True, True, True])


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"endpont": "status", "action": {"type": "error", "status": 503}},
            "rule: endpont: not a known field (did you mean endpoint?); known fields: id, endpoint, method,",
        ),
        ({**FAIL_TWICE, "tims": 2}, "rule: tims: not a known field (did you mean times?)"),
        (
            {"action": {"type": "eror", "status": 503}},
            "rule: action.type: 'eror' is not a known type (did you mean error?); "
            "types: error, latency, slow_body, connection, job",
        ),
        ({"action": {"status": 503}}, "rule: action.type: this field is required; types: error, latency,"),
        ({"action": {"type": "error", "status": 200}}, "rule: action.status: must be 400 or more, got 200"),
        (
            {"action": {"type": "connection", "fault": "rest"}},
            "rule: action.fault: must be one of reset, empty, malformed_chunked, garbage, truncate, stall "
            "(did you mean reset?) (action type connection)",
        ),
        (
            {"action": {"type": "job", "state": "FAILED"}},
            "rule: action.state: must be one of IN_PROGRESS, COMPLETED, ERROR, UNKNOWN (action type job)",
        ),
        (
            {"action": {"type": "latency", "ms": 5, "tims": 1}},
            "rule: action.tims: not a known field; known fields: type, distribution, ms,",
        ),
    ],
)
def test_a_bad_rule_names_the_field_and_what_is_allowed(
    bria_mock: BriaMock, rule: dict[str, object], expected: str
) -> None:
    response = httpx.post(bria_mock.url("/bria-mock/rules"), json=rule)

    assert response.status_code == 400
    assert response.json()["error"]["details"].startswith(expected)


@pytest.mark.parametrize("where", [{"endpoint": "status"}, {"endpoint": "result"}, {"method": "GET"}])
def test_a_job_action_on_requests_that_create_no_job_is_refused(bria_mock: BriaMock, where: dict[str, str]) -> None:
    response = httpx.post(bria_mock.url("/bria-mock/rules"), json={**where, "action": {"type": "job", "polls": 3}})

    assert response.status_code == 400
    assert "a job action shapes the jobs that edit requests" in response.json()["error"]["details"]
    assert bria_mock.rules() == []


def test_a_job_action_on_an_edit_endpoint_is_accepted(bria_mock: BriaMock) -> None:
    rule = {"endpoint": "replace_background", "method": "POST", "action": {"type": "job", "polls": 3}}

    assert httpx.post(bria_mock.url("/bria-mock/rules"), json=rule).status_code == 201
