"""``bria-mock proxy`` against the fake standing in for the live service (on another loopback port)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from mock_server import operations
from mock_server.cli import main
from mock_server.config import Settings
from mock_server.contract import load_schema
from mock_server.drift import compare_recording, load_recording
from mock_server.proxy.checks import Violation
from mock_server.proxy.images import ForeignImages
from mock_server.proxy.options import ProxyOptions
from mock_server.proxy.rewrite import rewrite_urls
from mock_server.proxy.server import ProxyThread
from mock_server.proxy.tally import ExchangeSummary, Tally
from mock_server.proxy.target import Target, check_target
from mock_server.server import ServerThread
from tests.conftest import free_port

SECRET = "a-secret-token"
RMBG = "/v2/image/edit/remove_background"
# A fake that drifts: its 500 answers break the envelope.
BROKEN_500 = {"endpoint": "remove_background", "action": {"type": "error", "status": 500, "body": {"oops": True}}}


def png_b64(size: tuple[int, int] = (32, 24)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., ProxyThread]]:
    """``make_proxy(target_url, **options)``: a proxy on a free loopback port, allowed to reach loopback."""
    started: list[ProxyThread] = []

    def make(target: str, **options: Any) -> ProxyThread:
        started.append(ProxyThread(ProxyOptions(target=target, port=0, allow_private_target=True, **options)).start())
        return started[-1]

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def upstream(make_server: Callable[..., ServerThread]) -> ServerThread:
    """The fake standing in for the live service: it accepts one token only."""
    return make_server(tokens=(SECRET,))


def client(proxy: ProxyThread, token: str = SECRET) -> httpx.Client:
    return httpx.Client(base_url=proxy.base_url, headers={"api_token": token}, timeout=30)


def tally(proxy: ProxyThread) -> dict[str, Any]:
    return httpx.get(f"{proxy.base_url}/bria-mock/proxy").json()


def run_job(http: httpx.Client) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
    """Submit, poll to the end and download the result, all through the proxy."""
    accepted = http.post(RMBG, json={"image": png_b64()})
    assert accepted.status_code == 202, accepted.text
    for _ in range(5):
        polled = http.get(accepted.json()["status_url"])
        if polled.json()["status"] != "IN_PROGRESS":
            break
    return accepted, polled, http.get(polled.json()["result"]["image_url"])


def test_refuses_to_start_without_a_target_or_on_a_loopback_one() -> None:
    with pytest.raises(ValueError, match="--target URL is required"):
        check_target("")
    with pytest.raises(ValueError, match=r"a loopback address.*--allow-private-target"):
        check_target("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="a private address"):
        check_target("http://10.1.2.3")
    with pytest.raises(ValueError, match="origin only"):
        check_target("https://example.com/v2")
    assert check_target("http://127.0.0.1:9", allow_private=True).origin == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="a cloud metadata address"):  # never, whatever --allow-private-target says
        check_target("http://169.254.169.254", allow_private=True)


def test_the_command_says_why_it_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["proxy", "--target", "http://localhost:9"])
    assert exited.value.code == 2
    assert "a loopback address" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["proxy"])
    assert "--target" in capsys.readouterr().err


def test_a_job_goes_through_with_the_callers_token_and_polls_stay_on_the_proxy(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = make_proxy(upstream.base_url, rewrite_image_urls=True)
    with client(proxy) as http, client(proxy, token="wrong") as stranger:
        accepted, polled, image = run_job(http)
        refused = stranger.post(RMBG, json={"image": png_b64()})

    assert accepted.json()["status_url"].startswith(f"{proxy.base_url}/v2/status/")
    assert polled.json()["status"] == "COMPLETED"
    assert polled.json()["result"]["image_url"].startswith(f"{proxy.base_url}/results/")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    assert refused.status_code == 401  # the target decided: the token went through as it was
    seen = tally(proxy)
    assert seen["violations"] == [] and seen["exchanges"] >= 5
    assert {row["endpoint"] for row in seen["endpoints"]} == {"remove_background", "status", "result"}


def test_every_operation_is_forwarded_and_its_request_checked(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = make_proxy(upstream.base_url)
    with client(proxy) as http:
        statuses = {op.name: http.post(op.path, json={}).status_code for op in operations.OPERATIONS}

    assert set(statuses.values()) == {400}  # the target's own answer to a body without its fields
    flagged = {v["exchange"]["endpoint"] for v in tally(proxy)["violations"] if v["kind"] == "missing_field"}
    assert flagged == {op.name for op in operations.OPERATIONS if load_schema(op.request_schema).get("required")}


def test_a_drifting_target_is_caught_and_its_answer_passed_on(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread]
) -> None:
    upstream.backend.add_rules(BROKEN_500)
    proxy = make_proxy(upstream.base_url)
    with client(proxy) as http:
        answer = http.post(RMBG, json={"image": png_b64()})

    assert (answer.status_code, answer.json()) == (500, {"oops": True})  # unaltered
    violations = tally(proxy)["violations"]
    assert {(v["side"], v["kind"], v["field"]) for v in violations} >= {
        ("response", "missing_field", "error"),
        ("response", "extra_field", "oops"),
    }
    assert violations[0]["exchange"]["path"] == RMBG and violations[0]["exchange"]["status"] == 500


def test_a_job_status_outside_the_schema_is_caught_and_the_drift_report_sees_it(
    make_server: Callable[..., ServerThread], make_proxy: Callable[..., ProxyThread], tmp_path: Path
) -> None:
    drifting = make_server(failed_status="FAILED")  # a status no schema documents
    drifting.backend.add_rules({"endpoint": "remove_background", "action": {"type": "job", "state": "ERROR"}})
    proxy = make_proxy(drifting.base_url, record=str(tmp_path))
    with client(proxy) as http:
        accepted = http.post(RMBG, json={"image": png_b64()}).json()
        polls = [http.get(accepted["status_url"]).json()["status"] for _ in range(2)]

    assert polls == ["IN_PROGRESS", "FAILED"]
    found = [(v["kind"], v["field"], v["exchange"]["endpoint"]) for v in tally(proxy)["violations"]]
    assert found == [("enum_mismatch", "status", "status")]
    assert tally(proxy)["violations"][0]["exchange"]["recorded_as"] == 3  # the submission, two polls
    differences = compare_recording(tmp_path)["differences"]
    assert [(d["aspect"], d["recorded"], d["fake"]) for d in differences] == [
        ("schema", "status.failed", "status.completed")
    ]


def test_strict_answers_its_own_error_instead(upstream: ServerThread, make_proxy: Callable[..., ProxyThread]) -> None:
    upstream.backend.add_rules(BROKEN_500)
    proxy = make_proxy(upstream.base_url, strict=True)
    with client(proxy) as http:
        drifted = http.post(RMBG, json={"image": png_b64()})
        invalid = http.post(RMBG, json={"image": png_b64(), "preserve_alpha": "yes"})

    assert drifted.status_code == 502
    assert drifted.json()["error"]["code"] == 502
    assert "the target's answer breaks the contract" in drifted.json()["error"]["details"]
    assert invalid.status_code == 400
    assert "preserve_alpha" in invalid.json()["error"]["details"]
    assert len(upstream.backend.journal.entries()) == 1  # the invalid request never reached the target


def test_a_proxy_recording_replays_with_verify_compare(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread], tmp_path: Path
) -> None:
    proxy = make_proxy(upstream.base_url, record=str(tmp_path), rewrite_image_urls=True)
    with client(proxy) as http:
        run_job(http)
        http.post("/v2/image/edit/erase", json={"image": png_b64()})  # a 400: no mask

    _, exchanges = load_recording(tmp_path)
    assert [e["operation"] for e in exchanges][-1] == "erase"
    assert SECRET not in (tmp_path / "exchanges.jsonl").read_text()
    assert exchanges[0]["request"]["json"]["image"]["$file"].startswith("files/")
    assert exchanges[0]["response"]["json"]["status_url"].startswith(upstream.base_url)  # as the target said
    report = compare_recording(tmp_path)
    assert report["ok"], report["differences"]
    assert report["compared"] >= 4  # the submission, the final poll, the download and the erase


def test_bodies_over_the_cap_stream_through_unchecked(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = make_proxy(upstream.base_url, max_check_bytes=64)
    with client(proxy) as http:
        answer = http.post(RMBG, json={"image": png_b64((200, 200))})

    assert answer.status_code == 202
    assert [v["kind"] for v in tally(proxy)["violations"]] == ["not_checked"]
    strict = make_proxy(upstream.base_url, max_check_bytes=64, strict=True)
    with client(strict) as http:
        assert http.post(RMBG, json={"image": png_b64((200, 200))}).status_code == 413


def test_an_unreachable_target_is_a_502_in_the_envelope(
    make_server: Callable[..., ServerThread], make_proxy: Callable[..., ProxyThread]
) -> None:
    gone = make_server()
    gone.stop()
    proxy = make_proxy(gone.base_url)
    with client(proxy) as http:
        answer = http.post(RMBG, json={"image": png_b64()})

    assert answer.status_code == 502
    assert "could not be reached" in answer.json()["error"]["details"]
    assert tally(proxy)["endpoints"] == [{"endpoint": "remove_background", "status": 502, "count": 1}]


def test_connections_go_to_the_checked_addresses_never_to_the_name_again(upstream: ServerThread) -> None:
    # A name that resolves nowhere: only the address checked at start can be reached.
    pinned = Target(f"http://bria.invalid:{upstream.port}", "bria.invalid", upstream.port, (ip_address("127.0.0.1"),))
    with ProxyThread(ProxyOptions(target=pinned.origin, port=0), target=pinned) as proxy, client(proxy) as http:
        answer = http.post(RMBG, json={"image": png_b64()})

    assert answer.status_code == 202
    assert answer.json()["status_url"].startswith(proxy.base_url)


def test_a_request_target_that_is_not_a_path_never_reaches_another_port(
    upstream: ServerThread, make_proxy: Callable[..., ProxyThread]
) -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    other.settimeout(0.5)
    proxy = make_proxy(upstream.base_url)
    target = f"@127.0.0.1:{other.getsockname()[1]}/x"
    with socket.create_connection((proxy.host, proxy.port)) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\napi_token: {SECRET}\r\n\r\n".encode())
        sock.settimeout(5)
        answer = ""
        reasons = ("must be a path starting with /", "Invalid HTTP request received.")  # the proxy's, or the parser's
        while not any(reason in answer for reason in reasons) and (chunk := sock.recv(65536)):  # may come in pieces
            answer += chunk.decode("latin-1")
    # The proxy's own check, behind the HTTP parser (h11 passes such a target on; httptools refuses it itself).
    refused = asyncio.run(asgi_answer(proxy.app, target))
    with pytest.raises(TimeoutError):
        other.accept()  # nothing connected to the other port
    other.close()

    assert answer.startswith("HTTP/1.1 400")
    assert any(reason in answer for reason in reasons)
    assert refused[0] == 400 and b"must be a path starting with /" in refused[1]


async def asgi_answer(app: Any, raw_path: str) -> tuple[int, bytes]:
    """The status and body an ASGI app answers to a GET with this request target."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": raw_path, "raw_path": raw_path.encode(), "query_string": b"",
        "headers": [(b"host", b"a"), (b"api_token", SECRET.encode())], "scheme": "http", "http_version": "1.1",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "root_path": "", "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return sent[0]["status"], body


def test_the_path_is_forwarded_as_it_was_sent(upstream: ServerThread, make_proxy: Callable[..., ProxyThread]) -> None:
    proxy = make_proxy(upstream.base_url)
    with client(proxy) as http:
        http.get("/v2/status/a%2Fb%3Fc")

    # Decoded by the target's server, as sent: "%3F" stayed in the path instead of starting a query.
    assert [entry.path for entry in upstream.backend.journal.entries()] == ["/v2/status/a/b?c"]


def test_the_pinned_connection_refuses_another_port() -> None:
    import anyio
    import httpcore

    from mock_server.proxy.target import PinnedBackend

    backend = PinnedBackend([ip_address("127.0.0.1")], 8000)

    with pytest.raises(httpcore.ConnectError, match="port 8000 only, not 22"):
        anyio.run(backend.connect_tcp, "bria.example", 22)


@pytest.fixture
def cdn_service() -> Iterator[ServerThread]:
    """A service that hands out image URLs on another origin than its API's (``localhost``, not ``127.0.0.1``)."""
    port = free_port()
    with ServerThread(Settings(public_url=f"http://localhost:{port}"), port=port) as service:
        yield service


def test_image_urls_on_another_host_are_fetched_through_the_proxy_without_the_token(
    cdn_service: ServerThread, make_proxy: Callable[..., ProxyThread], tmp_path: Path
) -> None:
    proxy = make_proxy(cdn_service.base_url, rewrite_image_urls=True, record=str(tmp_path))
    with client(proxy) as http:
        done = http.post(RMBG, json={"image": png_b64(), "sync": True}).json()
        image = http.get(done["result"]["image_url"])

    assert done["result"]["image_url"].startswith(f"{proxy.base_url}/bria-mock/proxy/images/")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    download = cdn_service.backend.journal.entries()[-1]
    assert download.path.startswith("/results/") and "api_token" not in download.request_headers
    recorded = load_recording(tmp_path)[1][-1]
    assert recorded["operation"] == "result"
    assert recorded["request"]["url"] == f"http://localhost:{cdn_service.port}{download.path}"  # as handed out


def test_an_image_host_in_a_private_range_is_refused(cdn_service: ServerThread) -> None:
    # The target itself was checked (and pinned) apart: only the image host's check is under test.
    pinned = Target(cdn_service.base_url, "127.0.0.1", cdn_service.port, (ip_address("127.0.0.1"),))
    options = ProxyOptions(target=pinned.origin, port=0, rewrite_image_urls=True)
    with ProxyThread(options, target=pinned) as proxy, client(proxy) as http:
        done = http.post(RMBG, json={"image": png_b64(), "sync": True}).json()
        refused = http.get(done["result"]["image_url"])
        unknown = http.get("/bria-mock/proxy/images/0123")

    assert refused.status_code == 502 and "a loopback address" in refused.json()["error"]["details"]
    assert unknown.status_code == 404


def test_the_tally_keeps_a_bounded_number_of_violations() -> None:
    kept = Tally(max_violations=3)
    for index in range(1, 101):
        summary = ExchangeSummary(index, "POST", RMBG, "remove_background", 500, 1.0, 0.1, "target")
        kept.add(summary, [Violation("response", "extra_field", "oops", "not in the schema")])

    seen = kept.to_json()
    assert seen["exchanges"] == 100 and seen["exchanges_with_violations"] == 100
    assert [v["exchange"]["index"] for v in seen["violations"]] == [98, 99, 100]


def test_only_the_targets_own_urls_are_rewritten_and_image_urls_elsewhere_only_when_asked() -> None:
    origin, base = "https://api.example", "http://127.0.0.1:8010"
    body = json.dumps({"status_url": f"{origin}/v2/status/1", "result": {"image_url": "https://cdn.example/1.png"}})

    kept = json.loads(rewrite_urls(body.encode(), origin=origin, proxy_base=base))
    assert kept == {"status_url": f"{base}/v2/status/1", "result": {"image_url": "https://cdn.example/1.png"}}
    images = ForeignImages()
    moved = json.loads(rewrite_urls(body.encode(), origin=origin, proxy_base=base, foreign_images=images.register))
    assert moved["result"]["image_url"].startswith(f"{base}/bria-mock/proxy/images/")
    assert images.url_of(moved["result"]["image_url"].removeprefix(base)) == "https://cdn.example/1.png"
    untouched = b'{"error": {"code": 400}}'
    assert rewrite_urls(untouched, origin=origin, proxy_base=base) is untouched
