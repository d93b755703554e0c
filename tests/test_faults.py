"""Each fault, over a real socket, seen by real clients (httpx and requests)."""

from __future__ import annotations

import concurrent.futures
import json
import threading

import httpx
import pytest
import requests

from mock_server.fixtures.plugin import BriaMock
from mock_server.traffic import sample_latency

RMBG = "/v2/image/edit/remove_background"


def body(mock: BriaMock) -> dict[str, object]:
    return {"image": mock.url("/samples/subject.jpg")}


def rule_header(action: dict[str, object]) -> dict[str, str]:
    return {"X-Bria-Mock-Rule": json.dumps(action)}


# --- errors -----------------------------------------------------------------------------


def test_an_injected_error_uses_the_envelope_and_its_headers(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    action = {"type": "error", "status": 503, "headers": {"Retry-After": "7"}}

    response = api.post(RMBG, json=body(bria_inprocess), headers=rule_header(action))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["message"] == "Service Unavailable"


def test_a_custom_status_and_body(bria_mock: BriaMock) -> None:
    action = {"type": "error", "status": 418, "body": {"teapot": True}}

    response = httpx.post(bria_mock.url(RMBG), json=body(bria_mock), headers={"api_token": "t", **rule_header(action)})

    assert (response.status_code, response.json()) == (418, {"teapot": True})


def test_prism_style_prefer_header(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    response = api.post(RMBG, json=body(bria_inprocess), headers={"Prefer": "code=429, retry-after=3"})

    assert (response.status_code, response.headers["retry-after"]) == (429, "3")


def test_a_bad_rule_header_is_400_naming_it(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    response = api.post(RMBG, json=body(bria_inprocess), headers={"X-Bria-Mock-Rule": '{"type": "error"}'})

    assert response.status_code == 400
    assert response.json()["error"]["details"].startswith("rule:")


# --- latency and slow bodies ------------------------------------------------------------


def test_a_delayed_request_never_blocks_others(bria_mock: BriaMock) -> None:
    slow_started = threading.Event()
    headers = {"api_token": "t"}

    def slow() -> int:
        slow_started.set()
        delayed = {**headers, **rule_header({"type": "latency", "ms": 1500})}
        return httpx.get(bria_mock.url("/v2/status/x"), headers=delayed, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(slow)
        slow_started.wait()
        quick = httpx.get(bria_mock.url("/v2/status/y"), headers=headers, timeout=10)
        assert not pending.done()  # the quick answer came while the delayed one was still held
        assert quick.status_code == 404
        assert pending.result() == 404


@pytest.mark.parametrize(
    ("action", "low", "high"),
    [
        ({"type": "latency", "ms": 250}, 0.25, 0.25),
        ({"type": "latency", "distribution": "uniform", "min_ms": 10, "max_ms": 20}, 0.010, 0.020),
        ({"type": "latency", "distribution": "lognormal", "median_ms": 50, "sigma": 3, "cap_ms": 80}, 0.0, 0.080),
    ],
)
def test_latency_distributions_stay_in_their_bounds(action: dict[str, object], low: float, high: float) -> None:
    samples = [sample_latency(action) for _ in range(200)]

    assert low <= min(samples) and max(samples) <= high


def test_a_slow_body_arrives_in_chunks(bria_mock: BriaMock) -> None:
    headers = {"api_token": "t", **rule_header({"type": "slow_body", "duration_ms": 200, "chunks": 4})}
    with httpx.stream("GET", bria_mock.url("/v2/status/x"), headers=headers) as response:
        chunks = [chunk for chunk in response.iter_raw() if chunk]

    assert len(chunks) == 4
    assert json.loads(b"".join(chunks)) == {"status": "NOT_FOUND"}


# --- connection faults: httpx and requests each see their own exception -----------------


@pytest.mark.parametrize(
    ("fault", "httpx_error", "requests_error"),
    [
        ({"fault": "reset"}, (httpx.ReadError, httpx.RemoteProtocolError), requests.ConnectionError),
        ({"fault": "empty"}, httpx.RemoteProtocolError, requests.ConnectionError),
        ({"fault": "garbage"}, httpx.RemoteProtocolError, requests.ConnectionError),
        ({"fault": "malformed_chunked"}, httpx.RemoteProtocolError, requests.exceptions.ChunkedEncodingError),
        ({"fault": "truncate", "bytes": 5}, httpx.RemoteProtocolError, requests.exceptions.ChunkedEncodingError),
    ],
    ids=lambda value: value["fault"] if isinstance(value, dict) else "",
)
def test_connection_faults_reach_real_clients(
    bria_mock: BriaMock, fault: dict[str, object], httpx_error: type[Exception], requests_error: type[Exception]
) -> None:
    headers = {"api_token": "t", **rule_header({"type": "connection", **fault})}
    url = bria_mock.url(RMBG)

    with pytest.raises(httpx_error):
        httpx.post(url, json=body(bria_mock), headers=headers)
    with pytest.raises(requests_error):
        requests.post(url, json=body(bria_mock), headers=headers, timeout=10)


def test_a_stall_never_answers(bria_mock: BriaMock) -> None:
    headers = {"api_token": "t", **rule_header({"type": "connection", "fault": "stall", "stall_seconds": 30})}

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(bria_mock.url("/v2/status/x"), headers=headers, timeout=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(bria_mock.url("/v2/status/x"), headers=headers, timeout=0.3)


def test_the_server_keeps_serving_after_connection_faults(socket_api: httpx.Client, bria_mock: BriaMock) -> None:
    for fault in ("reset", "empty", "garbage"):
        with pytest.raises(httpx.TransportError):
            socket_api.get(
                bria_mock.url("/v2/status/x"),
                headers={"api_token": "t", **rule_header({"type": "connection", "fault": fault})},
            )

    assert socket_api.get("/v2/status/x").status_code == 404


# --- job-level faults -------------------------------------------------------------------


def submit_with_job_rule(api: httpx.Client, mock: BriaMock, action: dict[str, object]) -> str:
    response = api.post(RMBG, json=body(mock), headers=rule_header({"type": "job", **action}))
    assert response.status_code == 202
    return str(response.json()["status_url"])


def test_a_job_that_stays_in_progress_forever(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    status_url = submit_with_job_rule(api, bria_inprocess, {"state": "IN_PROGRESS"})
    bria_inprocess.advance(1000)

    assert {api.get(status_url).json()["status"] for _ in range(5)} == {"IN_PROGRESS"}


def test_a_job_held_for_n_polls_then_completed(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    status_url = submit_with_job_rule(api, bria_inprocess, {"polls": 4})

    states = [api.get(status_url).json()["status"] for _ in range(5)]

    assert states == ["IN_PROGRESS"] * 4 + ["COMPLETED"]


def test_a_job_held_for_seconds_on_the_virtual_clock(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    status_url = submit_with_job_rule(api, bria_inprocess, {"seconds": 30})
    assert api.get(status_url).json()["status"] == "IN_PROGRESS"

    api.post("/bria-mock/clock/advance", json={"seconds": 30}, headers={"api_token": ""})

    assert api.get(status_url).json()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("action", "state", "code"),
    [({"state": "ERROR", "code": 422}, "ERROR", 422), ({"state": "UNKNOWN"}, "UNKNOWN", 500)],
)
def test_a_job_that_ends_badly(
    api: httpx.Client, bria_inprocess: BriaMock, action: dict[str, object], state: str, code: int
) -> None:
    status_url = submit_with_job_rule(api, bria_inprocess, action)
    api.get(status_url)

    final = api.get(status_url).json()

    assert (final["status"], final["error"]["code"]) == (state, code)


def test_the_status_endpoint_answers_503_for_a_while(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    status_url = api.post(RMBG, json=body(bria_inprocess)).json()["status_url"]
    bria_inprocess.add_rule({"endpoint": "status", "action": {"type": "error", "status": 503}, "times": 2})

    codes = [api.get(status_url).status_code for _ in range(4)]

    assert codes == [503, 503, 200, 200]


@pytest.mark.parametrize(
    ("action", "code"), [({"type": "error", "status": 404}, 404), ({"type": "error", "status": 500}, 500)]
)
def test_result_urls_that_expire_or_fail(
    api: httpx.Client, bria_inprocess: BriaMock, action: dict[str, object], code: int
) -> None:
    image_url = api.post(RMBG, json={**body(bria_inprocess), "sync": True}).json()["result"]["image_url"]
    bria_inprocess.add_rule({"endpoint": "result", "action": action})

    assert api.get(image_url).status_code == code
