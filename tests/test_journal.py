"""The journal: what it records, what it hides, its bounds, its queries and the verification helpers."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from starlette.applications import Starlette

from mock_server.assertions import assert_called, assert_called_in_order, assert_not_called
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image

RMBG = "/v2/image/edit/remove_background"
REPLACE = "/v2/image/edit/replace_background"


def test_an_exchange_is_recorded_without_token_or_image_payload(
    api: httpx.Client, bria_inprocess: BriaMock, subject_jpeg_b64: str
) -> None:
    bria_inprocess.add_rule({"id": "slowish", "action": {"type": "latency", "ms": 1}})
    api.post(RMBG, json={"image": subject_jpeg_b64, "sync": True})

    (entry,) = bria_inprocess.calls(endpoint="remove_background")
    assert (entry.method, entry.path, entry.status, entry.rules) == ("POST", RMBG, 200, ["slowish"])
    assert entry.request_headers["api_token"] == "<redacted>"
    assert entry.body["image"]["format"] == "JPEG"
    assert entry.body["image"]["size"] > 1000
    assert entry.body["sync"] is True
    assert entry.duration_ms > 0
    assert "test-token" not in str(entry.to_json())
    assert subject_jpeg_b64[:40] not in str(entry.to_json())


def test_the_admin_api_filters_counts_and_clears(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    api.get("/v2/status/a")
    api.get("/v2/status/b")
    api.post(RMBG, json={})

    journal = api.get(bria_inprocess.url("/bria-mock/journal"), params={"endpoint": "status"}).json()
    assert journal["count"] == 2
    assert [entry["status"] for entry in journal["entries"]] == [404, 404]
    assert api.get(bria_inprocess.url("/bria-mock/journal"), params={"status": 400}).json()["count"] == 1
    assert api.post(bria_inprocess.url("/bria-mock/journal/clear"), json={}).status_code == 200
    assert api.get(bria_inprocess.url("/bria-mock/journal")).json()["count"] == 0


def test_the_journal_is_bounded_by_count_and_bytes(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    by_count = make_server(journal_max_entries=3)
    api = client_for(by_count.base_url)
    for name in "abcde":
        api.get(f"/v2/status/{name}")
    assert [entry.path for entry in by_count.backend.journal.entries()] == [f"/v2/status/{n}" for n in "cde"]

    by_bytes = make_server(journal_max_bytes=3000)
    api = client_for(by_bytes.base_url)
    for _ in range(20):
        api.post(RMBG, json={"image": "https://not-found.invalid/x.jpg", "padding": "x" * 500})
    kept = len(by_bytes.backend.journal)
    assert 1 <= kept < 20


def test_verification_helpers_pass_and_fail_with_the_nearest_requests(
    api: httpx.Client, bria_inprocess: BriaMock, bria_app: Starlette
) -> None:
    journal = bria_app.state.backend.journal
    api.post(REPLACE, json={"image": bria_inprocess.url("/samples/subject.jpg"), "prompt": "a beach"})
    api.get("/v2/status/x")

    assert len(assert_called(journal, endpoint="replace_background", times=1)) == 1
    assert_called(journal, endpoint="replace_background", body={"prompt": "a beach"})
    assert_not_called(journal, endpoint="remove_background")
    assert_called_in_order(journal, {"endpoint": "replace_background"}, {"endpoint": "status"})

    with pytest.raises(AssertionError, match=r"(?s)got 0.*nearest recorded requests:.*replace_background.*a beach"):
        assert_called(journal, endpoint="replace_background", body={"prompt": "a forest"})
    with pytest.raises(AssertionError, match="step 2 of 2 never came in order"):
        assert_called_in_order(journal, {"endpoint": "status"}, {"endpoint": "replace_background"})


@pytest.mark.parametrize("image", ["data:", "data:image/png;base64", "data:,"])
def test_odd_data_urls_are_summarised_without_error(api: httpx.Client, bria_inprocess: BriaMock, image: str) -> None:
    assert api.post(RMBG, json={"image": image}).status_code in (400, 415)
    assert not bria_inprocess.crashes()
    assert bria_inprocess.calls(endpoint="remove_background")[0].body["image"]["size"] >= 0


def test_a_small_body_is_summarised_when_the_journal_is_read(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    tiny = make_image(format="PNG", size=(8, 8))
    api.post(RMBG, json={"image": tiny.base64})

    (entry,) = bria_inprocess.calls(endpoint="remove_background")
    assert isinstance(entry.request_body, bytes)  # recorded as bytes: nothing spent on it yet
    assert tiny.base64 not in repr(entry)
    assert entry.body["image"] == {
        "sha256": hashlib.sha256(tiny.base64.encode()).hexdigest(),
        "size": len(tiny.base64) * 3 // 4,
        "format": "PNG",
    }
    assert entry.body is entry.body  # summarised once
    assert tiny.base64 not in str(entry.to_json())
