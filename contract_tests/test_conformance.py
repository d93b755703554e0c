"""Each documented answer, produced on purpose: every response is checked against its schema,
status code and content type by the suite's client as it arrives."""

from __future__ import annotations

import pytest

from mock_server import operations
from mock_server.contract_tests.client import BriaApi
from mock_server.contract_tests.target import Target
from mock_server.image_factory import make_image

RMBG = "remove_background"
REPLACE = "replace_background"
EDIT = tuple(operations.names())  # every operation of the table
SYNC = tuple(op.name for op in operations.OPERATIONS if op.sync_allowed)
SUBJECT = make_image("JPEG", size=(48, 32))
BACKGROUND = make_image("PNG", size=(24, 24))
NEVER_ISSUED = "bria-mock-contract-never-issued"


def request_for(operation: str, image: str = SUBJECT.base64, **fields: object) -> dict[str, object]:
    """The operation's example request (the table's), with ``image`` wherever it takes an image."""
    return {**operations.operation(operation).example_request(image), **fields}


def image_url_of(result: dict[str, object]) -> str | None:
    """The result's image link; None for an operation that makes no image (structured instructions)."""
    url = result.get("image_url")
    return url if isinstance(url, str) else None


def error_details(response: object) -> str:
    return str(response.json()["error"]["details"])  # type: ignore[attr-defined]


# --- success ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", SYNC)
def test_a_sync_call_answers_200_with_a_downloadable_png(bria_api: BriaApi, operation: str) -> None:
    response = bria_api.submit(operation, request_for(operation, sync=True))

    assert response.status_code == 200
    url = image_url_of(response.json()["result"])
    assert url is None or bria_api.download(url).properties[0] == "PNG"


@pytest.mark.parametrize("operation", EDIT)
def test_an_async_call_answers_202_and_its_status_url_ends_completed(bria_api: BriaApi, operation: str) -> None:
    accepted = bria_api.submit(operation, request_for(operation))

    assert accepted.status_code == 202
    request_id, status_url = accepted.json()["request_id"], accepted.json()["status_url"]
    assert status_url.rstrip("/").rsplit("/", 1)[-1] == request_id  # documented: its last segment is the id
    final = bria_api.poll(status_url)[-1]
    assert final["status"] == "COMPLETED"
    assert final["request_id"] == request_id
    url = image_url_of(final["result"])
    assert url is None or bria_api.download(url).properties[0] == "PNG"


def test_replace_background_with_reference_images_has_no_refined_prompt(bria_api: BriaApi) -> None:
    body = {"image": SUBJECT.base64, "ref_images": [BACKGROUND.base64], "sync": True}

    response = bria_api.submit(REPLACE, body)

    assert response.status_code == 200
    assert "refined_prompt" not in response.json()["result"]


def test_the_status_of_an_id_never_issued_is_404_not_found(bria_api: BriaApi) -> None:
    response = bria_api.status(NEVER_ISSUED)

    assert response.status_code == 404
    assert response.json() == {"status": "NOT_FOUND"}


# --- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("operation", [*EDIT, "status"])
@pytest.mark.parametrize("token", [None, ""], ids=["no-header", "empty"])
def test_a_missing_token_is_401_in_the_envelope(bria_api: BriaApi, operation: str, token: str | None) -> None:
    if operation == "status":
        response = bria_api.status(NEVER_ISSUED, token=token)
    else:
        response = bria_api.submit(operation, request_for(operation), token=token)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


# --- the fake's triggers -----------------------------------------------------------------


@pytest.mark.fake_only("trigger tokens are the fake's own")
@pytest.mark.parametrize("code", [403, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("operation", [*EDIT, "status"])
def test_a_trigger_token_answers_its_code(bria_api: BriaApi, operation: str, code: int) -> None:
    token = f"bria-mock-{code}"
    if operation == "status":
        response = bria_api.status(NEVER_ISSUED, token=token, retry=False)
    else:
        response = bria_api.submit(operation, request_for(operation), token=token, retry=False)

    assert response.status_code == code
    if code == 429:
        assert response.headers["retry-after"].isdigit()


@pytest.mark.fake_only("job failure tokens are the fake's own")
@pytest.mark.parametrize("operation", EDIT)
@pytest.mark.parametrize(("token", "state"), [("bria-mock-job-error", "ERROR"), ("bria-mock-job-unknown", "UNKNOWN")])
def test_a_failing_job_ends_in_its_documented_state(bria_api: BriaApi, operation: str, token: str, state: str) -> None:
    accepted = bria_api.submit(operation, request_for(operation), token=token)
    synchronous = bria_api.submit(operation, request_for(operation, sync=True), token=token)

    assert accepted.status_code == 202
    assert bria_api.poll(accepted.json()["status_url"], token=token)[-1]["status"] == state
    # An async-only operation (enhance) answers a sync request 202 too.
    assert synchronous.status_code == (500 if operation in SYNC else 202)


@pytest.mark.fake_only("the reserved host not-found.invalid is the fake's own")
def test_an_image_url_on_the_reserved_host_is_404(bria_api: BriaApi) -> None:
    response = bria_api.submit(RMBG, request_for(RMBG, image="https://not-found.invalid/cat.jpg"))

    assert response.status_code == 404
    assert "image" in error_details(response)


@pytest.mark.fake_only("the fake never downloads: any remote URL is 460")
def test_a_remote_image_url_is_460(bria_api: BriaApi) -> None:
    response = bria_api.submit(REPLACE, request_for(REPLACE, image="https://images.example.com/cat.jpg"))

    assert response.status_code == 460


@pytest.mark.fake_only("the samples are served by the fake")
def test_an_image_url_on_the_target_is_read(bria_api: BriaApi, bria_target: Target) -> None:
    response = bria_api.submit(RMBG, request_for(RMBG, image=bria_target.url("/samples/subject.jpg"), sync=True))

    assert response.status_code == 200
    assert bria_api.download(response.json()["result"]["image_url"]).properties[1:] == ("RGBA", (640, 480))


@pytest.mark.fake_only("moderation markers are the fake's own")
def test_an_input_marked_unsafe_is_422_with_input_moderation(bria_api: BriaApi) -> None:
    marked = make_image("JPEG", size=(32, 32), comment="bria-mock:unsafe-input")

    response = bria_api.submit(RMBG, request_for(RMBG, marked.base64, visual_input_content_moderation=True))

    assert response.status_code == 422
    assert error_details(response).startswith("image")


@pytest.mark.fake_only("moderation markers are the fake's own")
def test_output_moderation_ends_an_async_job_in_error_422(bria_api: BriaApi) -> None:
    image = make_image("JPEG", size=(32, 32), comment="bria-mock:unsafe-output").base64

    accepted = bria_api.submit(RMBG, request_for(RMBG, image, visual_output_content_moderation=True))
    final = bria_api.poll(accepted.json()["status_url"])[-1]

    assert (final["status"], final["error"]["code"]) == ("ERROR", 422)


# --- refused requests ---------------------------------------------------------------------


@pytest.mark.risky
def test_a_prompt_failing_moderation_is_422_naming_the_prompt(bria_api: BriaApi) -> None:
    response = bria_api.submit(REPLACE, request_for(REPLACE, prompt="nsfw", sync=True))

    assert response.status_code == 422
    assert "prompt" in error_details(response)


@pytest.mark.risky
@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "L"), ("GIF", "P")], ids=["grey", "gif"])
def test_an_unsupported_image_is_415(bria_api: BriaApi, fmt: str, mode: str) -> None:
    unsupported = make_image(fmt, mode, (24, 24))

    response = bria_api.submit(RMBG, request_for(RMBG, unsupported.base64))

    assert response.status_code == 415


@pytest.mark.risky
@pytest.mark.parametrize("operation", EDIT)
def test_malformed_json_is_400(bria_api: BriaApi, operation: str) -> None:
    response = bria_api.post(operation, b'{"image": ')

    assert response.status_code == 400


@pytest.mark.risky
def test_a_body_that_is_not_json_is_400(bria_api: BriaApi) -> None:
    response = bria_api.post(RMBG, b"image=abc", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
