"""The inspector's routes in-process: the page and its files, exchanges in pages, an exchange's
inputs, the jobs (looking is never a poll), and the same protection as the other controls."""

from __future__ import annotations

import asyncio
import base64
import importlib.resources

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from mock_server.app import create_app
from mock_server.config import Settings
from mock_server.image_factory import encode, make_image

RMBG = "/v2/image/edit/remove_background"
PAGE_FILES = ("index.html", "inspector.css", "main.js", "api.js", "dom.js", "exchanges.js", "jobs.js", "rules.js")
ADMIN = {"api_token": ""}  # the controls as a whole, not the test token's namespace


def test_the_page_and_its_files_ship_inside_the_package() -> None:
    static = importlib.resources.files("mock_server.inspector") / "static"

    assert all((static / name).is_file() for name in PAGE_FILES)
    assert "http" not in (static / "index.html").read_text(encoding="utf-8")  # nothing loaded from elsewhere


def test_the_page_is_served_with_a_policy_that_loads_nothing_from_elsewhere(bria_client: httpx.Client) -> None:
    page = bria_client.get("/bria-mock/ui")
    script = bria_client.get("/bria-mock/ui/main.js")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert bria_client.get("/bria-mock/ui/missing.js").status_code == 404
    assert bria_client.get("/bria-mock/ui/..%2Fadmin.py").status_code == 404


def test_exchanges_are_listed_newest_first_a_page_at_a_time(bria_client: httpx.Client) -> None:
    for name in ("a", "b", "c", "d"):
        bria_client.get(f"/v2/status/{name}")

    first = bria_client.get("/bria-mock/exchanges", params={"limit": 3}, headers=ADMIN).json()
    older = bria_client.get("/bria-mock/exchanges", params={"before": first["entries"][-1]["id"]}, headers=ADMIN)

    assert [row["path"] for row in first["entries"]] == ["/v2/status/d", "/v2/status/c", "/v2/status/b"]
    assert first["total"] == 4 and first["more"] is True
    assert [row["path"] for row in older.json()["entries"]] == ["/v2/status/a"]
    assert "request_headers" not in first["entries"][0]  # rows are compact; details are one call away


def test_exchanges_are_filtered_by_operation_status_class_namespace_and_text(bria_client: httpx.Client) -> None:
    bria_client.post(RMBG, json={"image": make_image().base64})
    bria_client.get("/v2/status/nothing-here", headers={"api_token": "someone-else"})

    def paths(**query: str) -> list[str]:
        listing = bria_client.get("/bria-mock/exchanges", params=query, headers=ADMIN).json()
        return [row["path"] for row in listing["entries"]]

    mine = bria_client.get("/bria-mock/exchanges", headers=ADMIN).json()["entries"][-1]["namespace"]
    assert paths(endpoint="remove_background") == [RMBG]
    assert paths(status_class="4xx") == ["/v2/status/nothing-here"]
    assert paths(namespace=mine) == [RMBG]
    assert paths(q="NOTHING") == ["/v2/status/nothing-here"]
    assert bria_client.get("/bria-mock/exchanges", params={"status_class": "6xx"}, headers=ADMIN).status_code == 400


def test_an_exchange_shows_its_kept_input_and_its_jobs_result(bria_client: httpx.Client) -> None:
    image = make_image(size=(24, 16))
    bria_client.post(RMBG, json={"image": image.base64, "sync": True})
    (row,) = bria_client.get("/bria-mock/exchanges", headers=ADMIN).json()["entries"]

    detail = bria_client.get(f"/bria-mock/exchanges/{row['id']}", headers=ADMIN).json()
    (shown,) = detail["inputs"]
    pixels = bria_client.get(shown["src"], headers=ADMIN)
    result = bria_client.get(detail["job"]["result_url"], headers=ADMIN)

    assert (shown["field"], pixels.content, pixels.headers["content-type"]) == ("image", image.data, "image/png")
    assert detail["job"]["state"] == "COMPLETED" and result.content.startswith(b"\x89PNG")
    assert detail["request_headers"]["api_token"] == "<redacted>"


def test_an_input_url_on_the_fake_and_a_recent_large_payload_are_shown(
    bria_client: httpx.Client, bria_app: Starlette
) -> None:
    png = encode(Image.effect_noise((96, 96), 64).convert("RGB"), "PNG")
    large = base64.b64encode(png).decode()  # > 4 KiB: the journal keeps its digest, the fake its recent payload
    bria_client.post(RMBG, json={"image": "http://testserver/samples/subject.jpg"})
    bria_client.post(RMBG, json={"image": large})
    rows = bria_client.get("/bria-mock/exchanges", headers=ADMIN).json()["entries"]

    big, url = (bria_client.get(f"/bria-mock/exchanges/{row['id']}", headers=ADMIN).json() for row in rows)

    assert bria_client.get(url["inputs"][0]["src"], headers=ADMIN).headers["content-type"] == "image/jpeg"
    assert big["inputs"][0]["summary"]["format"] == "PNG"
    assert bria_client.get(big["inputs"][0]["src"], headers=ADMIN).content == png
    assert len(bria_client.get("/bria-mock/journal", headers=ADMIN).json()["entries"]) == 2  # looking adds nothing
    bria_app.state.backend.recent_inputs.clear()  # (as a reset, or newer inputs past the bound, would)
    again = bria_client.get(f"/bria-mock/exchanges/{rows[0]['id']}", headers=ADMIN).json()
    assert "src" not in again["inputs"][0]  # gone: the digest is what stays


def test_listing_jobs_is_never_a_status_poll(bria_client: httpx.Client) -> None:
    request_id = bria_client.post(RMBG, json={"image": make_image().base64}).json()["request_id"]

    for _ in range(3):
        (job,) = bria_client.get("/bria-mock/jobs", headers=ADMIN).json()["jobs"]
    shown = bria_client.get(f"/bria-mock/jobs/{request_id}", headers=ADMIN).json()

    assert (job["state"], job["polls"], job["progress"]["polls_left"]) == ("IN_PROGRESS", 0, 1)
    assert shown["status_body"] == {"request_id": request_id, "status": "IN_PROGRESS"}
    assert bria_client.get(f"/v2/status/{request_id}").json()["status"] == "IN_PROGRESS"  # the first real poll
    assert bria_client.get(f"/bria-mock/jobs/{request_id}/result.png", headers=ADMIN).status_code == 404


def test_a_job_ended_by_a_rule_shows_its_error(bria_client: httpx.Client) -> None:
    rule = {"endpoint": "remove_background", "action": {"type": "job", "state": "ERROR", "code": 500}}
    bria_client.post("/bria-mock/rules", json=rule)
    request_id = bria_client.post(RMBG, json={"image": make_image().base64}).json()["request_id"]
    bria_client.get(f"/v2/status/{request_id}")
    bria_client.get(f"/v2/status/{request_id}")

    (job,) = bria_client.get("/bria-mock/jobs", headers=ADMIN).json()["jobs"]

    assert (job["state"], job["error"]["code"], job["result_url"]) == ("ERROR", 500, None)


def test_the_state_shows_how_far_the_clock_was_moved(bria_client: httpx.Client) -> None:
    bria_client.post("/bria-mock/clock/advance", json={"seconds": 90})

    assert bria_client.get("/bria-mock/state", headers=ADMIN).json()["clock_advanced"] == pytest.approx(90, abs=1)


@pytest.mark.parametrize(
    ("admin_token", "headers", "page", "data"),
    [
        ("", {}, 403, 403),  # off this machine without an admin token: nothing
        ("s3", {}, 200, 401),  # the page (no data) is served, so that it can ask for the token
        ("s3", {"X-Bria-Mock-Admin-Token": "s3"}, 200, 200),
    ],
)
def test_the_inspector_has_the_controls_protection(
    admin_token: str, headers: dict[str, str], page: int, data: int
) -> None:
    app = create_app(Settings(admin_token=admin_token))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))

    async def call(path: str) -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
            return (await client.get(path, headers=headers)).status_code

    assert asyncio.run(call("/bria-mock/ui")) == page
    assert [asyncio.run(call(path)) for path in ("/bria-mock/exchanges", "/bria-mock/jobs")] == [data, data]
