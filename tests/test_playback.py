"""``serve --playback``: a recording made by the proxy (in front of a fake standing in for the service)
answered again by another fake, offline."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from mock_server.config import Settings
from mock_server.fixtures.receiver import WebhookReceiver
from mock_server.proxy.options import ProxyOptions
from mock_server.proxy.server import ProxyThread
from mock_server.server import ServerThread

RMBG = "/v2/image/edit/remove_background"
ERASE = "/v2/image/edit/erase"


def png_b64(colour: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def poll_to_the_end(http: httpx.Client, status_url: str) -> list[dict[str, object]]:
    polls = []
    for _ in range(6):
        polls.append(http.get(status_url).json())
        if polls[-1]["status"] != "IN_PROGRESS":
            break
    return polls


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session through the proxy: a job polled to its end (two polls in progress) and its image
    downloaded, a sync call, and an erase without its mask (400)."""
    folder = tmp_path_factory.mktemp("recording")
    with ServerThread(Settings(progress_polls=2)) as service:
        options = ProxyOptions(
            target=service.base_url, port=0, allow_private_target=True, record=str(folder), rewrite_image_urls=True
        )
        with ProxyThread(options) as proxy, httpx.Client(base_url=proxy.base_url, headers={"api_token": "t"}) as http:
            accepted = http.post(RMBG, json={"image": png_b64()}).json()
            final = poll_to_the_end(http, accepted["status_url"])[-1]
            http.get(final["result"]["image_url"])  # type: ignore[index]
            http.post(RMBG, json={"image": png_b64("blue"), "sync": True})
            http.post(ERASE, json={"image": png_b64()})
    return folder


def recorded_image(folder: Path) -> bytes:
    lines = (folder / "exchanges.jsonl").read_text().splitlines()
    download = next(json.loads(line) for line in lines if json.loads(line)["operation"] == "result")
    return (folder / download["response"]["image"]["file"]).read_bytes()


@pytest.fixture
def make_playback(make_server: Callable[..., ServerThread], recording: Path) -> Iterator[Callable[..., httpx.Client]]:
    """``make_playback(**settings)``: a client on a fake that plays the recording back."""
    clients: list[httpx.Client] = []

    def make(**settings: object) -> httpx.Client:
        server = make_server(playback=str(recording), **settings)
        clients.append(httpx.Client(base_url=server.base_url, headers={"api_token": "another-token"}, timeout=30))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_a_recorded_job_replays_its_status_sequence_and_its_image(
    make_playback: Callable[..., httpx.Client], recording: Path
) -> None:
    http = make_playback()  # this fake's own jobs would answer IN_PROGRESS once, not twice
    accepted = http.post(RMBG, json={"image": png_b64()})
    polls = poll_to_the_end(http, accepted.json()["status_url"])
    image = http.get(polls[-1]["result"]["image_url"])  # type: ignore[index]

    assert accepted.status_code == 202
    assert accepted.json()["status_url"].startswith(str(http.base_url))
    assert [poll["status"] for poll in polls] == ["IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert image.content == recorded_image(recording)  # hosted again from the recording


def test_a_recorded_sync_answer_and_a_recorded_error_are_replayed(make_playback: Callable[..., httpx.Client]) -> None:
    http = make_playback()
    sync = http.post(RMBG, json={"image": png_b64("blue"), "sync": True})
    refused = http.post(ERASE, json={"image": png_b64()})

    assert sync.status_code == 200
    # Its image was never downloaded in the session: its recorded URL is handed out as it was.
    assert sync.json()["result"]["image_url"].startswith("http://127.0.0.1:")
    assert http.get(f"/v2/status/{sync.json()['request_id']}").json()["status"] == "COMPLETED"
    assert refused.status_code == 400 and "mask" in refused.json()["error"]["details"]


def test_a_request_the_recording_does_not_hold_falls_back_to_the_fake(
    make_playback: Callable[..., httpx.Client],
) -> None:
    http = make_playback()
    accepted = http.post(RMBG, json={"image": png_b64("green")})

    assert accepted.status_code == 202
    assert [poll["status"] for poll in poll_to_the_end(http, accepted.json()["status_url"])] == [
        "IN_PROGRESS",
        "COMPLETED",
    ]


def test_strict_playback_names_the_nearest_recorded_request(make_playback: Callable[..., httpx.Client]) -> None:
    http = make_playback(playback_strict=True)
    missing = http.post(RMBG, json={"image": png_b64("green")})
    other = http.post("/v2/image/edit/blur_background", json={"image": png_b64()})

    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    assert "nearest: exchange #1, which differs in image" in missing.json()["error"]["details"]
    assert "nor any blur_background request; it holds: erase, remove_background" in other.json()["error"]["details"]


def test_rules_and_the_journal_apply_to_replayed_requests(
    make_server: Callable[..., ServerThread], recording: Path
) -> None:
    server = make_server(playback=str(recording))
    server.backend.add_rules(
        {"endpoint": "remove_background", "calls": [1], "action": {"type": "error", "status": 503}}
    )
    with httpx.Client(base_url=server.base_url, headers={"api_token": "t"}) as http:
        codes = [http.post(RMBG, json={"image": png_b64()}).status_code for _ in range(2)]

    assert codes == [503, 202]
    assert [entry.status for entry in server.backend.journal.entries(endpoint="remove_background")] == [503, 202]


def test_a_recorded_job_never_polled_to_its_end_falls_back(
    make_server: Callable[..., ServerThread], recording: Path, tmp_path: Path
) -> None:
    shutil.copytree(recording, tmp_path / "cut", dirs_exist_ok=True)
    lines = (recording / "exchanges.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["operation"] != "status"]
    (tmp_path / "cut" / "exchanges.jsonl").write_text("\n".join(kept) + "\n")
    server = make_server(playback=str(tmp_path / "cut"))
    with httpx.Client(base_url=server.base_url, headers={"api_token": "t"}) as http:
        accepted = http.post(RMBG, json={"image": png_b64()})
        polls = poll_to_the_end(http, accepted.json()["status_url"])

    assert [poll["status"] for poll in polls] == ["IN_PROGRESS", "COMPLETED"]  # the fake's own progression


def test_an_unreadable_recording_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable bria-mock recording"):
        ServerThread(Settings(playback=str(tmp_path)))


def test_the_plugin_replays_a_recording_named_in_its_settings(pytester: pytest.Pytester, recording: Path) -> None:
    pytester.makeini(f"[pytest]\nbria_mock_settings =\n    playback={recording}\n    playback_strict=true\n")
    pytester.makepyfile(
        test_replay=f"""
        import httpx

        def test_replayed(bria_mock):
            with httpx.Client(base_url=bria_mock.base_url, headers={{"api_token": bria_mock.token}}) as http:
                answer = http.post("{ERASE}", json={{"image": "{png_b64()}"}})
                assert answer.status_code == 400
                assert http.post("{ERASE}", json={{"image": "{png_b64("green")}"}}).status_code == 404
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_reset_rewinds_each_recorded_sequence(tmp_path: Path, make_server: Callable[..., ServerThread]) -> None:
    with ServerThread(Settings()) as service:
        service.backend.add_rules(
            {"endpoint": "remove_background", "action": {"type": "error", "status": 429}, "times": 1}
        )
        options = ProxyOptions(target=service.base_url, port=0, allow_private_target=True, record=str(tmp_path))
        with ProxyThread(options) as proxy, httpx.Client(base_url=proxy.base_url, headers={"api_token": "t"}) as http:
            recorded = [http.post(RMBG, json={"image": png_b64()}).status_code for _ in range(2)]
    server = make_server(playback=str(tmp_path))
    with httpx.Client(base_url=server.base_url, headers={"api_token": "t"}) as http:
        first = [http.post(RMBG, json={"image": png_b64()}).status_code for _ in range(3)]
        assert http.post("/bria-mock/reset", json={}).status_code == 200
        again = http.post(RMBG, json={"image": png_b64()}).status_code

    assert recorded == [429, 202]
    assert first == [429, 202, 202]  # in order, then the last again
    assert again == 429  # the reset started the sequence again


def test_a_replayed_job_with_a_webhook_url_delivers_its_webhook(
    make_playback: Callable[..., httpx.Client], bria_webhook_receiver: WebhookReceiver
) -> None:
    http = make_playback()
    # The recording's request had no webhook_url: where the answer goes is not part of the fingerprint.
    accepted = http.post(RMBG, json={"image": png_b64(), "webhook_url": bria_webhook_receiver.url})

    delivered = bria_webhook_receiver.wait_for(accepted.json()["request_id"], timeout=10, accepted=False)

    assert accepted.status_code == 202
    assert json.loads(delivered.body)["status"] == "COMPLETED"
