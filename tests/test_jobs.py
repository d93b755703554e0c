"""Job progression and expiry rules, driven by the backend's clock."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import time

import httpx
from starlette.applications import Starlette

from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image

RMBG = "/v2/image/edit/remove_background"


def test_jobs_expire_after_the_ttl_and_then_answer_404(
    api: httpx.Client, bria_inprocess: BriaMock, subject_jpeg_b64: str
) -> None:
    accepted = api.post(RMBG, json={"image": subject_jpeg_b64}).json()
    api.get(accepted["status_url"])
    result_url = api.get(accepted["status_url"]).json()["result"]["image_url"]

    bria_inprocess.advance(bria_inprocess.settings.job_ttl_seconds - 1)
    assert api.get(accepted["status_url"]).status_code == 200
    bria_inprocess.advance(2)

    assert api.get(accepted["status_url"]).json() == {"status": "NOT_FOUND"}
    assert api.get(result_url).status_code == 404


def test_past_max_jobs_the_oldest_expire_first(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    api = client_for(make_server(max_jobs=2).base_url)
    ids = [api.post(RMBG, json={"image": subject_jpeg_b64}).json()["request_id"] for _ in range(3)]

    assert [api.get(f"/v2/status/{rid}").status_code for rid in ids] == [404, 200, 200]


def test_progress_polls_sets_how_many_polls_answer_in_progress(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    api = client_for(make_server(progress_polls=3).base_url)
    status_url = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["status_url"]

    states = [api.get(status_url).json()["status"] for _ in range(5)]

    assert states == ["IN_PROGRESS"] * 3 + ["COMPLETED"] * 2


def test_progress_seconds_holds_a_job_until_the_clock_passes(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(progress_polls=0, progress_seconds=30)
    api = client_for(server.base_url)
    status_url = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["status_url"]

    assert [api.get(status_url).json()["status"] for _ in range(3)] == ["IN_PROGRESS"] * 3
    server.backend.clock.advance(30)
    assert api.get(status_url).json()["status"] == "COMPLETED"


def test_status_never_reports_failed(
    socket_api: httpx.Client, bria_mock: BriaMock, client_for, subject_jpeg_b64: str
) -> None:  # type: ignore[no-untyped-def]
    seen = set()
    for token in ("test-token", "bria-mock-job-error", "bria-mock-job-unknown"):
        client = client_for(bria_mock.base_url, token=token)
        status_url = client.post(RMBG, json={"image": subject_jpeg_b64}).json()["status_url"]
        seen.update(client.get(status_url).json()["status"] for _ in range(3))

    assert seen == {"IN_PROGRESS", "COMPLETED", "ERROR", "UNKNOWN"}


def test_past_max_result_bytes_the_oldest_jobs_expire_first(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_result_bytes=1)  # every new result pushes the older ones out
    api = client_for(server.base_url)
    done = [api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json() for _ in range(2)]

    assert [api.get(f"/v2/status/{body['request_id']}").status_code for body in done] == [404, 200]
    assert httpx.get(done[0]["result"]["image_url"]).status_code == 404
    assert server.backend.jobs.image_bytes == len(httpx.get(done[1]["result"]["image_url"]).content)


def test_an_async_job_is_processed_on_its_first_due_poll(
    api: httpx.Client, bria_app: Starlette, subject_jpeg_b64: str
) -> None:
    jobs = bria_app.state.backend.jobs  # the job's own state, which no client and no handle sees
    request_id = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["request_id"]
    job = jobs.get(request_id)
    assert job is not None and job.outcome is None and job.task is None  # accepted, nothing rendered yet
    assert jobs.image_bytes == len(base64.b64decode(subject_jpeg_b64))  # its input is held

    assert api.get(f"/v2/status/{request_id}").json()["status"] == "IN_PROGRESS"  # not due: still not rendered
    assert job.outcome is None
    done = api.get(f"/v2/status/{request_id}").json()

    assert done["status"] == "COMPLETED"
    assert job.work is None  # the input is released once the result exists
    assert jobs.image_bytes == len(api.get(done["result"]["image_url"]).content)


def test_waiting_inputs_count_toward_max_result_bytes(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    size = len(base64.b64decode(subject_jpeg_b64))
    api = client_for(make_server(max_result_bytes=size * 3 // 2).base_url)  # room for one waiting input
    ids = [api.post(RMBG, json={"image": subject_jpeg_b64}).json()["request_id"] for _ in range(2)]

    assert [api.get(f"/v2/status/{rid}").status_code for rid in ids] == [404, 200]


def test_polls_that_arrive_while_a_job_is_processed_all_get_its_outcome(make_server, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(progress_polls=0)

    async def submit_and_poll_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, headers={"api_token": "t"}) as client:
            request_id = (await client.post(RMBG, json={"image": subject_jpeg_b64})).json()["request_id"]
            return await asyncio.gather(*(client.get(f"/v2/status/{request_id}") for _ in range(4)))

    polls = asyncio.run(submit_and_poll_at_once())

    assert [poll.json()["status"] for poll in polls] == ["COMPLETED"] * 4
    assert len({poll.json()["result"]["image_url"] for poll in polls}) == 1


def test_a_sync_call_in_flight_survives_a_reset(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    api = client_for(server.base_url)
    large = make_image(format="JPEG", size=(2400, 1800))  # long enough to render for a reset to land
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(api.post, RMBG, json={"image": large.base64, "sync": True}, timeout=60)
        deadline = time.monotonic() + 30
        while len(server.backend.jobs) == 0 and time.monotonic() < deadline:  # accepted: rendering now
            time.sleep(0.001)
        server.reset()
        answer = call.result()

    assert answer.status_code == 200
    assert not server.backend.crashes
