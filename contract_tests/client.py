"""The suite's HTTP client: every call goes through the spend guard, is checked against the contract,
recorded when asked, and kept as a curl command that reproduces it."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import shlex
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import note
from hypothesis.control import currently_in_test_context
from PIL import Image

from mock_server import operations
from mock_server.contract_tests.guard import MAX_RETRIES, SpendGuard
from mock_server.contract_tests.recording import Recorder
from mock_server.contract_tests.target import Target
from mock_server.triggers import is_trigger_token
from mock_server.verify_report import (
    RESULT_IMAGE,
    STATUS,
    Verdict,
    check_api_response,
    check_image_response,
    endpoint_label,
    operation_routes,
)

IN_PROGRESS = "IN_PROGRESS"
DEFAULT_POLL_TIMEOUT = 120.0
# Between polls of a live job: quick at first, then every few seconds (status calls are rate limited).
POLL_INTERVALS = (0.2, 0.5, 1.0, 2.0, 3.0)
CURL_LOG_SIZE = 10
# A test still running after this many seconds gets a progress line this often (0: every response).
PROGRESS_SECONDS = 15.0
ProgressLine = Callable[[str, int, float], None]  # (test, responses so far, seconds since it started)


class _UseTargetToken:
    """The default of ``token=``: send the target's own token."""


TARGET_TOKEN = _UseTargetToken()
Token = str | None | _UseTargetToken


@dataclasses.dataclass(frozen=True)
class Observation:
    """One response the suite saw, in which test, and what the contract check found."""

    test: str
    method: str
    path: str
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "method": self.method,
            "path": self.path,
            "operation": self.verdict.operation,
            "endpoint": endpoint_label(self.verdict.operation),
            "status_code": self.verdict.status_code,
            "schema": self.verdict.schema,
            "deviations": [dataclasses.asdict(deviation) for deviation in self.verdict.deviations],
        }


@dataclasses.dataclass
class Observer:
    """Every response of the run, checked: the raw material of the verify report."""

    test: str = ""
    observations: list[Observation] = dataclasses.field(default_factory=list)
    # The current test's last requests as curl commands, shown when it fails.
    curl_log: list[str] = dataclasses.field(default_factory=list)
    deviations_in_test: int = 0
    # Long work (a property under the ci profile runs for minutes) is reported as it goes.
    on_progress: ProgressLine | None = None
    progress_seconds: float = PROGRESS_SECONDS
    responses_in_test: int = 0
    _started: float = dataclasses.field(default_factory=time.monotonic)
    _last_progress: float = dataclasses.field(default_factory=time.monotonic)

    def start_test(self, nodeid: str) -> None:
        self.test = nodeid
        self.curl_log = []
        self.deviations_in_test = 0
        self.responses_in_test = 0
        self._started = self._last_progress = time.monotonic()

    def add(self, observation: Observation) -> None:
        """Keep one checked response; say how the test is getting on when it has run long enough."""
        self.observations.append(observation)
        self.responses_in_test += 1
        now = time.monotonic()
        if self.on_progress is not None and now - self._last_progress >= self.progress_seconds:
            self._last_progress = now
            self.on_progress(self.test, self.responses_in_test, now - self._started)


@dataclasses.dataclass(frozen=True)
class ResultImage:
    """A downloaded result image."""

    content: bytes

    def open(self) -> Image.Image:
        return Image.open(io.BytesIO(self.content))

    @property
    def properties(self) -> tuple[str | None, str, tuple[int, int]]:
        """``(format, mode, size)``."""
        with self.open() as image:
            return image.format, image.mode, image.size


class BriaApi:
    """Talks to the target. Deviations from the contract fail the calling test at once."""

    def __init__(
        self,
        target: Target,
        guard: SpendGuard,
        observer: Observer,
        recorder: Recorder | None = None,
        *,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.target = target
        self.guard = guard
        self.observer = observer
        self.recorder = recorder
        self.poll_timeout = poll_timeout
        self._sleep = sleep
        # Sync calls may take a while on a live service (its CDN cuts them at about 60 s).
        self._http = httpx.Client(timeout=httpx.Timeout(90.0, connect=10.0), transport=transport)

    def close(self) -> None:
        self._http.close()

    # --- calls ----------------------------------------------------------------------------

    def submit(self, operation: str, body: Any, *, token: Token = TARGET_TOKEN, retry: bool = True) -> httpx.Response:
        """POST a JSON body to an edit endpoint."""
        return self.post(operation, json.dumps(body).encode(), token=token, retry=retry)

    def post(
        self,
        operation: str,
        content: bytes,
        *,
        content_type: str = "application/json",
        token: Token = TARGET_TOKEN,
        retry: bool = True,
    ) -> httpx.Response:
        """POST raw bytes to an edit endpoint; skips the test when the spend cap is reached."""
        if operations.is_billable(operation) and not self.guard.allows_another_call():
            spent = f"spend cap reached: {self.guard.billable_calls} billable calls (--bria-max-calls)"
            if self.observer.deviations_in_test:
                # This test has already failed on a deviation (Hypothesis is replaying it): a skip would hide that.
                raise AssertionError(f"{spent}, after this test saw {self.observer.deviations_in_test} deviation(s)")
            pytest.skip(spent)
        headers = {**self._auth(token), "Content-Type": content_type}
        path = operation_routes()[operation][1]
        return self._send("POST", self.target.url(path), operation, headers, content, retry)

    def status(self, request_id_or_url: str, *, token: Token = TARGET_TOKEN, retry: bool = True) -> httpx.Response:
        """GET the status of a job, by its ``status_url`` or its request_id."""
        url = request_id_or_url
        if "://" not in url:
            url = self.target.url(operation_routes()[STATUS][1].replace("{request_id}", url))
        return self._send("GET", url, STATUS, self._auth(token), None, retry)

    def poll(self, status_url: str, *, token: Token = TARGET_TOKEN) -> list[dict[str, Any]]:
        """Poll until the job leaves IN_PROGRESS; every answer, in order.

        On the fake the job must end within its configured progression; on a live service within
        the poll timeout.
        """
        limit = self.target.polls_until_terminal()
        deadline = time.monotonic() + self.poll_timeout
        answers: list[dict[str, Any]] = []
        for attempt in itertools.count():
            response = self.status(status_url, token=token)
            assert response.status_code == 200, f"a status poll answered {response.status_code}: {response.text}"
            answers.append(response.json())
            if answers[-1]["status"] != IN_PROGRESS:
                return answers
            if limit is not None and len(answers) >= limit:
                raise AssertionError(f"still {IN_PROGRESS} after {limit} polls, the fake's configured progression")
            if time.monotonic() > deadline:
                raise AssertionError(f"still {IN_PROGRESS} after {self.poll_timeout:.0f} s of polling")
            if limit is None:
                self._sleep(POLL_INTERVALS[min(attempt, len(POLL_INTERVALS) - 1)])
        raise AssertionError("unreachable")

    def download(self, url: str) -> ResultImage:
        """GET a result ``image_url``, without the token: result links are public, like Bria's CDN."""
        response = self._http.get(url)
        self._seen(response, RESULT_IMAGE, 0)
        assert response.status_code == 200, f"downloading {url} answered {response.status_code}"
        return ResultImage(response.content)

    # --- every exchange -------------------------------------------------------------------

    def _auth(self, token: Token) -> dict[str, str]:
        value = self.target.token if isinstance(token, _UseTargetToken) else token
        return {} if value is None else {"api_token": value}

    def _send(
        self, method: str, url: str, operation: str, headers: dict[str, str], content: bytes | None, retry: bool
    ) -> httpx.Response:
        for attempt in itertools.count():
            response = self._http.request(method, url, headers=headers, content=content)
            self._seen(response, operation, attempt)
            if not (retry and self.guard.should_retry(response.status_code, attempt)):
                break
            self.guard.wait_after_429(response.headers.get("retry-after"), attempt)
        if retry and response.status_code == 429:
            pytest.skip(f"rate limited: still 429 after {MAX_RETRIES} retries that honoured Retry-After")
        return response

    def _seen(self, response: httpx.Response, operation: str, attempt: int) -> None:
        """The response hook: count, check, record and log one exchange; fail on any deviation."""
        response.read()
        request = response.request
        self.guard.count(request.method, operations.is_billable(operation), response.status_code)
        if operation == RESULT_IMAGE:
            verdict = check_image_response(response.status_code, response.headers.get("content-type"))
        else:
            verdict = check_api_response(
                operation, response.status_code, response.headers.get("content-type"), response.content
            )
        self.observer.add(Observation(self.observer.test, request.method, request.url.path, verdict))
        if self.recorder is not None:
            self.recorder.record(response, operation=operation, test=self.observer.test, attempt=attempt)
        curl = f"{as_curl(request)}\n# -> {response.status_code}"
        self.observer.curl_log = [*self.observer.curl_log[-(CURL_LOG_SIZE - 1) :], curl]
        if currently_in_test_context():
            note(curl)  # Hypothesis prints it with the failing example: a reproduction to paste
        if verdict.deviations:
            self.observer.deviations_in_test += len(verdict.deviations)
            lines = "\n".join(f"  - {deviation.describe()}" for deviation in verdict.deviations)
            raise AssertionError(f"the answer deviates from the contract:\n{lines}\n{curl}")


def as_curl(request: httpx.Request) -> str:
    """A shell command that sends the same request; the token is ``$BRIA_API_TOKEN`` unless a trigger."""
    parts = ["curl -sS", "-X", request.method, shlex.quote(str(request.url))]
    token = request.headers.get("api_token")
    if token is not None:
        shown = shlex.quote(f"api_token: {token}") if is_trigger_token(token) else '"api_token: $BRIA_API_TOKEN"'
        parts += ["-H", shown]
    if "content-type" in request.headers:
        parts += ["-H", shlex.quote(f"Content-Type: {request.headers['content-type']}")]
    command = " ".join(parts)
    if request.content:
        body = request.content.decode("utf-8", "replace")
        command += f" --data-binary @- <<'BRIA_BODY'\n{body}\nBRIA_BODY"
    return command
