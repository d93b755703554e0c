"""Shared state: fakes naming one Redis/Valkey store act as one fake (a real server, real sockets).

Two fakes on different ports stand for two hosts behind a load balancer: whatever a client does on
one, the other sees. The last test starts two ``bria-mock serve --state`` processes, as users run them.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from mock_server.fixtures.plugin import BriaMock
from mock_server.fixtures.receiver import WebhookReceiver
from mock_server.server import ServerThread
from tests.conftest import TOKEN, free_port, wait_until_up

RMBG = "/v2/image/edit/remove_background"
Pair = tuple[BriaMock, BriaMock]

pytestmark = pytest.mark.socket


@pytest.fixture
def pair(make_server: Callable[..., ServerThread], state_url: str) -> Callable[..., Pair]:
    """``pair(**settings)``: two fakes on the same store, each with a handle."""

    def make(**settings: Any) -> Pair:
        first, second = (make_server(state=state_url, **settings) for _ in range(2))
        return BriaMock.serving(first), BriaMock.serving(second)

    return make


@pytest.fixture(scope="module")
def tiny_jpeg() -> str:
    """A 16x16 JPEG in base64: these tests are about state, not pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def submit(mock: BriaMock, image: str, **fields: Any) -> httpx.Response:
    return httpx.post(mock.url(RMBG), json={"image": image, **fields}, headers={"api_token": mock.token})


def poll(mock: BriaMock, request_id: str, token: str | None = None) -> httpx.Response:
    return httpx.get(mock.url(f"/v2/status/{request_id}"), headers={"api_token": token or mock.token})


def test_a_job_submitted_on_one_fake_is_polled_and_downloaded_on_the_other(
    pair: Callable[..., Pair], tiny_jpeg: str
) -> None:
    first, second = pair(progress_polls=1)

    request_id = submit(first, tiny_jpeg).json()["request_id"]

    assert poll(second, request_id).json()["status"] == "IN_PROGRESS"  # the poll counts wherever it lands
    done = poll(first, request_id).json()
    assert done["status"] == "COMPLETED"
    assert poll(second, request_id).json() == done
    image_url = done["result"]["image_url"]  # on the fake that processed it: the other serves it too
    on_second = image_url.replace(first.base_url, second.base_url)
    assert httpx.get(image_url).content == httpx.get(on_second).content
    assert httpx.get(on_second).content.startswith(b"\x89PNG")


def test_another_tokens_job_is_not_found_on_either(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair()

    request_id = submit(first, tiny_jpeg).json()["request_id"]

    assert poll(second, request_id, token="someone-else").status_code == 404
    assert poll(second, request_id).status_code == 200


def test_a_reset_on_one_fake_empties_both(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair()
    request_id = submit(first, tiny_jpeg).json()["request_id"]
    first.add_rule(endpoint="status", action={"type": "latency", "ms": 1})

    second.reset()

    assert poll(first, request_id).status_code == 404
    assert first.rules() == [] and first.calls(endpoint="remove_background") == []
    assert first.job_count() == 0


def test_a_namespaced_reset_leaves_other_tokens_alone(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair()
    mine = submit(first, tiny_jpeg).json()["request_id"]
    theirs = httpx.post(first.url(RMBG), json={"image": tiny_jpeg}, headers={"api_token": "other"}).json()

    reset = httpx.post(second.url("/bria-mock/reset"), json={}, headers={"api_token": first.token})

    assert reset.status_code == 200
    assert first.calls(endpoint="remove_background", token=first.token) == []
    assert poll(first, mine).status_code == 404
    assert poll(first, theirs["request_id"], token="other").status_code == 200
    assert len(second.calls(endpoint="remove_background", token="other")) == 1


def test_a_rule_added_on_one_fake_fires_exactly_its_times_across_both(
    pair: Callable[..., Pair], tiny_jpeg: str
) -> None:
    first, second = pair()
    first.add_rule(endpoint="remove_background", times=3, action={"type": "error", "status": 503})

    statuses = [submit(mock, tiny_jpeg).status_code for mock in (first, second) * 4]

    assert statuses == [503, 503, 503, 202, 202, 202, 202, 202]
    (rule,) = second.rules()
    assert (rule.matched, rule.fired) == (8, 3)
    assert list(rule.history) == [True] * 3 + [False] * 5


def test_a_seeded_schedule_replays_identically_in_memory_and_across_processes(
    pair: Callable[..., Pair], make_server: Callable[..., ServerThread], tiny_jpeg: str
) -> None:
    rule = {"endpoint": "remove_background", "probability": 0.5, "seed": 7, "action": {"type": "error", "status": 500}}
    alone = BriaMock.serving(make_server())
    first, second = pair()
    alone.add_rule(rule)
    first.add_rule(rule)

    in_memory = [submit(alone, tiny_jpeg).status_code for _ in range(12)]
    shared = [submit(mock, tiny_jpeg).status_code for mock in (first, second) * 6]

    assert shared == in_memory
    assert 500 in shared and 202 in shared  # (the seed draws both)


def test_the_rate_limit_is_one_bucket_across_both(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair(rate_limit="5")

    statuses = [submit(mock, tiny_jpeg).status_code for mock in (first, second) * 4]

    assert statuses == [202] * 5 + [429] * 3
    second.set_rate_limit(None)  # changed on one, in force on both
    assert submit(first, tiny_jpeg).status_code == 202
    assert first.rate_limit() is None


def test_advancing_the_clock_on_one_fake_moves_it_for_both(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair(progress_polls=0, progress_seconds=600)
    request_id = submit(first, tiny_jpeg).json()["request_id"]
    assert poll(second, request_id).json()["status"] == "IN_PROGRESS"

    first.advance(600)

    assert poll(second, request_id).json()["status"] == "COMPLETED"
    assert abs(second.now() - first.now()) < 1


def test_the_journal_is_one_list_bounded_across_both(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair(journal_max_entries=4)

    for mock in (first, second) * 3:
        submit(mock, tiny_jpeg)

    entries = first.calls(endpoint="remove_background")
    assert len(entries) == 4  # the newest four of six, whichever fake recorded them
    assert [entry.id for entry in entries] == sorted(entry.id for entry in entries)
    second.assert_called(endpoint="remove_background", times=4)


def test_an_upload_on_one_fake_is_served_by_the_other(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair()
    data = base64.b64decode(tiny_jpeg)

    url = first.upload(data, "image/jpeg")

    served = httpx.get(url.replace(first.base_url, second.base_url))
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/jpeg"


def test_a_webhook_job_ended_by_a_poll_on_the_other_fake_is_delivered_once(
    pair: Callable[..., Pair], bria_webhook_receiver: WebhookReceiver, tiny_jpeg: str
) -> None:
    first, second = pair(progress_polls=0)
    response = submit(first, tiny_jpeg, webhook_url=bria_webhook_receiver.url)
    request_id = response.json()["request_id"]

    assert poll(second, request_id).json()["status"] == "COMPLETED"  # the other fake ends it, first
    received = bria_webhook_receiver.wait_for(request_id)

    assert received.verified and received.json["status"] == "COMPLETED"
    time.sleep(0.3)  # (the accepting fake's own schedule has run by now, and found it delivered)
    first.wait_for_webhooks()
    second.wait_for_webhooks()
    assert len(bria_webhook_receiver.received(request_id)) == 1
    (attempt,) = first.webhooks(request_id=request_id)  # one attempt log, whichever fake sent it
    assert attempt.delivered and second.webhooks(request_id=request_id) == [attempt]


def test_the_job_bounds_hold_across_both(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair(max_jobs=3)

    ids = [submit(mock, tiny_jpeg).json()["request_id"] for mock in (first, second) * 3]

    assert [poll(second, request_id).status_code for request_id in ids] == [404] * 3 + [200] * 3
    assert first.job_count() == 3


# --- two processes, as users run them ------------------------------------------------------------------


@pytest.fixture
def two_processes(state_url: str) -> Iterator[list[str]]:
    """Two ``bria-mock serve --state URL`` processes on their own ports; their base URLs."""
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        command = [sys.executable, "-m", "mock_server", "serve", "--state", state_url, "--port", str(port)]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_until_up(url)
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait(timeout=10)
            assert process.stderr is not None
            process.stderr.close()


@pytest.mark.subprocess
def test_two_serve_processes_on_one_store_act_as_one_fake(two_processes: list[str], tiny_jpeg: str) -> None:
    one, other = two_processes
    headers = {"api_token": TOKEN}

    request_id = httpx.post(f"{one}{RMBG}", json={"image": tiny_jpeg}, headers=headers).json()["request_id"]
    statuses = [httpx.get(f"{url}/v2/status/{request_id}", headers=headers).json()["status"] for url in (other, one)]
    rule = httpx.post(
        f"{other}/bria-mock/rules", json={"endpoint": "status", "action": {"type": "error", "status": 504}}
    )
    injected = httpx.get(f"{one}/v2/status/{request_id}", headers=headers)
    journal = httpx.get(f"{other}/bria-mock/journal").json()

    assert statuses == ["IN_PROGRESS", "COMPLETED"]
    assert rule.status_code == 201 and injected.status_code == 504
    paths = [entry["path"] for entry in journal["entries"]]
    assert paths.count(f"/v2/status/{request_id}") == 3 and paths.count(RMBG) == 1
    assert {entry["token_id"] for entry in journal["entries"] if entry["path"] != "/bria-mock/rules"} == {
        _token_id(one)
    }  # one namespace id for the token, whichever process recorded the exchange

    assert httpx.post(f"{one}/bria-mock/reset", json={}).status_code == 200
    assert httpx.get(f"{other}/v2/status/{request_id}", headers=headers).status_code == 404
    assert os.environ.get("BRIA_MOCK_STATE") is None  # (the children got the store by their command line)


def _token_id(url: str) -> str:
    state = httpx.get(f"{url}/bria-mock/state", headers={"api_token": TOKEN}).json()
    token_id: str = state["namespace"]
    return token_id


def test_a_store_that_cannot_be_reached_is_a_clear_error_without_its_password() -> None:
    from mock_server.app import create_app
    from mock_server.config import Settings

    with pytest.raises(
        ValueError, match=r"state redis://user:\*\*\*@127\.0\.0\.1:1/0: cannot reach the store"
    ) as error:
        create_app(Settings(state="redis://user:secret@127.0.0.1:1/0"))

    assert "secret" not in str(error.value)


def test_a_fake_on_a_store_leaves_the_namespaces_of_fakes_in_memory_alone(
    make_server: Callable[..., ServerThread], state_url: str, tiny_jpeg: str
) -> None:
    alone = BriaMock.serving(make_server())
    request_id = submit(alone, tiny_jpeg).json()["request_id"]

    on_store = BriaMock.serving(make_server(state=state_url))  # (its namespace ids are the store's)

    assert poll(alone, request_id).status_code == 200
    alone.assert_called(endpoint="remove_background", token=alone.token, times=1)
    submit(on_store, tiny_jpeg)
    on_store.assert_called(endpoint="remove_background", token=on_store.token, times=1)


def test_stopping_one_fake_leaves_the_store_to_the_others(
    make_server: Callable[..., ServerThread], state_url: str, tiny_jpeg: str
) -> None:
    first, second = (make_server(state=state_url) for _ in range(2))
    mock = BriaMock.serving(first)
    request_id = submit(mock, tiny_jpeg).json()["request_id"]
    mock.add_rule(endpoint="status", action={"type": "latency", "ms": 1})

    first.stop()

    other = BriaMock.serving(second)
    assert poll(other, request_id).status_code == 200
    assert len(other.rules()) == 1 and other.calls(endpoint="remove_background")


@pytest.mark.parametrize("where", ["seed", "rule"])
def test_integers_past_64_bits_are_kept_exactly_on_the_store(
    pair: Callable[..., Pair], tiny_jpeg: str, where: str
) -> None:
    first, second = pair(progress_polls=0)
    huge = 2**70
    if where == "rule":
        first.add_rule(endpoint="status", times=huge, after=0, action={"type": "latency", "ms": 1})
        assert second.rules()[0].spec["times"] == huge
        return
    request_id = submit(first, tiny_jpeg, seed=huge).json()["request_id"]
    done = poll(second, request_id).json()
    assert done["status"] == "COMPLETED", done


def test_a_rule_added_again_after_a_reset_starts_counting_from_nothing(
    pair: Callable[..., Pair], tiny_jpeg: str
) -> None:
    first, second = pair()
    flaky = {"id": "flaky", "endpoint": "remove_background", "calls": [1], "action": {"type": "error", "status": 503}}
    first.add_rule(flaky)
    assert [submit(first, tiny_jpeg).status_code for _ in range(2)] == [503, 202]

    second.reset()
    second.add_rule(flaky)

    assert [submit(first, tiny_jpeg).status_code for _ in range(2)] == [503, 202]
    assert second.rules()[0].to_json()["history"] == [True, False]


@pytest.mark.parametrize("state", ["memory", "store"])
def test_rules_added_together_with_one_id_are_refused(
    make_server: Callable[..., ServerThread], state_url: str, state: str
) -> None:
    server = make_server(state=state_url if state == "store" else "memory")
    rule = {"id": "twice", "action": {"type": "latency", "ms": 1}}

    answer = httpx.post(f"{server.base_url}/bria-mock/rules", json=[rule, rule])

    assert answer.status_code == 400
    assert "id twice is given to more than one" in answer.json()["error"]["details"]
    assert httpx.get(f"{server.base_url}/bria-mock/rules").json()["rules"] == []


def test_a_job_whose_claimant_died_is_taken_over_when_its_claim_lapses(
    pair: Callable[..., Pair], state_url: str, tiny_jpeg: str
) -> None:
    import redis

    first, second = pair(progress_polls=0)
    request_id = submit(first, tiny_jpeg).json()["request_id"]
    with redis.Redis.from_url(state_url) as store:  # as a process that claimed the job and died would leave it
        store.set(f"bria-mock:claim:{request_id}", "gone:1", ex=1)

    answer = httpx.get(second.url(f"/v2/status/{request_id}"), headers={"api_token": second.token}, timeout=20)

    assert answer.json()["status"] == "COMPLETED"  # (before: IN_PROGRESS after waiting a minute)


def test_a_reset_on_one_fake_drops_the_deliveries_the_other_scheduled(
    pair: Callable[..., Pair], bria_webhook_receiver: WebhookReceiver, tiny_jpeg: str
) -> None:
    first, second = pair(progress_polls=0)
    second.add_rule(endpoint="webhook", action={"type": "delay", "ms": 60_000})
    request_id = submit(second, tiny_jpeg, webhook_url=bria_webhook_receiver.url).json()["request_id"]
    time.sleep(0.3)  # (its job ends at once; its delivery waits a minute on the fake's clock)
    assert second.webhooks(request_id=request_id) == []

    first.reset()
    first.advance(120)
    time.sleep(0.5)  # (the other fake's scheduler looks at the shared clock every 0.1 s)
    second.wait_for_webhooks()

    assert bria_webhook_receiver.received(request_id) == []
    assert second.webhooks(request_id=request_id) == []


def test_the_inspector_shows_a_result_made_on_the_other_fake(pair: Callable[..., Pair], tiny_jpeg: str) -> None:
    first, second = pair(progress_polls=0)
    request_id = submit(first, tiny_jpeg).json()["request_id"]
    assert poll(first, request_id).json()["status"] == "COMPLETED"

    (job,) = httpx.get(second.url("/bria-mock/jobs")).json()["jobs"]
    image = httpx.get(second.url(job["result_url"]))

    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
