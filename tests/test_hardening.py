"""Hardening of shared use: private namespaces, controls a web page cannot drive, bounded uploads
and journal bodies, bodies too large in values, and requests whose body never arrived whole."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from mock_server.errors import PayloadTooLarge
from mock_server.ids import namespace_id
from mock_server.journal import MAX_KEPT_BODY_BYTES
from mock_server.server import ServerThread
from mock_server.uploads import Uploads

RMBG = "/v2/image/edit/remove_background"
SECRET = "alice-secret-token-1234"
FAIL = {"endpoint": "remove_background", "action": {"type": "error", "status": 503}}


def backend_of(app: Starlette):  # type: ignore[no-untyped-def]
    return app.state.backend


# --- namespaces ---------------------------------------------------------------------------------


def test_a_namespace_id_is_128_bits_of_a_keyed_hash() -> None:
    import hashlib

    shown = namespace_id(SECRET)

    assert shown is not None and re.fullmatch(r"tok-[0-9a-f]{32}", shown)
    assert shown.removeprefix("tok-") not in hashlib.sha256(SECRET.encode()).hexdigest()  # keyed: not guessable
    assert namespace_id(SECRET + "x") != shown


def test_the_controls_never_show_a_raw_token(bria_client: httpx.Client) -> None:
    added = bria_client.post("/bria-mock/rules", json=FAIL, headers={"api_token": SECRET})
    rules = bria_client.get("/bria-mock/rules", headers={"api_token": ""})
    state = bria_client.get("/bria-mock/state", headers={"api_token": ""})

    for answer in (added, rules, state):
        assert answer.status_code in (200, 201)
        assert SECRET not in answer.text
    assert rules.json()["rules"][0]["namespace"] == namespace_id(SECRET)


# --- controls a web page cannot drive ----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"content-type": "text/plain"}, 415, "Content-Type"),
        ({}, 415, "Content-Type"),
        ({"content-type": "application/json", "origin": "http://evil.example"}, 403, "Origin"),
        ({"content-type": "application/json", "host": "evil.example"}, 403, "Host"),
    ],
    ids=["text/plain", "no content type", "foreign origin", "rebound host"],
)
def test_a_cross_site_write_to_the_controls_is_refused(
    bria_client: httpx.Client, bria_app: Starlette, headers: dict[str, str], status: int, says: str
) -> None:
    bria_client.post("/bria-mock/rules", json=FAIL)

    refused = bria_client.post("/bria-mock/reset", content=b"{}", headers=headers)

    assert refused.status_code == status
    assert refused.json()["error"]["details"].startswith(says)
    assert len(backend_of(bria_app).rules.list()) == 1  # nothing was reset


def test_a_same_origin_json_write_is_accepted(bria_client: httpx.Client) -> None:
    headers = {"origin": "http://testserver"}

    assert bria_client.post("/bria-mock/reset", json={}, headers=headers).status_code == 200


def test_health_tells_readiness_and_nothing_else(bria_client: httpx.Client) -> None:
    bria_client.post(RMBG, json={"image": "http://testserver/samples/subject.jpg"})

    assert bria_client.get("/bria-mock/health", headers={"api_token": ""}).json() == {"status": "ok"}


# --- uploads ------------------------------------------------------------------------------------


def test_an_upload_must_be_an_image_type_and_is_served_with_nosniff(bria_client: httpx.Client) -> None:
    page = bria_client.post("/bria-mock/uploads", content=b"<script>", headers={"content-type": "text/html"})
    uploaded = bria_client.post("/bria-mock/uploads", content=b"\x89PNG....", headers={"content-type": "image/png"})
    served = bria_client.get(uploaded.json()["url"])

    assert page.status_code == 415
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"


def test_uploads_are_bounded_in_total_bytes_the_oldest_going_first() -> None:
    uploads = Uploads(max_count=100, max_bytes=1000)
    first = uploads.add(b"a" * 400, "image/png")
    second = uploads.add(b"b" * 400, "image/png")
    third = uploads.add(b"c" * 400, "image/png")

    assert uploads.get(first) is None
    assert uploads.get(second) is not None and uploads.get(third) is not None
    assert uploads.total_bytes == 800
    with pytest.raises(PayloadTooLarge):
        uploads.add(b"d" * 1001, "image/png")


# --- the journal holds what it counts ---------------------------------------------------------


def test_a_large_body_of_nested_lists_is_journaled_as_its_digest_and_counted_as_such(
    bria_client: httpx.Client, bria_app: Starlette
) -> None:
    body = json.dumps({"image": "x", "padding": [[]] * 200_000}).encode()  # 800 KB, 200,001 values

    answers = [bria_client.post("/v2/image/edit/nothing_here", content=body) for _ in range(4)]

    journal = backend_of(bria_app).journal
    assert [answer.status_code for answer in answers] == [404] * 4
    assert all(entry.body["kept"] is False for entry in journal.entries())
    assert journal.bytes_held < 4 * 2 * MAX_KEPT_BODY_BYTES


def test_a_body_with_too_many_values_is_400_before_validation(bria_client: httpx.Client) -> None:
    body = json.dumps({"image": "x", **{f"k{index}": index for index in range(60_000)}}).encode()

    answer = bria_client.post(RMBG, content=body)

    assert answer.status_code == 400
    assert "more than 10000 JSON values" in answer.json()["error"]["details"]


def test_a_body_of_many_keys_is_refused_by_its_commas(bria_client: httpx.Client) -> None:
    body = json.dumps({f"k{index}": index for index in range(700_000)}).encode()  # 12 MB: a second to parse

    answer = bria_client.post(RMBG, content=body)

    assert answer.status_code == 400
    assert "more than 10000 JSON values" in answer.json()["error"]["details"]


def test_the_body_of_a_request_refused_before_authentication_is_not_kept(
    bria_client: httpx.Client, bria_app: Starlette
) -> None:
    body = {"image": "A" * 300_000}

    answer = bria_client.post(RMBG, json=body, headers={"api_token": ""})

    (entry,) = backend_of(bria_app).journal.entries()
    assert answer.status_code == 401
    assert entry.body["kept"] is False
    assert entry.body["size"] > 300_000


# --- half-bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_cut_short_by_the_client_runs_nothing(make_server: Callable[..., ServerThread], framing: str) -> None:
    server = make_server()
    server.backend.add_rules(FAIL)
    whole = json.dumps({"image": f"{server.base_url}/samples/subject.jpg", "sync": True}).encode()
    if framing == "chunked":
        head = "Transfer-Encoding: chunked"
        sent = f"{len(whole):x}\r\n".encode() + whole + b"\r\n"  # no final 0-length chunk
    else:
        head = f"Content-Length: {len(whole) + 100}"
        sent = whole
    with socket.create_connection((server.host, server.port)) as sock:
        lines = [
            f"POST {RMBG} HTTP/1.1",
            f"Host: {server.host}",
            "api_token: t",
            "Content-Type: application/json",
            head,
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not len(server.backend.journal) and time.monotonic() < deadline:
        time.sleep(0.01)

    (entry,) = server.backend.journal.entries()
    assert entry.status is None  # journaled, but not as answered
    assert server.backend.rules.list()[0].matched == 0  # no rule counted it
    assert server.backend.jobs.count() == 0  # no job was made


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/status/x", {"api_token": "bria-mock-\u00b2"}),  # "²".isdigit() is true, int("²") fails
        ("/bria-mock/journal?limit=\u00b2", {}),
        ("/bria-mock/webhooks?status=\u00b2", {}),
    ],
    ids=["trigger-token", "journal-limit", "webhooks-status"],
)
def test_unicode_digits_are_no_whole_number_and_never_a_crash(
    bria_client: httpx.Client, path: str, headers: dict[str, str]
) -> None:
    answer = bria_client.get(path, headers={name: value.encode("latin-1") for name, value in headers.items()})

    assert answer.status_code in (400, 404)


def test_recent_inputs_are_bounded_in_bytes_the_oldest_going_first() -> None:
    from mock_server.recent_inputs import RecentInputs

    kept = RecentInputs(max_bytes=100)
    kept.put("a", "x" * 60)
    kept.put("b", "y" * 60)
    kept.put("c", "z" * 101)  # alone over the bound: not kept

    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (None, "y" * 60, None)
    assert kept.bytes_held == 60
