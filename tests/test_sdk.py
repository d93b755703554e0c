"""The official SDK (bria-client) against the fake over a real socket: every flow, every error."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
from bria_client import BriaAsyncClient, BriaSyncClient
from bria_client.toolkit.errors import BriaException
from PIL import Image

from mock_server.fixtures.plugin import BriaMock

RMBG = "image/edit/remove_background"
REPLACE = "image/edit/replace_background"
PAYLOADS = {
    RMBG: lambda mock: {"image": mock.url("/samples/subject.jpg")},
    REPLACE: lambda mock: {"image": mock.url("/samples/subject.jpg"), "prompt": "on a wooden table"},
}


def downloaded(url: str) -> Image.Image:
    return Image.open(io.BytesIO(httpx.get(url).content))


@pytest.mark.parametrize("endpoint", [RMBG, REPLACE])
def test_run_returns_a_completed_response_with_a_real_image(bria_env: BriaMock, endpoint: str) -> None:
    with BriaSyncClient() as client:
        response = client.run(endpoint=endpoint, payload=PAYLOADS[endpoint](bria_env), raise_for_status=True)

    assert response.status == "COMPLETED"
    assert downloaded(response.result.image_url).format == "PNG"


@pytest.mark.parametrize("endpoint", [RMBG, REPLACE])
def test_submit_then_poll_completes(bria_env: BriaMock, endpoint: str) -> None:
    with BriaSyncClient() as client:
        submitted = client.submit(endpoint=endpoint, payload=PAYLOADS[endpoint](bria_env), raise_for_status=True)
        assert submitted.status == "IN_PROGRESS"
        assert client.status(submitted.request_id) == "IN_PROGRESS"
        done = client.poll(submitted, interval=0.05, timeout=10)
        final_status = client.status(submitted.request_id)

    assert done.status == "COMPLETED"
    assert final_status == "COMPLETED"
    assert downloaded(done.result.image_url).mode in {"RGBA", "RGB"}


@pytest.mark.parametrize("endpoint", [RMBG, REPLACE])
def test_async_client_run_submit_poll_and_status(bria_env: BriaMock, endpoint: str) -> None:
    async def flows() -> tuple[str, str, str]:
        async with BriaAsyncClient() as client:
            ran = await client.run(endpoint=endpoint, payload=PAYLOADS[endpoint](bria_env), raise_for_status=True)
            submitted = await client.submit(endpoint=endpoint, payload=PAYLOADS[endpoint](bria_env))
            polled = await client.poll(submitted, interval=0.05, timeout=10)
            return ran.status, polled.status, await client.status(submitted.request_id)

    assert asyncio.run(flows()) == ("COMPLETED", "COMPLETED", "COMPLETED")


def test_replace_background_seed_reaches_the_sdk_result(bria_env: BriaMock) -> None:
    payload = {**PAYLOADS[REPLACE](bria_env), "seed": 1234}
    with BriaSyncClient() as client:
        response = client.run(endpoint=REPLACE, payload=payload, raise_for_status=True)

    assert response.result.seed == 1234


def _sdk_error(bria_mock: BriaMock, payload: dict[str, object], token: str | None = None) -> BriaException:
    with (
        BriaSyncClient(base_url=bria_mock.base_url, api_token=token or bria_mock.token) as client,
        pytest.raises(BriaException) as caught,
    ):
        client.run(endpoint=RMBG, payload=payload, raise_for_status=True)
    return caught.value


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, 400),
        ({"image": "https://not-found.invalid/x.jpg"}, 404),
        ({"image": "not base64!"}, 415),
        ({"image": "https://images.example.com/x.jpg"}, 460),
    ],
)
def test_request_errors_reach_the_sdk_as_bria_exceptions(
    bria_mock: BriaMock, payload: dict[str, object], code: int
) -> None:
    error = _sdk_error(bria_mock, payload)

    assert error.code == code
    assert error.details  # the fake's explanation, not the SDK's synthetic fallback


def test_moderation_422_reaches_the_sdk(bria_mock: BriaMock) -> None:
    payload = {"image": bria_mock.url("/samples/unsafe-input.jpg"), "visual_input_content_moderation": True}

    assert _sdk_error(bria_mock, payload).code == 422


@pytest.mark.parametrize("code", [403, 429, 500, 502, 503, 504])
def test_token_trigger_errors_reach_the_sdk(bria_mock: BriaMock, code: int) -> None:
    payload = {"image": bria_mock.url("/samples/subject.jpg")}

    assert _sdk_error(bria_mock, payload, token=f"bria-mock-{code}").code == code


def test_a_token_not_accepted_is_401_for_the_sdk(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(tokens=("the-right-one",))
    with (
        BriaSyncClient(base_url=server.base_url, api_token="a-wrong-one") as client,
        pytest.raises(BriaException) as caught,
    ):
        client.run(endpoint=RMBG, payload={"image": "x"}, raise_for_status=True)

    assert caught.value.code == 401


def test_poll_of_a_job_that_fails_raises_with_the_jobs_code(bria_mock: BriaMock) -> None:
    payload = {"image": bria_mock.url("/samples/unsafe-output.jpg"), "visual_output_content_moderation": True}
    with BriaSyncClient(base_url=bria_mock.base_url, api_token=bria_mock.token) as client:
        submitted = client.submit(endpoint=RMBG, payload=payload, raise_for_status=True)
        with pytest.raises(BriaException) as caught:
            client.poll(submitted, interval=0.05, timeout=10)

    assert caught.value.code == 422


def test_status_of_an_unknown_id_is_a_404_for_the_sdk(bria_env: BriaMock) -> None:
    with BriaSyncClient() as client:
        response = client.engine.get(endpoint="status/never-issued")

    assert response.error is not None and response.error.code == 404


def test_base64_input_through_the_sdk(bria_env: BriaMock) -> None:
    out = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 10, 10)).save(out, "JPEG")
    payload = {"image": base64.b64encode(out.getvalue()).decode()}
    with BriaSyncClient() as client:
        response = client.run(endpoint=RMBG, payload=payload, raise_for_status=True)

    assert downloaded(response.result.image_url).size == (50, 40)


def test_the_sdk_rides_out_429s_on_the_status_service(bria_env: BriaMock) -> None:
    # Retry-After: 1, honoured as it is (a "0" would fall back to the SDK's own backoff of seconds).
    limited = {"type": "error", "status": 429, "headers": {"Retry-After": "1"}}
    bria_env.add_rule({"endpoint": "status", "action": limited, "times": 2})
    with BriaSyncClient() as client:
        submitted = client.submit(endpoint=RMBG, payload=PAYLOADS[RMBG](bria_env), raise_for_status=True)
        done = client.poll(submitted, interval=0.05, timeout=20)

    assert done.status == "COMPLETED"
    assert bria_env.rules()[0].fired == 2


def test_a_job_held_in_progress_times_the_sdk_poll_out(bria_env: BriaMock) -> None:
    bria_env.add_rule({"endpoint": "remove_background", "action": {"type": "job", "state": "IN_PROGRESS"}})
    with BriaSyncClient() as client:
        submitted = client.submit(endpoint=RMBG, payload=PAYLOADS[RMBG](bria_env), raise_for_status=True)
        with pytest.raises(TimeoutError):
            client.poll(submitted, interval=0.05, timeout=1)
