"""Sync and async flows of both endpoints, the status service, and result images, over HTTP."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from mock_server.fixtures.plugin import BriaMock

RMBG = "/v2/image/edit/remove_background"
REPLACE = "/v2/image/edit/replace_background"


def poll_until_done(api: httpx.Client, status_url: str, polls: int = 10) -> dict[str, object]:
    for _ in range(polls):
        body = api.get(status_url).json()
        if body["status"] != "IN_PROGRESS":
            return body
    raise AssertionError(f"still IN_PROGRESS after {polls} polls")


def download(api: httpx.Client, url: str) -> Image.Image:
    response = api.get(url, headers={"api_token": ""})  # no api_token: result links are public, like Bria's CDN
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_sync_remove_background_returns_a_png_with_alpha_of_the_input_size(
    api: httpx.Client, subject_jpeg_b64: str
) -> None:
    response = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True})

    assert response.status_code == 200
    image = download(api, response.json()["result"]["image_url"])
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (640, 480))


def test_async_remove_background_answers_202_then_completes_on_the_second_poll(
    api: httpx.Client, bria_inprocess: BriaMock, subject_jpeg_b64: str
) -> None:
    accepted = api.post(RMBG, json={"image": subject_jpeg_b64})

    assert accepted.status_code == 202
    request_id, status_url = accepted.json()["request_id"], accepted.json()["status_url"]
    assert status_url == f"{bria_inprocess.base_url}/v2/status/{request_id}"
    assert api.get(status_url).json() == {"request_id": request_id, "status": "IN_PROGRESS"}
    completed = poll_until_done(api, status_url)
    assert completed["status"] == "COMPLETED"
    assert download(api, completed["result"]["image_url"]).size == (640, 480)  # type: ignore[index]


def test_a_terminal_status_never_changes(api: httpx.Client, subject_jpeg_b64: str) -> None:
    status_url = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["status_url"]
    first = poll_until_done(api, status_url)

    assert [api.get(status_url).json() for _ in range(3)] == [first] * 3


def test_sync_replace_background_returns_seed_and_refined_prompt(api: httpx.Client, subject_jpeg_b64: str) -> None:
    body = api.post(REPLACE, json={"image": subject_jpeg_b64, "prompt": "in a parking lot", "sync": True}).json()

    assert isinstance(body["result"]["seed"], int)
    assert "in a parking lot" in body["result"]["refined_prompt"]
    image = download(api, body["result"]["image_url"])
    assert image.format == "PNG"
    assert (
        abs(image.width * image.height - 1024 * 1024) / (1024 * 1024) < 0.01
        or abs(image.width * image.height - 1_000_000) / 1_000_000 < 0.01
    )


def test_replace_background_with_original_quality_keeps_the_input_size(
    api: httpx.Client, subject_jpeg_b64: str
) -> None:
    payload = {"image": subject_jpeg_b64, "prompt": "#FF5733", "original_quality": True, "sync": True}
    body = api.post(REPLACE, json=payload).json()

    assert download(api, body["result"]["image_url"]).size == (640, 480)


def test_replace_background_with_ref_images_has_no_refined_prompt(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {
        "image": bria_inprocess.url("/samples/subject.jpg"),
        "ref_images": [bria_inprocess.url("/samples/background.jpg")],
    }
    accepted = api.post(REPLACE, json={**payload, "sync": False})
    completed = poll_until_done(api, accepted.json()["status_url"])

    assert completed["status"] == "COMPLETED"
    assert "refined_prompt" not in completed["result"]  # type: ignore[operator]
    assert "seed" in completed["result"]  # type: ignore[operator]


def test_the_same_image_url_always_serves_the_same_bytes(api: httpx.Client, subject_jpeg_b64: str) -> None:
    url = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json()["result"]["image_url"]

    assert api.get(url).content == api.get(url).content


def test_a_result_url_can_be_the_input_of_the_next_call(api: httpx.Client, subject_jpeg_b64: str) -> None:
    cutout = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json()["result"]["image_url"]

    response = api.post(REPLACE, json={"image": cutout, "prompt": "on a beach", "sync": True})

    assert response.status_code == 200


def test_status_of_an_unknown_id_is_404_not_found(api: httpx.Client) -> None:
    response = api.get("/v2/status/never-issued")

    assert response.status_code == 404
    assert response.json() == {"status": "NOT_FOUND"}


def test_a_sync_request_id_is_also_known_to_the_status_service(api: httpx.Client, subject_jpeg_b64: str) -> None:
    request_id = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json()["request_id"]

    assert api.get(f"/v2/status/{request_id}").json()["status"] in {"IN_PROGRESS", "COMPLETED"}


def test_reset_forgets_jobs(api: httpx.Client, bria_inprocess: BriaMock, subject_jpeg_b64: str) -> None:
    request_id = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["request_id"]

    bria_inprocess.reset()

    assert api.get(f"/v2/status/{request_id}").status_code == 404


def test_public_url_is_the_base_of_status_and_image_urls(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(public_url="https://bria.example.test/")
    api = client_for(server.base_url)

    accepted = api.post(RMBG, json={"image": subject_jpeg_b64}).json()
    done = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json()

    assert accepted["status_url"] == f"https://bria.example.test/v2/status/{accepted['request_id']}"
    assert done["result"]["image_url"].startswith("https://bria.example.test/results/")


def test_unknown_routes_and_methods_answer_in_the_envelope(api: httpx.Client) -> None:
    assert api.post("/v2/image/edit/no_such_endpoint", json={}).status_code == 404
    assert api.get(RMBG).status_code == 405


def test_a_sync_job_is_completed_at_its_first_status_poll(api: httpx.Client, subject_jpeg_b64: str) -> None:
    done = api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).json()

    status = api.get(f"/v2/status/{done['request_id']}").json()

    assert (status["status"], status["result"]) == ("COMPLETED", done["result"])
