"""The plugin's webhook receiver and assertions, as a user meets them: in a generated test file run by
``pytester``, and the receiver's own answers and messages."""

from __future__ import annotations

import httpx
import pytest

from mock_server.fixtures.receiver import WebhookReceiver
from mock_server.webhook_signing import signed_headers, signing_key

USER_TEST = """
import httpx
import pytest


def submit(mock, url):
    body = {"image": mock.url("/samples/subject.jpg"), "webhook_url": url}
    return httpx.post(mock.url("/v2/image/edit/remove_background"), json=body, headers={"api_token": mock.token})


def test_receiver_and_assertion(bria_mock, bria_webhook_receiver):
    bria_webhook_receiver.fail_next(1)
    request_id = submit(bria_mock, bria_webhook_receiver.url).json()["request_id"]
    bria_mock.advance(1)
    bria_mock.wait_for_webhooks()
    bria_mock.advance(1)

    assert bria_webhook_receiver.wait_for(request_id).verified
    bria_mock.assert_webhook_delivered(request_id=request_id, attempts=2)


@pytest.mark.bria_fault(endpoint="webhook", action={"type": "drop"})
def test_a_dropped_webhook_fails_the_assertion(bria_mock, bria_webhook_receiver):
    request_id = submit(bria_mock, bria_webhook_receiver.url).json()["request_id"]
    bria_mock.advance(1)
    bria_mock.assert_webhook_delivered(request_id=request_id, timeout=0.2)
"""


def test_the_receiver_fixture_and_the_assertion_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)

    result = pytester.runpytest("-p", "no:cacheprovider", "-n0")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*not delivered within 0.2 s; attempts for *", "*attempt 1 to http://127.0.0.1:*"])
    result.stdout.fnmatch_lines(["*dropped by a rule: never sent*"])


def post(receiver: WebhookReceiver, request_id: str, key_token: str) -> httpx.Response:
    body = b'{"request_id":"%s","status":"COMPLETED"}' % request_id.encode()
    headers = signed_headers(signing_key(key_token), request_id, 1_700_000_000, body)
    return httpx.post(receiver.url, content=body, headers=headers)


def test_the_receiver_answers_200_to_a_good_signature_and_401_to_a_bad_one() -> None:
    with WebhookReceiver("token") as receiver:
        good, bad = post(receiver, "good", "token"), post(receiver, "bad", "other-token")

        assert (good.status_code, bad.status_code) == (200, 401)
        assert [(hook.request_id, hook.verified) for hook in receiver.received()] == [("good", True), ("bad", False)]
        assert receiver.wait_for("bad", accepted=False).answered == 401


def test_the_receiver_can_be_told_to_fail_and_then_recovers() -> None:
    with WebhookReceiver("token") as receiver:
        receiver.fail_next(2, status=503)

        assert [post(receiver, "r", "token").status_code for _ in range(3)] == [503, 503, 200]


def test_wait_for_says_what_arrived_instead() -> None:
    with WebhookReceiver("token") as receiver:
        post(receiver, "other", "wrong")

        with pytest.raises(AssertionError) as failure:
            receiver.wait_for("mine", timeout=0.05)

    assert str(failure.value) == (
        "no accepted webhook for mine within 0.05 s; received:\n  other: verified=False answered=401"
    )
