"""The ``bria-mock`` command as a user runs it: a real process, a real port, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

from mock_server.banner import banner, base_url
from mock_server.cli import build_parser, settings_from_args
from mock_server.config import Settings, mask_password
from tests.conftest import free_port


@pytest.fixture
def port() -> int:
    return free_port()


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


@pytest.fixture
def served(port: int, wait_until_up: Callable[..., None]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    process = start("bria-mock", "serve", "--port", str(port), "--token", "cli-token")
    base_url = f"http://127.0.0.1:{port}"
    wait_until_up(base_url, process)
    yield base_url, process
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.mark.subprocess
def test_serve_answers_and_stops_cleanly_on_ctrl_c(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    base_url, process = served
    headers = {"api_token": "cli-token"}
    image = f"{base_url}/samples/subject.jpg"

    response = httpx.post(f"{base_url}/v2/image/edit/remove_background", json={"image": image}, headers=headers)
    refused = httpx.post(
        f"{base_url}/v2/image/edit/remove_background", json={"image": image}, headers={"api_token": "x"}
    )
    process.send_signal(signal.SIGINT)

    assert response.status_code == 202
    assert response.json()["status_url"].startswith(base_url)
    assert refused.status_code == 401
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert b"Finished server process" in output
    assert b"Traceback" not in output
    assert b"cli-token" not in output  # tokens never reach the log
    assert b"POST /v2/image/edit/remove_background" not in output  # no line per request unless asked


@pytest.mark.subprocess
def test_serve_access_log_prints_a_line_per_request(port: int, wait_until_up: Callable[..., None]) -> None:
    process = start("bria-mock", "serve", "--port", str(port), env={"BRIA_MOCK_ACCESS_LOG": "true"})
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        assert httpx.get(f"{base_url}/v2/status/{'0' * 32}", headers={"api_token": "t"}).status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)

    assert f'"GET /v2/status/{"0" * 32} HTTP/1.1" 404'.encode() in output


@pytest.mark.subprocess
def test_python_dash_m_and_environment_settings(port: int, wait_until_up: Callable[..., None]) -> None:
    env = {"BRIA_MOCK_PORT": str(port), "BRIA_MOCK_PUBLIC_URL": "http://fake.example.test:9"}
    process = start(sys.executable, "-m", "mock_server", "serve", env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        body = httpx.post(
            f"{base_url}/v2/image/edit/remove_background",
            json={"image": f"{base_url}/samples/subject.jpg"},
            headers={"api_token": "t"},
        ).json()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)

    assert body["status_url"].startswith("http://fake.example.test:9/v2/status/")


@pytest.mark.subprocess
def test_a_taken_port_is_a_clear_error_and_a_non_zero_exit(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    base_url = served[0]
    port = base_url.rsplit(":", 1)[-1]

    second = subprocess.run(["bria-mock", "serve", "--port", port], capture_output=True, timeout=30)

    assert second.returncode != 0
    assert b"address already in use" in second.stdout + second.stderr


def test_command_line_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIA_MOCK_PORT", "9000")
    monkeypatch.setenv("BRIA_MOCK_TOKENS", "a,b")
    monkeypatch.setenv("BRIA_MOCK_PROGRESS_POLLS", "4")

    settings = settings_from_args(build_parser().parse_args(["serve", "--port", "9100", "--rmbg-webp", "reject"]))

    assert (settings.port, settings.tokens, settings.progress_polls) == (9100, ("a", "b"), 4)
    assert settings.rmbg_accept_webp is False


@pytest.mark.subprocess
def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIA_MOCK_MAX_JOBS", "lots")

    done = subprocess.run(["bria-mock", "serve"], capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert "BRIA_MOCK_MAX_JOBS='lots'" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_says_where_everything_is_and_which_tokens_it_accepts(
    port: int, wait_until_up: Callable[..., None]
) -> None:
    process = start("bria-mock", "serve", "--port", str(port), "--token", "cli-token")
    base_url = f"http://127.0.0.1:{port}"
    wait_until_up(base_url, process)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=15)[0].decode()

    assert f"bria-mock is serving on {base_url} (Ctrl-C stops it)" in output
    assert f"POST {base_url}/v2/image/edit/remove_background" in output
    assert f"samples:  {base_url}/samples/subject.jpg" in output
    assert f"controls: {base_url}/bria-mock/" in output
    assert f"OpenAPI:  {base_url}/openapi.json" in output
    assert "and 22 more operations (replace_background, " in output
    assert f"inspector: {base_url}/bria-mock/ui" in output
    assert "tokens:   only the 1 api_token value given (--token / BRIA_MOCK_TOKENS) are accepted" in output
    assert "cli-token" not in output  # the rule is told, never the token
    assert "  workers:  1 process on this port\n  state:    memory (this process's own: a restart loses it)" in output


@pytest.mark.parametrize(
    ("settings", "rule"),
    [
        (Settings(), "tokens:   any non-empty api_token header is accepted"),
        (Settings(admin_token="s3cret"), "they need the header X-Bria-Mock-Admin-Token"),
        (Settings(), "they answer callers on this machine only"),
        (Settings(public_url="https://fake.example"), "URLs handed out start with https://fake.example"),
        (Settings(workers=4, state="redis://h:6379/2"), "workers:  4 processes on this port"),
        (Settings(state="redis://h:6379/2"), "state:    redis://h:6379/2 (shared by every process that names it)"),
        (Settings(state="rediss://u:s3cret@h/0"), "state:    rediss://u:***@h/0 (shared"),
    ],
)
def test_the_banner_states_the_rule_in_force(settings: Settings, rule: str) -> None:
    assert rule in banner(settings, base_url("0.0.0.0", 8000))
    assert "s3cret" not in banner(settings, base_url("0.0.0.0", 8000))


def test_a_wildcard_interface_is_shown_as_loopback() -> None:
    assert base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert base_url("::1", 8000) == "http://[::1]:8000"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:s3cret@h/1?ssl_cert_reqs=none", "rediss://user:***@h/1?ssl_cert_reqs=none"),
        ("unix:///run/valkey.sock?db=2&password=s3cret", "unix:///run/valkey.sock?db=2&password=***"),
        ("redis://user@h/0", "redis://user@h/0"),
    ],
)
def test_a_state_url_is_shown_with_its_password_masked(url: str, shown: str) -> None:
    assert mask_password(url) == shown


def test_the_banner_names_a_private_state_server_when_told() -> None:
    where = "a private Valkey server (unix socket /tmp/x/state.sock), stopped with bria-mock"
    text = banner(Settings(workers=2), base_url("127.0.0.1", 8000), state=where)

    assert f"  state:    {where}" in text
