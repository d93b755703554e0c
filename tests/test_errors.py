"""Every documented error code, produced from request content alone (the README's trigger table)."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image

RMBG = "/v2/image/edit/remove_background"
REPLACE = "/v2/image/edit/replace_background"


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["details"]


def encoded(image: Image.Image, fmt: str) -> str:
    out = io.BytesIO()
    image.save(out, fmt)
    return base64.b64encode(out.getvalue()).decode()


# --- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "image"),
        ({"image": 7}, "image"),
        ({"image": ""}, "image"),
        ({"image": "aGk=", "sync": "yes"}, "sync"),
        ({"image": "aGk=", "preserve_alpha": 1}, "preserve_alpha"),
        ({"image": "aGk=", "visual_input_content_moderation": None}, "visual_input_content_moderation"),
    ],
)
def test_remove_background_400_names_the_field(api: httpx.Client, payload: dict[str, object], field: str) -> None:
    status, details = error_of(api.post(RMBG, json=payload))

    assert status == 400
    assert details.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"image": "aGk=", "prompt": "x", "mode": "turbo"}, "mode"),
        ({"image": "aGk=", "prompt": "x", "seed": "42"}, "seed"),
        ({"image": "aGk=", "ref_images": [3]}, "ref_images"),
        ({"image": "aGk=", "prompt": "x", "original_quality": "true"}, "original_quality"),
    ],
)
def test_replace_background_400_names_the_field(api: httpx.Client, payload: dict[str, object], field: str) -> None:
    status, details = error_of(api.post(REPLACE, json=payload))

    assert status == 400
    assert details.startswith(f"{field}:")


@pytest.mark.parametrize(
    "extra",
    [{}, {"prompt": "a beach", "ref_images": "aGk="}, {"prompt": None, "ref_images": []}, {"prompt": ""}],
    ids=["neither", "both", "null-and-empty-list", "empty-prompt"],
)
def test_replace_background_needs_exactly_one_of_prompt_and_ref_images(
    api: httpx.Client, subject_jpeg_b64: str, extra: dict[str, object]
) -> None:
    status, details = error_of(api.post(REPLACE, json={"image": subject_jpeg_b64, **extra}))

    assert status == 400
    assert details.startswith("prompt, ref_images:")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"image": ', "malformed JSON"),
        (b"[1, 2]", "expected object"),
        (b'"x"', "expected object"),
        (b"\xff\xfe{", ""),
    ],
)
def test_bodies_that_are_not_a_json_object_are_400(api: httpx.Client, content: bytes, needle: str) -> None:
    response = api.post(RMBG, content=content, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert needle in response.json()["error"]["details"]


def test_a_form_post_is_400_naming_the_content_type(api: httpx.Client) -> None:
    status, details = error_of(api.post(RMBG, data={"image": "x"}))

    assert (status, details.split(":")[0]) == (400, "Content-Type")


def test_unknown_fields_sent_by_real_clients_are_accepted(api: httpx.Client, subject_jpeg_b64: str) -> None:
    payload = {
        "image": subject_jpeg_b64,
        "prompt": "a beach",
        "fast": "true",
        "ref_images": [],
        "negative_prompt": None,
        "webhook_url": "https://hooks.example.test/bria",
        "something_new": {"nested": True},
        "sync": True,
    }
    assert api.post(REPLACE, json=payload).status_code == 200
    assert api.post(RMBG, json={"image": subject_jpeg_b64, "seed": 3, "sync": True}).status_code == 200


def test_an_oversized_body_is_413_before_it_is_read(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for(make_server(max_body_bytes=1000).base_url)

    status, details = error_of(api.post(RMBG, json={"image": "A" * 2000}))

    assert status == 413
    assert "1000" in details


# --- 401, 403, 429, 5XX: tokens ----------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"api_token": ""}])
def test_missing_or_empty_token_is_401_everywhere(bria_mock: BriaMock, client_for, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    api = client_for(bria_mock.base_url, token=None)

    assert api.post(RMBG, json={"image": "x"}, headers=headers).status_code == 401
    assert api.post(REPLACE, json={"image": "x"}, headers=headers).status_code == 401
    assert api.get("/v2/status/abc", headers=headers).status_code == 401


def test_token_restriction_accepts_only_listed_tokens(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(tokens=("good",))

    assert client_for(server.base_url, token="bad").post(RMBG, json={"image": subject_jpeg_b64}).status_code == 401
    assert client_for(server.base_url, token="good").post(RMBG, json={"image": subject_jpeg_b64}).status_code == 202


@pytest.mark.parametrize("code", [403, 429, 500, 502, 503, 504])
def test_trigger_tokens_fail_every_api_call_with_their_code(bria_mock: BriaMock, client_for, code: int) -> None:  # type: ignore[no-untyped-def]
    api = client_for(bria_mock.base_url, token=f"bria-mock-{code}")

    for response in (api.post(RMBG, json={"image": "x"}), api.post(REPLACE, json={}), api.get("/v2/status/x")):
        assert response.status_code == code
        assert response.json()["error"]["message"] != ""


def test_429_carries_retry_after(bria_mock: BriaMock, client_for) -> None:  # type: ignore[no-untyped-def]
    response = client_for(bria_mock.base_url, token="bria-mock-429").post(RMBG, json={"image": "x"})

    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["message"] == "Too Many Requests"


# --- 404, 460: image URLs ---------------------------------------------------------------


def test_an_image_url_on_the_fake_that_does_not_exist_is_404(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    status, details = error_of(api.post(RMBG, json={"image": bria_inprocess.url("/samples/missing.png")}))

    assert (status, details.split(":")[0]) == (404, "image")


def test_the_reserved_not_found_host_is_404(api: httpx.Client) -> None:
    assert api.post(RMBG, json={"image": "https://not-found.invalid/cat.jpg"}).status_code == 404


def test_any_other_remote_url_is_460_failed_to_download(api: httpx.Client) -> None:
    response = api.post(REPLACE, json={"image": "https://images.example.com/cat.jpg", "prompt": "a beach"})

    assert response.status_code == 460
    assert response.json()["error"]["message"] == "Failed to download image"


def test_a_bad_ref_image_url_names_its_index(api: httpx.Client, subject_jpeg_b64: str) -> None:
    refs = ["https://not-found.invalid/a.jpg"]
    status, details = error_of(api.post(REPLACE, json={"image": subject_jpeg_b64, "ref_images": refs}))

    assert (status, details.split(":")[0]) == (404, "ref_images[0]")


def test_a_non_http_url_is_400(api: httpx.Client) -> None:
    assert api.post(RMBG, json={"image": "file:///etc/passwd"}).status_code == 400


# --- 415: formats and modes -------------------------------------------------------------


@pytest.mark.parametrize("sample", ["grayscale.png", "animated.gif"])
def test_unsupported_formats_and_modes_are_415(api: httpx.Client, bria_inprocess: BriaMock, sample: str) -> None:
    assert api.post(RMBG, json={"image": bria_inprocess.url(f"/samples/{sample}")}).status_code == 415


@pytest.mark.parametrize(
    "image",
    ["not base64 at all!", base64.b64encode(b"just some bytes, not an image").decode(), "data:image/png;base64,AAAA"],
)
def test_undecodable_images_are_415(api: httpx.Client, image: str) -> None:
    assert api.post(RMBG, json={"image": image}).status_code == 415


def test_a_truncated_jpeg_is_415(api: httpx.Client) -> None:
    whole = base64.b64decode(encoded(Image.new("RGB", (300, 300), (10, 200, 30)), "JPEG"))
    truncated = base64.b64encode(whole[: len(whole) // 2]).decode()

    assert api.post(RMBG, json={"image": truncated, "sync": True}).status_code == 415


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "CMYK"])
def test_documented_modes_are_accepted(api: httpx.Client, mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    image = encoded(Image.new(mode, (32, 24)), fmt)

    assert api.post(RMBG, json={"image": image, "sync": True}).status_code == 200


def test_a_data_url_prefix_is_accepted(api: httpx.Client, subject_jpeg_b64: str) -> None:
    image = f"data:image/jpeg;base64,{subject_jpeg_b64}"

    assert api.post(RMBG, json={"image": image, "sync": True}).status_code == 200


def test_webp_on_remove_background_follows_the_setting(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    webp = encoded(Image.new("RGB", (32, 24), (9, 9, 9)), "WEBP")
    strict = client_for(make_server(rmbg_accept_webp=False).base_url)
    lenient = client_for(make_server().base_url)

    assert strict.post(RMBG, json={"image": webp, "sync": True}).status_code == 415
    assert strict.post(REPLACE, json={"image": webp, "prompt": "x", "sync": True}).status_code == 200
    assert lenient.post(RMBG, json={"image": webp, "sync": True}).status_code == 200


def test_a_decompression_bomb_is_415_without_decoding(api: httpx.Client) -> None:
    # A PNG that declares 50,000 x 50,000 pixels in a few bytes.
    bomb = make_image(broken="huge_dimensions").base64

    status, details = error_of(api.post(RMBG, json={"image": bomb}))

    assert status == 415
    assert "too many pixels" in details


def test_an_image_over_max_image_pixels_is_415_naming_its_size(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for(make_server(max_image_pixels=10_000).base_url)

    status, details = error_of(api.post(RMBG, json={"image": encoded(Image.new("RGB", (200, 100)), "PNG")}))

    assert (status, details) == (415, "image: 200x100 pixels is over the limit of 10000 pixels")


# --- 422: moderation --------------------------------------------------------------------


def test_an_unsafe_prompt_is_422_naming_prompt(api: httpx.Client, subject_jpeg_b64: str) -> None:
    status, details = error_of(api.post(REPLACE, json={"image": subject_jpeg_b64, "prompt": "NSFW beach"}))

    assert (status, details.split(":")[0]) == (422, "prompt")


def test_prompt_moderation_can_be_turned_off(api: httpx.Client, subject_jpeg_b64: str) -> None:
    payload = {"image": subject_jpeg_b64, "prompt": "nsfw beach", "prompt_content_moderation": False, "sync": True}

    assert api.post(REPLACE, json=payload).status_code == 200


@pytest.mark.parametrize("path", [RMBG, REPLACE])
def test_a_marked_input_fails_input_moderation_only_when_asked(
    api: httpx.Client, bria_inprocess: BriaMock, path: str
) -> None:
    payload = {"image": bria_inprocess.url("/samples/unsafe-input.jpg"), "prompt": "x", "sync": True}
    if path == RMBG:
        del payload["prompt"]

    checked = api.post(path, json={**payload, "visual_input_content_moderation": True})

    assert error_of(checked) == (
        422,
        "image: the input image failed content moderation (visual_input_content_moderation)",
    )
    assert api.post(path, json=payload).status_code == 200


def test_output_moderation_is_422_in_sync_mode(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {"image": bria_inprocess.url("/samples/unsafe-output.jpg"), "visual_output_content_moderation": True}

    status, details = error_of(api.post(RMBG, json={**payload, "sync": True}))

    assert (status, details.split(":")[0]) == (422, "visual_output_content_moderation")


def test_output_moderation_ends_an_async_job_in_error_422(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {"image": bria_inprocess.url("/samples/unsafe-output.jpg"), "visual_output_content_moderation": True}
    status_url = api.post(RMBG, json=payload).json()["status_url"]

    api.get(status_url)
    body = api.get(status_url).json()

    assert body["status"] == "ERROR"
    assert body["error"]["code"] == 422


# --- job-level failures -------------------------------------------------------------------


@pytest.mark.parametrize(("token", "state"), [("bria-mock-job-error", "ERROR"), ("bria-mock-job-unknown", "UNKNOWN")])
def test_job_failure_tokens_end_async_jobs_badly_and_sync_calls_in_500(
    bria_mock: BriaMock,
    client_for,
    subject_jpeg_b64: str,
    token: str,
    state: str,  # type: ignore[no-untyped-def]
) -> None:
    api = client_for(bria_mock.base_url, token=token)
    status_url = api.post(RMBG, json={"image": subject_jpeg_b64}).json()["status_url"]

    api.get(status_url)

    assert api.get(status_url).json()["status"] == state
    assert api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True}).status_code == 500


def test_more_reference_images_than_max_ref_images_is_400(make_server, client_for, subject_jpeg_b64: str) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_ref_images=2)
    refs = [f"{server.base_url}/samples/background.jpg"] * 3

    status, details = error_of(
        client_for(server.base_url).post(REPLACE, json={"image": subject_jpeg_b64, "ref_images": refs})
    )

    assert (status, details) == (400, "ref_images: at most 2 reference images (max_ref_images)")


def test_details_never_echo_a_megabyte_back(api: httpx.Client) -> None:
    url = "https://images.example/" + "t" * 1_000_000
    status, details = error_of(api.post(REPLACE, json={"image": url, "prompt": "y"}))

    assert status == 460
    assert len(details) == 500
    assert details.startswith("image:") and details.endswith("…")


def test_with_remote_fetching_on_a_private_address_is_refused_without_connecting(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    api = client_for(make_server(allow_remote_fetch=True).base_url)

    status, details = error_of(api.post(RMBG, json={"image": "http://10.0.0.1/cat.jpg"}))

    assert status == 460
    assert "10.0.0.1" in details and "refused" in details


def test_with_remote_fetching_off_the_details_say_so(api: httpx.Client) -> None:
    assert "remote fetching is off" in error_of(api.post(RMBG, json={"image": "http://10.0.0.1/cat.jpg"}))[1]
