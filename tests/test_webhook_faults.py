"""Faults on webhook deliveries (rules with endpoint ``webhook``), through every surface, to a real receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bria_client.toolkit import verify_webhook_signature

from mock_server.fixtures.plugin import BriaMock
from mock_server.fixtures.receiver import ReceivedWebhook, WebhookReceiver
from mock_server.image_factory import make_image
from mock_server.rules import RULE_HEADER

RMBG = "/v2/image/edit/remove_background"


def accepted(mock: BriaMock, receiver: WebhookReceiver, headers: dict[str, str] | None = None) -> str:
    body = {"image": make_image("PNG", "RGB", (24, 16)).base64, "webhook_url": receiver.url}
    response = httpx.post(mock.url(RMBG), json=body, headers={"api_token": mock.token, **(headers or {})})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def settle(mock: BriaMock, *steps: float) -> None:
    """Advance the fake's clock step by step, letting what falls due run after each."""
    for seconds in steps:
        mock.advance(seconds)
        mock.wait_for_webhooks()


def sdk_accepts(hook: ReceivedWebhook, token: str) -> bool:
    headers = hook.headers
    return verify_webhook_signature(
        hook.body,
        headers["bria-webhook-id"],
        headers["bria-webhook-timestamp"],
        headers["bria-webhook-signature"],
        token,
    )


def webhook_rule(action: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"endpoint": "webhook", "action": action, **fields}


# --- each action ------------------------------------------------------------------------------------


def test_delay_sends_later_on_the_fake_clock(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    bria_mock.add_rule(webhook_rule({"type": "delay", "ms": 5000}))
    request_id = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 1, 4.9)
    assert bria_webhook_receiver.received() == []
    settle(bria_mock, 0.1)

    assert bria_webhook_receiver.wait_for(request_id).accepted


@pytest.mark.parametrize(
    "action",
    [
        {"type": "delay", "distribution": "uniform", "min_ms": 2000, "max_ms": 3000},
        {"type": "delay", "distribution": "lognormal", "median_ms": 1000, "sigma": 0.5, "cap_ms": 3000},
    ],
)
def test_random_delays_are_drawn_as_latency_is(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver, action: dict[str, Any]
) -> None:
    bria_mock.add_rule(webhook_rule(action))
    request_id = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 1)
    if action["distribution"] == "uniform":
        assert bria_webhook_receiver.received() == []
    settle(bria_mock, 3)

    assert bria_webhook_receiver.wait_for(request_id).accepted


def test_drop_never_sends_and_says_so(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    bria_mock.add_rule(webhook_rule({"type": "drop"}, id="lost"))
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1, 60)

    (record,) = bria_mock.webhooks(request_id=request_id)
    assert bria_webhook_receiver.received() == []
    assert (record.sent, record.status, record.rules) == (False, None, ["lost"])
    with pytest.raises(AssertionError, match="dropped by a rule: never sent"):
        bria_mock.assert_webhook_delivered(request_id=request_id, timeout=0.05)


def test_duplicate_sends_the_same_delivery_twice_with_a_gap(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "duplicate", "gap_seconds": 10}))
    request_id = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 1)
    assert len(bria_webhook_receiver.received(request_id)) == 1
    settle(bria_mock, 10)

    first, second = bria_webhook_receiver.received(request_id)
    assert first.body == second.body and first.headers["bria-webhook-id"] == second.headers["bria-webhook-id"]
    assert sdk_accepts(first, bria_mock.token) and sdk_accepts(second, bria_mock.token)
    assert [record.delivery for record in bria_mock.webhooks(request_id=request_id)] == [1, 2]


def test_reorder_holds_a_delivery_until_after_the_next_one(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    held = accepted(bria_mock, bria_webhook_receiver, {RULE_HEADER: '{"type": "reorder"}'})
    settle(bria_mock, 0.5)
    other = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 0.5)  # the held job ends first...
    assert bria_webhook_receiver.received() == []
    settle(bria_mock, 0.5)  # ...and goes right after the other one

    bria_webhook_receiver.wait_for(held)
    assert [hook.request_id for hook in bria_webhook_receiver.received()] == [other, held]


def test_a_reordered_delivery_goes_after_its_hold_when_nothing_else_comes(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "reorder", "hold_seconds": 30}))
    request_id = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 1, 29)
    assert bria_webhook_receiver.received() == []
    settle(bria_mock, 1)

    assert bria_webhook_receiver.wait_for(request_id).accepted


def test_bad_signature_fails_the_sdk_check_and_the_receiver_refuses_it(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "bad_signature"}))
    bria_mock.add_rule(webhook_rule({"type": "retry", "attempts": 1}))
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    hook = bria_webhook_receiver.wait_for(request_id, accepted=False)

    assert not sdk_accepts(hook, bria_mock.token)
    assert (hook.verified, hook.answered) == (False, 401)
    assert [record.status for record in bria_mock.webhooks(request_id=request_id)] == [401]


def test_stale_timestamp_is_old_but_correctly_signed(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "stale_timestamp", "seconds": 900}))
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    hook = bria_webhook_receiver.wait_for(request_id)

    assert sdk_accepts(hook, bria_mock.token)  # replay protection is the receiver's own check
    assert 895 <= time.time() - hook.timestamp <= 905


def test_tampered_body_no_longer_matches_its_signature(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "tampered_body"}))
    bria_mock.add_rule(webhook_rule({"type": "retry", "attempts": 1}))
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    hook = bria_webhook_receiver.wait_for(request_id, accepted=False)

    assert hook.json["tampered"] is True and hook.json["request_id"] == request_id
    assert not sdk_accepts(hook, bria_mock.token)
    assert hook.answered == 401


def test_retry_overrides_attempts_and_backoff_for_its_deliveries(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "retry", "attempts": 3, "backoff": 10}))
    bria_webhook_receiver.fail_next(5)
    request_id = accepted(bria_mock, bria_webhook_receiver)

    settle(bria_mock, 1, 9.9)
    assert len(bria_mock.webhooks(request_id=request_id)) == 1
    settle(bria_mock, 0.1, 20, 60)

    assert [record.attempt for record in bria_mock.webhooks(request_id=request_id)] == [1, 2, 3]


def test_a_webhook_rule_matches_the_status_body(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    bria_mock.add_rule(webhook_rule({"type": "drop"}, body={"status": "ERROR"}))
    failing = {RULE_HEADER: '{"type": "job", "state": "ERROR"}'}
    failed, completed = accepted(bria_mock, bria_webhook_receiver, failing), accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    assert bria_mock.webhooks(request_id=failed)[0].sent is False
    assert bria_webhook_receiver.wait_for(completed).json["status"] == "COMPLETED"


# --- how often: times, calls, probability + seed, schedule, for_seconds -----------------------------


def dropped_in_turn(mock: BriaMock, receiver: WebhookReceiver, jobs: int) -> list[bool]:
    """Deliver ``jobs`` jobs one after the other; which of them a rule dropped."""
    dropped = []
    for _ in range(jobs):
        request_id = accepted(mock, receiver)
        settle(mock, 1)
        dropped.append(not mock.webhooks(request_id=request_id)[0].sent)
    return dropped


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"times": 1}, [True, False, False]),
        ({"calls": [2]}, [False, True, False]),
        ({"schedule": [False, True, True]}, [False, True, True]),
        ({"for_seconds": 1.5}, [True, False, False]),
    ],
)
def test_times_calls_schedule_and_for_seconds_limit_a_webhook_rule(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver, limits: dict[str, Any], expected: list[bool]
) -> None:
    bria_mock.add_rule(webhook_rule({"type": "drop"}, **limits))

    assert dropped_in_turn(bria_mock, bria_webhook_receiver, 3) == expected


def test_probability_with_a_seed_replays_the_same_schedule(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    rule = bria_mock.add_rule(webhook_rule({"type": "drop"}, probability=0.5, seed=11))
    first = dropped_in_turn(bria_mock, bria_webhook_receiver, 6)
    assert list(rule.history) == first
    bria_mock.reset()
    bria_mock.add_rule(webhook_rule({"type": "drop"}, probability=0.5, seed=11))

    assert dropped_in_turn(bria_mock, bria_webhook_receiver, 6) == first
    assert True in first and False in first


# --- the four surfaces -----------------------------------------------------------------------------


def test_a_rules_file_rule_acts_on_webhooks(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [webhook_rule({"type": "drop"})]}))
    mock = BriaMock.serving(make_server(rules_file=str(path), progress_polls=0))
    with WebhookReceiver(mock.token) as receiver:
        request_id = accepted(mock, receiver)
        time.sleep(0.2)
        mock.wait_for_webhooks()

    assert mock.webhooks(request_id=request_id)[0].sent is False


def test_the_admin_api_adds_a_webhook_rule(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    added = httpx.post(bria_mock.url("/bria-mock/rules"), json=webhook_rule({"type": "duplicate"}))
    assert added.status_code == 201, added.text
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    assert len(bria_webhook_receiver.received(request_id)) == 2


def test_a_header_rule_on_the_request_acts_on_its_own_webhook_only(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    header = {RULE_HEADER: json.dumps(webhook_rule({"type": "drop"}))}
    dropped = accepted(bria_mock, bria_webhook_receiver, header)
    delivered = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    assert bria_mock.webhooks(request_id=dropped)[0].sent is False
    assert bria_webhook_receiver.wait_for(delivered).accepted


@pytest.mark.bria_fault(endpoint="webhook", action={"type": "stale_timestamp", "seconds": 3600})
def test_a_marker_rule_acts_on_webhooks(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    request_id = accepted(bria_mock, bria_webhook_receiver)
    settle(bria_mock, 1)

    assert time.time() - bria_webhook_receiver.wait_for(request_id).timestamp >= 3595


# --- rules that could never act ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"endpoint": "status", "action": {"type": "drop"}}, "drop acts on webhook deliveries"),
        ({"endpoint": "webhook", "action": {"type": "error", "status": 500}}, "webhook deliveries take only"),
        ({"endpoint": "webhook", "action": {"type": "retry", "attempts": 0}}, "action.attempts"),
    ],
)
def test_a_rule_that_could_never_act_on_webhooks_is_refused(
    bria_mock: BriaMock, rule: dict[str, Any], reason: str
) -> None:
    answer = httpx.post(bria_mock.url("/bria-mock/rules"), json=rule)

    assert answer.status_code == 400 and reason in answer.json()["error"]["details"]


def test_a_webhook_rule_for_any_endpoint_leaves_requests_alone(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    rule = bria_mock.add_rule(action={"type": "drop"})
    request_id = accepted(bria_mock, bria_webhook_receiver)
    assert rule.matched == 0  # the request itself is not what the rule acts on
    settle(bria_mock, 1)

    assert (rule.matched, rule.fired) == (1, 1)
    assert bria_mock.webhooks(request_id=request_id)[0].sent is False
