"""Webhooks over real sockets: signed deliveries of the status body, jobs that end on the fake's
clock, retries, where deliveries may go, the record of every attempt, and the official SDK's loop."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from bria_client import BriaSyncClient
from bria_client.toolkit import verify_webhook_signature
from PIL import Image

from mock_server import operations
from mock_server.fixtures.plugin import BriaMock
from mock_server.fixtures.receiver import ReceivedWebhook, WebhookReceiver
from mock_server.image_factory import make_image

RMBG = "/v2/image/edit/remove_background"
OPERATIONS = operations.OPERATIONS


def small_image() -> str:
    return make_image("PNG", "RGB", (24, 16)).base64


def submit(
    mock: BriaMock, webhook_url: str | None, *, path: str = RMBG, headers: dict[str, str] | None = None, **fields: Any
) -> httpx.Response:
    body = {"image": small_image(), **fields}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return httpx.post(mock.url(path), json=body, headers={"api_token": mock.token, **(headers or {})})


def accepted(mock: BriaMock, webhook_url: str, **fields: Any) -> str:
    response = submit(mock, webhook_url, **fields)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def status_of(mock: BriaMock, request_id: str) -> httpx.Response:
    return httpx.get(mock.url(f"/v2/status/{request_id}"), headers={"api_token": mock.token})


def signed_by_sdk(hook: ReceivedWebhook, token: str) -> bool:
    headers = hook.headers
    timestamp, signature = headers["bria-webhook-timestamp"], headers["bria-webhook-signature"]
    return verify_webhook_signature(hook.body, headers["bria-webhook-id"], timestamp, signature, token)


# --- delivery as Bria does it -------------------------------------------------------------------------


def test_a_completed_job_posts_its_status_body_signed_as_bria_does(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    bria_mock.advance(1)  # progress_polls=1 lasts webhook_seconds_per_poll=1 s on the fake's clock

    hook = bria_webhook_receiver.wait_for(request_id)

    assert hook.body == status_of(bria_mock, request_id).content  # byte for byte what a poll returns
    assert hook.json["status"] == "COMPLETED"
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["bria-webhook-id"] == request_id
    assert abs(hook.timestamp - time.time()) < 5
    assert hook.headers["bria-webhook-signature"].startswith("v1=")
    assert signed_by_sdk(hook, bria_mock.token)
    assert not signed_by_sdk(hook, "another-token")


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ({"type": "job", "state": "ERROR", "code": 422}, "ERROR"),
        ({"type": "job", "state": "UNKNOWN"}, "UNKNOWN"),
    ],
)
def test_failed_and_unknown_jobs_deliver_too(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver, action: dict[str, Any], state: str
) -> None:
    bria_mock.add_rule(endpoint="remove_background", action=action)
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    bria_mock.advance(1)

    hook = bria_webhook_receiver.wait_for(request_id)

    assert hook.json["status"] == state and "error" in hook.json
    assert hook.body == status_of(bria_mock, request_id).content
    assert signed_by_sdk(hook, bria_mock.token)


def test_failed_status_setting_is_what_the_webhook_says(make_server, bria_webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(failed_status="FAILED", progress_polls=0))
    mock.add_rule(endpoint="remove_background", action={"type": "job", "state": "ERROR"})
    request_id = accepted(mock, bria_webhook_receiver.url)

    assert bria_webhook_receiver.wait_for(request_id).json["status"] == "FAILED"


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_every_operation_delivers_its_webhook(
    op: operations.Operation, bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    body = {**op.example_request(small_image()), "webhook_url": bria_webhook_receiver.url}
    response = httpx.post(bria_mock.url(op.path), json=body, headers={"api_token": bria_mock.token})
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    bria_mock.advance(1)

    hook = bria_webhook_receiver.wait_for(request_id)

    assert hook.json["status"] == "COMPLETED"
    assert hook.body == status_of(bria_mock, request_id).content


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_every_operation_refuses_a_webhook_url_that_is_not_an_http_url(
    op: operations.Operation, bria_client: httpx.Client
) -> None:
    body = {**op.example_request(small_image()), "webhook_url": "ftp://hooks.example.test/bria"}

    response = bria_client.post(op.path, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["details"].startswith("webhook_url: expected an absolute http or https URL")


# --- jobs progress without being polled ------------------------------------------------------------


def test_a_webhook_job_ends_on_the_fake_clock_and_polls_agree(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(endpoint="remove_background", action={"type": "job", "polls": 3})
    request_id = accepted(bria_mock, bria_webhook_receiver.url)

    bria_mock.advance(2)  # 3 polls x 1 s: not yet
    bria_mock.wait_for_webhooks()
    assert bria_webhook_receiver.received(request_id) == []
    assert status_of(bria_mock, request_id).json()["status"] == "IN_PROGRESS"

    bria_mock.advance(1)
    hook = bria_webhook_receiver.wait_for(request_id)
    assert status_of(bria_mock, request_id).content == hook.body


def test_seconds_of_a_job_rule_count_on_the_fake_clock(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(endpoint="remove_background", action={"type": "job", "seconds": 30})
    request_id = accepted(bria_mock, bria_webhook_receiver.url)

    bria_mock.advance(29)
    bria_mock.wait_for_webhooks()
    assert bria_webhook_receiver.received(request_id) == []
    bria_mock.advance(1)

    assert bria_webhook_receiver.wait_for(request_id).json["status"] == "COMPLETED"


def test_a_job_held_in_progress_forever_never_delivers(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_mock.add_rule(endpoint="remove_background", action={"type": "job", "state": "IN_PROGRESS"})
    request_id = accepted(bria_mock, bria_webhook_receiver.url)

    bria_mock.advance(600)
    bria_mock.wait_for_webhooks()

    assert bria_webhook_receiver.received() == [] and bria_mock.webhooks() == []
    assert status_of(bria_mock, request_id).json()["status"] == "IN_PROGRESS"


def test_a_webhook_is_delivered_in_real_time_without_advancing(
    make_server, bria_webhook_receiver: WebhookReceiver
) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_seconds_per_poll=0.2))
    started = time.monotonic()
    request_id = accepted(mock, bria_webhook_receiver.url)

    bria_webhook_receiver.wait_for(request_id, timeout=5)

    assert 0.2 <= time.monotonic() - started < 3


def test_a_sync_request_with_a_webhook_answers_200_and_delivers_the_same_result(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    response = submit(bria_mock, bria_webhook_receiver.url, sync=True)
    assert response.status_code == 200
    request_id = response.json()["request_id"]

    hook = bria_webhook_receiver.wait_for(request_id)  # at once: no clock to advance

    assert hook.json["result"] == response.json()["result"]
    assert hook.body == status_of(bria_mock, request_id).content


def test_jobs_without_webhook_url_stay_lazy(bria_mock: BriaMock) -> None:
    request_id = submit(bria_mock, None).json()["request_id"]
    bria_mock.advance(60)
    bria_mock.wait_for_webhooks()

    assert bria_mock.webhooks() == []
    assert status_of(bria_mock, request_id).json()["status"] == "IN_PROGRESS"  # its first poll, as before


# --- webhook_url -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.test/bria",
        "/relative/path",
        "ftp://hooks.example.test/x",
        "http://",
        "https://:80/x",
        7,
        "x" * 3000,
        "http://a/\x7f",  # a control character: urlsplit takes it, httpx does not
        "http://xn--/x",  # not a host IDNA can encode
        f"http://{'a' * 70}.example/x",  # a label over 63 characters
    ],
)
def test_a_webhook_url_that_is_not_an_absolute_http_url_is_400_in_the_envelope(
    bria_mock: BriaMock, url: object
) -> None:
    response = submit(bria_mock, url)  # type: ignore[arg-type]

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == 400 and body["error"]["details"].startswith("webhook_url:")
    assert body["request_id"]


@pytest.mark.parametrize("url", [None, ""])
def test_a_null_or_empty_webhook_url_is_no_webhook(bria_mock: BriaMock, url: str | None) -> None:
    response = httpx.post(
        bria_mock.url(RMBG), json={"image": small_image(), "webhook_url": url}, headers={"api_token": bria_mock.token}
    )

    assert response.status_code == 202


# --- the whole loop, as a user writes it -----------------------------------------------------------


def test_the_official_sdk_submits_with_a_webhook_and_the_image_downloads(
    bria_env: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    with BriaSyncClient() as client:
        submitted = client.submit(
            endpoint="image/edit/remove_background",
            payload={"image": bria_env.url("/samples/subject.jpg")},
            webhook_url=bria_webhook_receiver.url,
            raise_for_status=True,
        )
    bria_env.advance(1)

    hook = bria_webhook_receiver.wait_for(submitted.request_id)

    assert hook.accepted and hook.answered == 200
    assert signed_by_sdk(hook, bria_env.token)
    image = Image.open(io.BytesIO(httpx.get(hook.json["result"]["image_url"]).content))
    assert image.format == "PNG"
    bria_env.assert_webhook_delivered(request_id=submitted.request_id, attempts=1)


# --- retries -----------------------------------------------------------------------------------------


def test_a_5xx_answer_is_retried_with_backoff_on_the_fake_clock(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_webhook_receiver.fail_next(2, status=503)
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    for step in (1, 1, 2):  # the job's end, then backoff 1 s, then 2 s (webhook_backoff_seconds doubling)
        bria_mock.advance(step)
        bria_mock.wait_for_webhooks()

    attempts = bria_mock.assert_webhook_delivered(request_id=request_id, attempts=3)

    assert [attempt.status for attempt in attempts] == [503, 503, 200]
    assert [round(attempt.at - attempts[0].at) for attempt in attempts] == [0, 1, 3]
    received = bria_webhook_receiver.received(request_id)
    assert len({hook.body for hook in received}) == 1  # the same body each time, signed anew
    assert all(signed_by_sdk(hook, bria_mock.token) for hook in received)


def test_retries_stop_after_webhook_attempts(make_server, bria_webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_attempts=2, webhook_backoff_seconds=0, progress_polls=0))
    bria_webhook_receiver.fail_next(5)
    request_id = accepted(mock, bria_webhook_receiver.url)
    time.sleep(0.3)
    mock.wait_for_webhooks()

    assert [attempt.status for attempt in mock.webhooks(request_id=request_id)] == [500, 500]
    with pytest.raises(AssertionError, match=r"not delivered within .*\n.*attempt 1 .*: 500\n.*attempt 2 .*: 500"):
        mock.assert_webhook_delivered(request_id=request_id, timeout=0.1)


def test_a_receiver_that_times_out_is_retried(make_server, bria_webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_timeout_seconds=1, webhook_backoff_seconds=0, progress_polls=0))
    bria_webhook_receiver.time_out_next(1, seconds=5)
    request_id = accepted(mock, bria_webhook_receiver.url)

    attempts = mock.assert_webhook_delivered(request_id=request_id, attempts=2)

    assert attempts[0].status is None and attempts[0].error == "timeout: no answer within 1 s"
    assert attempts[0].latency_ms >= 990  # (the loop's timer and the latency clock differ by a few ms)


def test_a_connection_error_is_retried_and_recorded(bria_mock: BriaMock) -> None:
    with WebhookReceiver() as gone:
        url = gone.url  # a free port nobody listens on once closed
    request_id = accepted(bria_mock, url)
    bria_mock.advance(1)
    bria_mock.wait_for_webhooks()
    bria_mock.advance(1)
    bria_mock.wait_for_webhooks()

    attempts = bria_mock.webhooks(request_id=request_id)
    assert [attempt.attempt for attempt in attempts] == [1, 2]
    assert all(attempt.error and attempt.error.startswith("connection error: ") for attempt in attempts)


def test_a_slow_receiver_never_slows_the_fake(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    bria_webhook_receiver.slow_next(1, seconds=3)
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    bria_mock.advance(1)
    bria_webhook_receiver.wait_for(request_id, accepted=False)  # it has arrived; its answer takes 3 s

    started = time.monotonic()
    assert status_of(bria_mock, request_id).status_code == 200
    assert submit(bria_mock, None).status_code == 202

    assert time.monotonic() - started < 1.5
    bria_mock.assert_webhook_delivered(request_id=request_id, attempts=1)


# --- where deliveries may go ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]/hook", "http://[::ffff:169.254.169.254]/x"],
)
def test_metadata_and_link_local_addresses_are_refused_and_not_retried(make_server, url: str) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_allowlist=("*",), progress_polls=0))
    request_id = accepted(mock, url)
    time.sleep(0.2)
    mock.wait_for_webhooks()

    (attempt,) = mock.webhooks(request_id=request_id)
    assert attempt.error is not None and attempt.error.startswith("refused: ")
    assert "never a webhook target" in attempt.error


def test_loopback_by_name_is_allowed_by_default(bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver) -> None:
    url = bria_webhook_receiver.url.replace("127.0.0.1", "localhost")
    request_id = accepted(bria_mock, url)
    bria_mock.advance(1)

    hook = bria_webhook_receiver.wait_for(request_id)

    assert hook.headers["host"].startswith("localhost:")


def test_a_webhook_pointed_at_the_fakes_own_controls_cannot_reset_it(bria_mock: BriaMock) -> None:
    request_id = accepted(bria_mock, bria_mock.url("/bria-mock/reset"))
    bria_mock.advance(1)
    bria_mock.wait_for_webhooks()

    attempt = bria_mock.webhooks(request_id=request_id)[0]
    assert attempt.status == 403
    assert status_of(bria_mock, request_id).json()["status"] == "COMPLETED"  # nothing was reset


def test_an_allowlist_restricts_where_webhooks_go(make_server, bria_webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_allowlist=("10.0.0.0/8", "hooks.internal"), progress_polls=0))
    request_id = accepted(mock, bria_webhook_receiver.url)
    time.sleep(0.2)
    mock.wait_for_webhooks()

    (attempt,) = mock.webhooks(request_id=request_id)
    assert attempt.error == "refused: 127.0.0.1 is not on webhook_allowlist"
    assert bria_webhook_receiver.received() == []


def test_an_allowlist_entry_lets_a_delivery_through(make_server, bria_webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    mock = BriaMock.serving(make_server(webhook_allowlist=("127.0.0.1",), progress_polls=0))
    request_id = accepted(mock, bria_webhook_receiver.url)

    assert bria_webhook_receiver.wait_for(request_id).accepted


def test_a_bad_allowlist_entry_is_refused_at_start() -> None:
    from mock_server.webhook_targets import AddressPolicy

    with pytest.raises(ValueError, match="webhook_allowlist: 'not a host' is neither"):
        AddressPolicy.from_allowlist(["not a host"])


# --- seeing what was sent ----------------------------------------------------------------------------


def test_every_attempt_is_listed_by_the_admin_api_with_what_was_sent(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    bria_webhook_receiver.fail_next(1)
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    for step in (1, 1):
        bria_mock.advance(step)
        bria_mock.wait_for_webhooks()

    listed = httpx.get(bria_mock.url("/bria-mock/webhooks"), params={"request_id": request_id}).json()
    delivered = httpx.get(bria_mock.url("/bria-mock/webhooks"), params={"delivered": "true"}).json()
    failed = httpx.get(bria_mock.url("/bria-mock/webhooks"), params={"status": "500", "limit": "1"}).json()

    assert listed["count"] == 2
    first, second = listed["attempts"]
    assert (first["attempt"], first["status"], second["attempt"], second["status"]) == (1, 500, 2, 200)
    received = bria_webhook_receiver.received(request_id)
    assert [hook.body for hook in received] == [first["body"].encode(), second["body"].encode()]
    assert [hook.headers["bria-webhook-signature"] for hook in received] == [
        attempt["headers"]["Bria-Webhook-Signature"] for attempt in (first, second)
    ]
    assert first["url"] == bria_webhook_receiver.url and first["timestamp"] == received[0].timestamp
    assert {"latency_ms", "at", "error", "rules", "delivery", "namespace", "sent"} <= set(first)
    assert [attempt["attempt"] for attempt in delivered["attempts"]] == [2]
    assert failed["count"] == 1 and failed["attempts"][0]["status"] == 500
    bad = httpx.get(bria_mock.url("/bria-mock/webhooks"), params={"delivered": "maybe"})
    assert bad.status_code == 400


def test_the_admin_api_shows_a_token_only_its_own_webhooks(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    bria_mock.advance(1)
    bria_mock.assert_webhook_delivered(request_id=request_id)

    mine = httpx.get(bria_mock.url("/bria-mock/webhooks"), headers={"api_token": bria_mock.token}).json()
    theirs = httpx.get(bria_mock.url("/bria-mock/webhooks"), headers={"api_token": "someone-else"}).json()

    assert mine["count"] == 1 and theirs["count"] == 0


def test_the_record_is_bounded_by_count_and_bytes() -> None:
    from mock_server.webhook_log import WebhookLog

    log = WebhookLog(max_entries=2, max_bytes=10_000)
    fields = dict(namespace=None, url="http://h/", delivery=1, attempt=1, at=0.0, timestamp=0, headers={})
    fields |= dict(status=200, error=None, latency_ms=1.0, rules=[])
    for number in range(3):
        log.record(request_id=f"r{number}", body="{}", **fields)
    log.record(request_id="big", body="x" * 9_500, **fields)

    assert [attempt.request_id for attempt in log.attempts()] == ["big"]


def test_assert_webhook_delivered_lists_what_was_delivered_instead(
    bria_mock: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    request_id = accepted(bria_mock, bria_webhook_receiver.url)
    bria_mock.advance(1)
    bria_mock.assert_webhook_delivered(request_id=request_id)

    with pytest.raises(AssertionError) as failure:
        bria_mock.assert_webhook_delivered(request_id="nope", timeout=0.05)
    with pytest.raises(AssertionError, match="after 2 attempts"):
        bria_mock.assert_webhook_delivered(request_id=request_id, attempts=2, timeout=0.05)

    assert f"every attempt recorded:\n  {request_id} delivery 1 attempt 1 to {bria_webhook_receiver.url}: 200" in str(
        failure.value
    )


def test_an_in_process_fake_delivers_too(
    bria_client: httpx.Client, bria_inprocess: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    body = {"image": small_image(), "webhook_url": bria_webhook_receiver.url}
    request_id = bria_client.post(RMBG, json=body).json()["request_id"]
    bria_inprocess.advance(1)

    hook = bria_webhook_receiver.wait_for(request_id)

    assert hook.body == bria_client.get(f"/v2/status/{request_id}").content
