"""Playback: the fake answers from a recording (``serve --playback DIR``) before it falls back to its own operations.

A recording is what ``bria-mock proxy --record`` or ``verify --record`` wrote (``drift.load_recording``).
A submission is matched to a recorded one by its **fingerprint**: the operation's name and its JSON
body, field by field, where

- an image (a field of the operation's ``image_fields``, or an item of one) given as base64, with or
  without a ``data:`` prefix, stands for the SHA-256 of its decoded bytes (a recorded ``$file``'s ``sha256``);
- any other string over 1 KiB stands for the SHA-256 of its text (a recorded ``$digest``);
- everything else, image URLs included, stands for itself; field order does not matter.

A body that is not JSON is fingerprinted by its text. A match is answered with the recorded status,
headers (those that describe the answer, not the connection) and body, with the recorded
``request_id`` replaced by a new one, so that its ``status_url`` and ``image_url`` lead to this fake:

- a recorded ``202`` becomes a job of this fake that answers ``IN_PROGRESS`` as many times as the
  recording's polls of it did, then the recorded final status (``COMPLETED`` with its result,
  ``ERROR`` or ``UNKNOWN`` with its error);
- a recorded result image (the recording holds the downloaded file) is hosted again at the job's
  ``/results/<request_id>.png``; without the file, the recorded ``image_url`` is handed out as it was;
- a recorded error is answered as a ``BriaError`` carrying the recorded body (``errors.error_answer``).

The same request sent again gets the next recorded answer to that fingerprint, if the recording
holds several (a 429, then the retry's 202), then the last one again; each token counts on its own.
A request the recording does not hold falls back to the fake's own operation; a 202 whose job the
recording never polled to its end falls back too. With ``playback_strict``, a request the recording
does not hold is answered 404 instead, naming the nearest recorded request and the fields that differ.

Status polls and image downloads need no playback of their own: they read the jobs made here.
Rules, the journal and rate limits apply as to any request (playback answers in the endpoint).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mock_server.drift import REDACTED, load_recording
from mock_server.errors import ImageNotFound, error_for_code
from mock_server.jobs import Job, JobState, JobTimeline, Outcome, WorkOrder
from mock_server.operations import RESULT, STATUS, names, status_url
from mock_server.resolver import RESULTS_PATH
from mock_server.responses import JSONResponse
from mock_server.webhook_targets import check_webhook_url
from mock_server.webhooks import WebhookTarget

if TYPE_CHECKING:
    from starlette.responses import Response

    from mock_server.backend import BriaBackend
    from mock_server.context import RequestContext
    from mock_server.operations import Operation

_DATA_PREFIX = re.compile(r"^data:[^,;]*;base64,", re.IGNORECASE)
_LONG_STRING = 1024  # as the recording: longer strings are kept by digest
# Headers of the recorded answer that describe the connection or are set anew, never replayed.
_NOT_REPLAYED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"})
_NOT_REPLAYED |= {"content-encoding"}
MAX_CURSORS = 10_000  # (token, fingerprint) pairs whose place in a sequence is remembered; the oldest go first


@dataclasses.dataclass(frozen=True)
class Recorded:
    """One recorded submission: its number in the recording, its body's fields and its answer."""

    index: int
    operation: str
    fields: dict[str, Any]
    response: dict[str, Any]


class Playback:
    """A recording's submissions by fingerprint, its jobs' status sequences and its result images."""

    def __init__(self, directory: Path, *, strict: bool = False) -> None:
        _, exchanges = load_recording(directory)
        self.directory = directory
        self.strict = strict
        self.by_fingerprint: dict[str, list[Recorded]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # recorded request_id -> its polls' bodies, in order
        self.images: dict[str, Path] = {}  # recorded image_url -> the downloaded file
        for exchange in exchanges:
            self._index(exchange)
        self._cursors: collections.OrderedDict[tuple[str, str], int] = collections.OrderedDict()

    @classmethod
    def load(cls, directory: str, *, strict: bool = False) -> Playback:
        """The playback of a recording folder; ValueError saying why it cannot be read."""
        try:
            return cls(Path(directory), strict=strict)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"playback={directory!r}: not a readable bria-mock recording ({exc})") from None

    def _index(self, exchange: dict[str, Any]) -> None:
        operation, request, response = exchange["operation"], exchange["request"], exchange["response"]
        if operation in names():
            recorded = Recorded(exchange["index"], operation, recorded_fields(request), response)
            self.by_fingerprint.setdefault(fingerprint(operation, recorded.fields), []).append(recorded)
        elif operation == STATUS and isinstance(response.get("json"), dict):
            recorded_id = request["path"].rstrip("/").rsplit("/", 1)[-1]
            self.statuses.setdefault(recorded_id, []).append(response["json"])
        elif operation == RESULT and response.get("status") == 200 and response.get("image"):
            image_file = self.directory / str(response["image"].get("file", ""))
            if image_file.is_file():
                self.images[request["url"]] = image_file

    # --- answering ----------------------------------------------------------------------------

    def answer(
        self, operation: Operation, context: RequestContext, token: str, backend: BriaBackend, base_url: str
    ) -> Response | None:
        """The recorded answer to this request, or None to let the fake answer (or a 404 when strict)."""
        fields = request_fields(operation, context)
        key = fingerprint(operation.name, fields)
        recorded = self._next(backend.namespace_id(token), key)
        if recorded is None:
            if self.strict:
                raise ImageNotFound(self.no_match(operation.name, fields))
            return None
        replayed = self._replay(recorded, context.request_id, token, backend, base_url)
        if replayed is None:
            return None
        answer, job = replayed
        _expect_webhook(backend, job, context, token)
        return answer

    def rewind(self, namespace: str | None = None) -> None:
        """Back to each recorded sequence's first answer: for every token, or one namespace's (a reset)."""
        for cursor in [cursor for cursor in self._cursors if namespace is None or cursor[0] == namespace]:
            del self._cursors[cursor]

    def _next(self, token_id: str | None, key: str) -> Recorded | None:
        found = self.by_fingerprint.get(key)
        if not found:
            return None
        cursor = (token_id or "", key)
        place = self._cursors.pop(cursor, 0)
        self._cursors[cursor] = place + 1
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)
        return found[min(place, len(found) - 1)]

    def _replay(
        self, recorded: Recorded, request_id: str, token: str, backend: BriaBackend, base_url: str
    ) -> tuple[Response, Job] | None:
        response = recorded.response
        status, body, headers = response["status"], response.get("json"), replayed_headers(response)
        if status >= 400:
            error = error_for_code(status, f"replayed from exchange #{recorded.index} of the recording")
            error.headers.update(headers)
            error.replacement_body = body if body is not None else response.get("text")
            raise error
        if not isinstance(body, dict):
            return None  # nothing a client could use: the fake answers instead
        outcome = self._outcome(status, body)
        if outcome is None:
            return None
        outcome = self._rehosted(outcome, request_id, base_url)
        owner = backend.namespace_id(token)
        pending = status == 202  # (ends on its first due poll, like any job: its timeline's ending is the outcome)
        timeline = JobTimeline(polls=self._in_progress_polls(body), ending=outcome) if pending else None
        work = WorkOrder(recorded.operation, {}, {}, base_url) if pending else None
        job = backend.jobs.create(
            request_id, recorded.operation, owner=owner, timeline=timeline, sync=not pending, work=work
        )
        if not pending:
            backend.jobs.settle(job, outcome)
        return JSONResponse(_renamed(body, request_id, base_url, outcome), status_code=status, headers=headers), job

    def _outcome(self, status: int, body: dict[str, Any]) -> Outcome | None:
        """How the replayed job ends: the recorded sync result, or its final recorded poll.

        None when the recording never polled the job to its end: the fake answers the request instead."""
        if status != 202:
            return Outcome(JobState.COMPLETED, result=_dict(body.get("result")), warning=body.get("warning"))
        final = next(
            (poll for poll in reversed(self.statuses.get(str(body.get("request_id")), [])) if _is_final(poll)), None
        )
        if final is None:
            return None
        state = JobState.COMPLETED if final["status"] == "COMPLETED" else _failed_state(final["status"])
        error = _dict(final.get("error"))
        raised = error_for_code(int(error.get("code", 500)), str(error.get("details", ""))) if error else None
        return Outcome(state, result=_dict(final.get("result")) or None, error=raised, warning=final.get("warning"))

    def _in_progress_polls(self, body: dict[str, Any]) -> int:
        polls = self.statuses.get(str(body.get("request_id")), [])
        return sum(poll.get("status") == "IN_PROGRESS" for poll in polls)

    def _rehosted(self, outcome: Outcome, request_id: str, base_url: str) -> Outcome:
        """The outcome with its result image hosted here, when the recording holds the file."""
        image_url = (outcome.result or {}).get("image_url")
        image_file = self.images.get(image_url) if isinstance(image_url, str) else None
        if image_file is None or outcome.result is None:
            return outcome
        result = {**outcome.result, "image_url": f"{base_url}{RESULTS_PATH}{request_id}.png"}
        return dataclasses.replace(outcome, result=result, image=image_file.read_bytes())

    # --- strict: saying what was nearest --------------------------------------------------------

    def no_match(self, operation: str, fields: dict[str, Any]) -> str:
        """Why a request has no recorded answer, naming the nearest recorded request."""
        held = [recorded for found in self.by_fingerprint.values() for recorded in found]
        same = [recorded for recorded in held if recorded.operation == operation]
        said = f"bria-mock playback (strict): the recording holds no {operation} request like this one"
        if not same:
            kinds = sorted({recorded.operation for recorded in held})
            return f"{said}, nor any {operation} request; it holds: {', '.join(kinds) or 'no submissions'}"
        nearest = min(same, key=lambda recorded: (len(differing(fields, recorded.fields)), recorded.index))
        fields_differing = ", ".join(differing(fields, nearest.fields))
        return f"{said}; nearest: exchange #{nearest.index}, which differs in {fields_differing}"


# --- fingerprints -----------------------------------------------------------------------------


def _expect_webhook(backend: BriaBackend, job: Job, context: RequestContext, token: str) -> None:
    """A replayed job with a ``webhook_url`` delivers its webhook as any job does (a sync one at once)."""
    body = context.json_or_none()
    url = check_webhook_url(body.get("webhook_url") if isinstance(body, dict) else None)
    if url is None:
        return
    backend.expect_webhook(job, WebhookTarget(url, token, context.webhook_rules))
    if job.sync:
        backend.deliver(job)


def fingerprint(operation: str, fields: dict[str, Any]) -> str:
    """``<operation> <canonical JSON of the fields>``: what a request is matched by."""
    return f"{operation} {json.dumps(fields, sort_keys=True, separators=(',', ':'), default=str)}"


# Where the answer goes, not what is asked: a session recorded with one receiver replays with another.
NOT_FINGERPRINTED = frozenset({"webhook_url"})


def request_fields(operation: Operation, context: RequestContext) -> dict[str, Any]:
    """The fingerprint's fields of an incoming request."""
    body = context.json_or_none()
    if not isinstance(body, dict):
        return {"$text": _sha(context.raw.decode("utf-8", "replace"))}
    return {
        key: _image_key(value) if key in operation.image_fields else _long_strings(value)
        for key, value in body.items()
        if key not in NOT_FINGERPRINTED
    }


def recorded_fields(request: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint's fields of a recorded request (its images and long strings already digests)."""
    body = request.get("json")
    if not isinstance(body, dict):
        return {"$text": _sha(str(request.get("text", "")))}
    return {key: _from_recording(value) for key, value in body.items() if key not in NOT_FINGERPRINTED}


def differing(fields: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """The fields whose values differ (present in one only, or not equal)."""
    return sorted(key for key in fields.keys() | recorded.keys() if fields.get(key) != recorded.get(key)) or ["nothing"]


def _image_key(value: Any) -> Any:
    if isinstance(value, list):
        return [_image_key(item) for item in value]
    if not isinstance(value, str) or value.lower().startswith(("http://", "https://")):
        return _long_strings(value)
    match = _DATA_PREFIX.match(value)
    payload = value[match.end() if match else 0 :]
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return _long_strings(value)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _long_strings(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _LONG_STRING:
        return _sha(value)
    if isinstance(value, dict):
        return {key: _long_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_long_strings(item) for item in value]
    return value


def _from_recording(value: Any) -> Any:
    if isinstance(value, dict) and "$file" in value:
        return "sha256:" + str(value["sha256"])
    if isinstance(value, dict) and "$digest" in value:
        return "sha256:" + str(value["$digest"])
    if isinstance(value, dict):
        return {key: _from_recording(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_recording(item) for item in value]
    return value


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- answers ----------------------------------------------------------------------------------


def replayed_headers(response: dict[str, Any]) -> dict[str, str]:
    """The recorded headers that describe the answer (not the connection, never a redacted one)."""
    headers = response.get("headers", {})
    return {name: value for name, value in headers.items() if name not in _NOT_REPLAYED and value != REDACTED}


def _renamed(body: dict[str, Any], request_id: str, base_url: str, outcome: Outcome) -> dict[str, Any]:
    """The recorded body with this fake's request id, status URL and (for a sync answer) result."""
    renamed = {**body, "request_id": request_id}
    if "status_url" in body:
        renamed["status_url"] = status_url(base_url, request_id)
    if "result" in body and outcome.result is not None:
        renamed["result"] = outcome.result
    return renamed


def _is_final(poll: dict[str, Any]) -> bool:
    return poll.get("status") in {"COMPLETED", "ERROR", "FAILED", "UNKNOWN"}


def _failed_state(status: str) -> JobState:
    return JobState.UNKNOWN if status == "UNKNOWN" else JobState.ERROR  # (FAILED is ERROR under failed_status)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
