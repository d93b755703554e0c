"""Drift between a recording (usually of the live service) and the fake: replay the recorded requests
against a fresh fake and list where the answers differ in status, shape, headers and images.

Values that differ by nature (request ids, URLs, seeds, timestamps) are not compared; what is:
the status code, the schema each answer matches, the set of fields (as dotted paths), the
``Content-Type`` media type and the presence of ``Retry-After``, and each result image's format,
mode and size. Request ids and URLs handed out by the recorded service are mapped to the fake's,
so status polls and image downloads are replayed against the fake's own jobs.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from mock_server.config import Settings
from mock_server.contract import response_schema
from mock_server.operations import status_url
from mock_server.server import ServerThread
from mock_server.verify_report import EDIT_OPERATIONS, RESULT_IMAGE, STATUS, media_type

RECORDING_FORMAT = "bria-mock-recording/1"
MANIFEST = "manifest.json"
EXCHANGES = "exchanges.jsonl"
FILES = "files"
REDACTED = "<redacted>"
DRIFT_FORMAT = "bria-mock-drift-report/1"
JSON_NAME = "drift.json"
MARKDOWN_NAME = "drift.md"
# Sent in place of a redacted token: the fake accepts any non-empty one.
REPLAY_TOKEN = "bria-mock-replay"
MAX_POLLS = 10
# Never compared in any exchange, because they differ by nature between two services.
NOT_COMPARED_BY_NATURE = (
    "field values (request ids, status and image URLs, seeds, refined_prompt, error messages and details), "
    "headers other than Content-Type and Retry-After, and timings; what is compared is the status, the schema "
    "matched, the set of fields, and each result image's format, mode and size"
)
Progress = Callable[[int, int], None]  # (exchanges done, exchanges in all)


@dataclasses.dataclass(frozen=True)
class Difference:
    """One way the fake's answer differs from the recorded one."""

    exchange: int
    test: str
    request: str
    aspect: str
    recorded: Any
    fake: Any


class Replay:
    """Replays a recording's exchanges, in order, against a running fake."""

    def __init__(self, base_url: str, directory: Path, http: httpx.Client) -> None:
        self.base_url = base_url
        self.directory = directory
        self.http = http
        self.ids: dict[str, str] = {}  # recorded request_id -> the fake's
        self.urls: dict[str, str] = {}  # recorded status_url / image_url -> the fake's
        self.differences: list[Difference] = []
        self.skipped: list[dict[str, Any]] = []
        self.compared = 0

    def run(self, exchanges: list[dict[str, Any]], progress: Progress | None = None) -> None:
        for done, (exchange, retried) in enumerate(zip(exchanges, _retried(exchanges), strict=True), start=1):
            self._one(exchange, retried)
            if progress is not None:
                progress(done, len(exchanges))

    def _one(self, exchange: dict[str, Any], retried: bool) -> None:
        """Skip one exchange with its reason, or replay and compare it."""
        if retried:
            self._skip(exchange, "rate-limited (429) and retried: the retry is compared")
            return
        recorded = exchange["response"]
        operation = exchange["operation"]
        if operation == STATUS and _json_status(recorded) == "IN_PROGRESS":
            self._skip(exchange, "IN_PROGRESS: how long a job runs is timing, not contract")
            return
        answer = self._replay(exchange)
        if answer is None:
            return
        self.compared += 1
        self.differences += [_difference(exchange, *found) for found in compare(operation, recorded, answer)]
        self._learn(recorded, answer)

    def _replay(self, exchange: dict[str, Any]) -> httpx.Response | None:
        request, operation = exchange["request"], exchange["operation"]
        headers = _replay_headers(request["headers"])
        if operation in EDIT_OPERATIONS:
            content = replay_content(request, self.directory)
            return self.http.post(f"{self.base_url}{request['path']}", content=content, headers=headers)
        if operation == STATUS:
            recorded_id = request["path"].rstrip("/").rsplit("/", 1)[-1]
            url = status_url(self.base_url, self.ids.get(recorded_id, recorded_id))
            return self._poll(url, headers)
        if operation == RESULT_IMAGE:
            image_url = self.urls.get(request["url"])
            if image_url is None:
                self._skip(exchange, "no fake result corresponds to this image_url")
                return None
            return self.http.get(image_url)
        self._skip(exchange, f"unknown operation {operation!r}")
        return None

    def _poll(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """The fake's answer once its job has left IN_PROGRESS (the recorded one had)."""
        for _ in range(MAX_POLLS):
            response = self.http.get(url, headers=headers)
            if _json_status({"json": _json(response)}) != "IN_PROGRESS":
                break
        return response

    def _learn(self, recorded: Mapping[str, Any], answer: httpx.Response) -> None:
        """Map the ids and URLs the recorded service handed out to the fake's."""
        mine, theirs = recorded.get("json"), _json(answer)
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            return
        if isinstance(mine.get("request_id"), str) and isinstance(theirs.get("request_id"), str):
            self.ids[mine["request_id"]] = theirs["request_id"]
        for path in ("status_url", "result.image_url"):
            old, new = _get(mine, path), _get(theirs, path)
            if isinstance(old, str) and isinstance(new, str):
                self.urls[old] = new

    def _skip(self, exchange: Mapping[str, Any], reason: str) -> None:
        self.skipped.append({"exchange": exchange["index"], "reason": reason})


def compare(operation: str, recorded: Mapping[str, Any], answer: httpx.Response) -> Iterator[tuple[str, Any, Any]]:
    """``(aspect, recorded, fake)`` for each difference between a recorded answer and the fake's."""
    if recorded["status"] != answer.status_code:
        yield "status", recorded["status"], answer.status_code
    headers = recorded.get("headers", {})
    old_type, new_type = media_type(headers.get("content-type")), media_type(answer.headers.get("content-type"))
    if old_type != new_type:
        yield "header content-type", old_type or None, new_type or None
    if ("retry-after" in headers) != ("retry-after" in answer.headers):
        yield "header retry-after", headers.get("retry-after"), answer.headers.get("retry-after")
    if operation == RESULT_IMAGE:
        yield from _compare_images(recorded.get("image") or {}, image_properties(answer.content))
        return
    mine, theirs = recorded.get("json"), _json(answer)
    old_schema = response_schema(operation, recorded["status"], mine)
    new_schema = response_schema(operation, answer.status_code, theirs)
    if old_schema != new_schema:
        yield "schema", old_schema, new_schema
        return  # a different shape altogether: listing its fields one by one adds nothing
    old_keys, new_keys = set(key_paths(mine)), set(key_paths(theirs))
    for key in sorted(old_keys - new_keys):
        yield f"field {key}", "present", "absent"
    for key in sorted(new_keys - old_keys):
        yield f"field {key}", "absent", "present"


def _compare_images(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    for name in ("format", "mode", "size"):
        if old.get(name) != new.get(name):
            yield f"image {name}", old.get(name), new.get(name)


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every field of a JSON value as a dotted path (``result.image_url``; list items as ``[]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            yield from key_paths(item, f"{prefix}[]")


def compare_recording(
    directory: Path, settings: Settings | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Replay a recording against a fresh fake; the drift report as a JSON-ready dict.

    ``progress(done, total)`` is called after each exchange.
    """
    manifest, exchanges = load_recording(directory)
    with ServerThread(settings or Settings()) as server, httpx.Client(timeout=60) as http:
        replay = Replay(server.base_url, directory, http)
        replay.run(exchanges, progress)
    return {
        "format": DRIFT_FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recording": str(directory),
        "recorded_target": manifest.get("target"),
        "exchanges": len(exchanges),
        "compared": replay.compared,
        "ok": not replay.differences,
        "differences": [dataclasses.asdict(found) for found in replay.differences],
        "skipped": replay.skipped,
    }


def write_drift_report(report: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``drift.json`` and ``drift.md`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / JSON_NAME, directory / MARKDOWN_NAME
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, markdown_path


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        "# bria-mock drift report",
        "",
        f"- Recording: {report['recording']} (of {report['recorded_target']})",
        f"- Verdict: **{'NO DRIFT' if report['ok'] else 'DRIFT'}**: {report['compared']} of "
        f"{report['exchanges']} exchanges compared, {len(report['differences'])} difference(s)",
        "",
    ]
    if report["differences"]:
        lines += ["| # | request | aspect | recorded | fake | test |", "|---:|---|---|---|---|---|"]
        for found in report["differences"]:
            cells = [str(found["exchange"]), f"`{found['request']}`", found["aspect"]]
            cells += [f"`{json.dumps(found['recorded'])}`", f"`{json.dumps(found['fake'])}`", f"`{found['test']}`"]
            lines.append(f"| {' | '.join(cells)} |")
    else:
        lines.append("The fake answered every compared request like the recording.")
    return "\n".join(lines + _not_compared(report)) + "\n"


def _not_compared(report: Mapping[str, Any]) -> list[str]:
    """The section saying what was left out of the comparison, and why."""
    lines = ["", "## Not compared", "", f"- In every exchange, {NOT_COMPARED_BY_NATURE}."]
    reasons: dict[str, list[int]] = {}
    for skipped in report.get("skipped", []):
        reasons.setdefault(skipped["reason"], []).append(skipped["exchange"])
    for reason, indexes in reasons.items():
        shown = ", ".join(f"#{index}" for index in indexes[:10]) + (", ..." if len(indexes) > 10 else "")
        lines.append(f"- {len(indexes)} exchange(s), {reason} ({shown})")
    if not reasons:
        lines.append("- Every recorded exchange was replayed and compared.")
    return lines


def _difference(exchange: Mapping[str, Any], aspect: str, recorded: Any, fake: Any) -> Difference:
    request = exchange["request"]
    return Difference(
        exchange["index"], exchange["test"], f"{request['method']} {request['path']}", aspect, recorded, fake
    )


def _retried(exchanges: list[dict[str, Any]]) -> list[bool]:
    """Whether each exchange was a 429 that the suite retried (the next one is its retry)."""
    nexts = [*exchanges[1:], None]
    return [
        exchange["response"]["status"] == 429
        and following is not None
        and following["attempt"] == exchange["attempt"] + 1
        for exchange, following in zip(exchanges, nexts, strict=True)
    ]


def _replay_headers(recorded: Mapping[str, str]) -> dict[str, str]:
    headers = {}
    if "content-type" in recorded:
        headers["Content-Type"] = recorded["content-type"]
    if "api_token" in recorded:
        token = recorded["api_token"]
        headers["api_token"] = REPLAY_TOKEN if token == REDACTED else token
    return headers


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json_status(recorded: Mapping[str, Any]) -> Any:
    body = recorded.get("json")
    return body.get("status") if isinstance(body, dict) else None


def _get(body: Mapping[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --- reading a recording ------------------------------------------------------------------


def load_recording(directory: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and the exchanges of a recording."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != RECORDING_FORMAT:
        raise ValueError(f"{directory}: not a bria-mock recording ({manifest.get('format')!r})")
    lines = (directory / EXCHANGES).read_text(encoding="utf-8").splitlines()
    return manifest, [_current_names(json.loads(line)) for line in lines if line.strip()]


_RENAMED = {"result_image": RESULT_IMAGE}  # names earlier recordings used


def _current_names(exchange: dict[str, Any]) -> dict[str, Any]:
    operation = exchange.get("operation")
    return {**exchange, "operation": _RENAMED[operation]} if operation in _RENAMED else exchange


def replay_content(request: dict[str, Any], directory: Path) -> bytes | None:
    """The request body to send again: images read back from their files. None when there was none."""
    if "text" in request:
        return str(request["text"]).encode()
    if "json" not in request:
        return None
    return json.dumps(_restore(request["json"], directory)).encode()


def _restore(value: Any, directory: Path) -> Any:
    if isinstance(value, dict) and "$file" in value:
        data = (directory / value["$file"]).read_bytes()
        return str(value.get("prefix", "")) + base64.b64encode(data).decode()
    if isinstance(value, dict):
        return {key: _restore(item, directory) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item, directory) for item in value]
    return value


def image_properties(data: bytes) -> dict[str, Any]:
    """Format, mode and size of an image; ``format: null`` when the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"format": image.format, "mode": image.mode, "size": list(image.size)}
    except (UnidentifiedImageError, OSError):
        return {"format": None, "mode": None, "size": None}
