"""What a contract run found: every way each response deviates from the documented contract, and
the report that sums them up per endpoint and status code.

Pure functions over status codes, headers and bodies (no pytest, no HTTP), shared by the contract
suite, ``bria-mock verify`` and the drift comparison. The rules come from ``schemas/`` through
:mod:`mock_server.contract` and from the OpenAPI document built from the same files; nothing here
restates a response shape.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema.exceptions import ValidationError

from mock_server import operations
from mock_server.contract import load_schema, response_schema, schema_names, validator
from mock_server.openapi import document

EDIT_OPERATIONS = tuple(operations.names())  # the operation table, in its order
STATUS = operations.STATUS
RESULT_IMAGE = operations.RESULT  # a download of result.image_url: "result", as rules and the journal call it
JSON_TYPE = "application/json"
IMAGE_TYPE = "image/png"

# The deviation kinds a report can list, in the order the report shows them.
MISSING_FIELD = "missing_field"
EXTRA_FIELD = "extra_field"
TYPE_MISMATCH = "type_mismatch"
ENUM_MISMATCH = "enum_mismatch"
CONSTRAINT = "constraint"
UNEXPECTED_STATUS = "unexpected_status"
WRONG_CONTENT_TYPE = "wrong_content_type"
INVALID_JSON = "invalid_json"
KINDS = (
    MISSING_FIELD,
    EXTRA_FIELD,
    TYPE_MISMATCH,
    ENUM_MISMATCH,
    CONSTRAINT,
    UNEXPECTED_STATUS,
    WRONG_CONTENT_TYPE,
    INVALID_JSON,
)
_KIND_OF_VALIDATOR = {
    "required": MISSING_FIELD,
    "additionalProperties": EXTRA_FIELD,
    "type": TYPE_MISMATCH,
    "enum": ENUM_MISMATCH,
    "const": ENUM_MISMATCH,
}


@dataclasses.dataclass(frozen=True)
class Deviation:
    """One way one response differs from the documented contract."""

    kind: str
    operation: str
    status_code: int
    field: str
    detail: str

    def describe(self) -> str:
        """One line for an assertion message or a report."""
        where = f" {self.field}" if self.field else ""
        return f"{self.kind}{where} ({self.operation}, HTTP {self.status_code}): {self.detail}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one response was checked against, and what was wrong with it."""

    operation: str
    status_code: int
    schema: str | None
    deviations: tuple[Deviation, ...]


# --- what the documentation lists ---------------------------------------------------------


@functools.cache
def operation_routes() -> dict[str, tuple[str, str]]:
    """Each operation's ``(method, path template)``, from the OpenAPI document."""
    routes: dict[str, tuple[str, str]] = {}
    for path, methods in document()["paths"].items():
        for method, spec in methods.items():
            name = STATUS if spec["operationId"] == "get_status" else str(spec["operationId"])
            routes[name] = (method.upper(), path)
    return routes


def endpoint_label(operation: str) -> str:
    """``POST /v2/image/edit/remove_background``, or the result image's description."""
    if operation == RESULT_IMAGE:
        return "GET result.image_url"
    method, path = operation_routes()[operation]
    return f"{method} {path}"


def operation_of(path: str) -> str | None:
    """The API operation a request path belongs to; None for anything else."""
    for name, (_, template) in operation_routes().items():
        prefix = template.split("{", 1)[0]
        if path == template or ("{" in template and path.startswith(prefix) and len(path) > len(prefix)):
            return name
    return None


@functools.cache
def _documented(operation: str) -> frozenset[str]:
    method, path = operation_routes()[operation]
    return frozenset(document()["paths"][path][method.lower()]["responses"])


def status_is_documented(operation: str, status_code: int) -> bool:
    """Whether the documentation lists this status code (``5XX`` covers 500-599) for the operation."""
    codes = _documented(operation)
    return str(status_code) in codes or f"{str(status_code)[0]}XX" in codes


@functools.cache
def job_states() -> tuple[str, ...]:
    """Every ``status`` value a 200 status answer may carry, from the ``status.*`` schemas."""
    states = []
    for name in schema_names():
        if name.startswith(f"{STATUS}.") and name != response_schema(STATUS, 404, {"status": "NOT_FOUND"}):
            states.append(str(load_schema(name)["properties"]["status"]["const"]))
    return tuple(sorted(states))


# --- checking one response ----------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_api_response(operation: str, status_code: int, content_type: str | None, content: bytes) -> Verdict:
    """Check an answer of an API route: status code, content type, and the body against its schema."""
    found: list[Deviation] = []

    def add(kind: str, field: str, detail: str) -> None:
        found.append(Deviation(kind, operation, status_code, field, detail))

    if not status_is_documented(operation, status_code):
        add(UNEXPECTED_STATUS, "", f"{status_code} is not a status the documentation lists for {operation}")
    if media_type(content_type) != JSON_TYPE:
        add(WRONG_CONTENT_TYPE, "Content-Type", f"expected {JSON_TYPE}, got {content_type or 'nothing'}")
    try:
        body = json.loads(content)
    except ValueError:
        add(INVALID_JSON, "body", f"not JSON: {content[:80]!r}")
        return Verdict(operation, status_code, None, tuple(found))
    name = response_schema(operation, status_code, body)
    if name not in schema_names():
        # A 200 status answer whose "status" no schema documents (e.g. FAILED).
        state = body.get("status") if isinstance(body, dict) else None
        if state is None:
            add(MISSING_FIELD, "status", "a 200 status answer needs a status")
        else:
            add(ENUM_MISMATCH, "status", f"{state!r} is not one of {', '.join(job_states())}")
        return Verdict(operation, status_code, None, tuple(found))
    for error in validator(name).iter_errors(body):
        for kind, field, detail in classify(error):
            add(kind, field, detail)
    code = body.get("error", {}).get("code") if name == "error" and isinstance(body.get("error"), dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code != status_code:
        add(ENUM_MISMATCH, "error.code", f"{code} differs from the HTTP status {status_code}")
    return Verdict(operation, status_code, name, tuple(found))


def check_image_response(status_code: int, content_type: str | None) -> Verdict:
    """Check the download of a result ``image_url``: 200 with ``image/png``."""
    found = []
    if status_code != 200:
        found.append(Deviation(UNEXPECTED_STATUS, RESULT_IMAGE, status_code, "", "a result image answers 200"))
    if media_type(content_type) != IMAGE_TYPE:
        detail = f"expected {IMAGE_TYPE}, got {content_type or 'nothing'}"
        found.append(Deviation(WRONG_CONTENT_TYPE, RESULT_IMAGE, status_code, "Content-Type", detail))
    return Verdict(RESULT_IMAGE, status_code, None, tuple(found))


def classify(error: ValidationError) -> Iterable[tuple[str, str, str]]:
    """``(kind, field, detail)`` for each field a schema validation error is about."""
    path = field_path(error.absolute_path)
    kind = _KIND_OF_VALIDATOR.get(str(error.validator), CONSTRAINT)
    instance = error.instance
    if kind == MISSING_FIELD and isinstance(instance, Mapping) and isinstance(error.validator_value, list):
        for name in error.validator_value:
            if name not in instance:
                yield kind, join(path, name), "documented as required, absent"
        return
    if kind == EXTRA_FIELD and isinstance(instance, Mapping) and isinstance(error.schema, Mapping):
        for name in undocumented_keys(instance, error.schema):
            yield kind, join(path, name), f"not in the schema (value {_preview(instance[name])})"
        return
    if kind == TYPE_MISMATCH:
        yield kind, path, f"expected {_types(error.validator_value)}, got {_preview(instance)}"
        return
    yield kind, path, str(error.message)


def undocumented_keys(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Keys of an object its schema does not list (``additionalProperties: false`` refuses them)."""
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    listed = schema.get("properties", {})
    return sorted(key for key in instance if key not in listed and not any(p.search(key) for p in patterns))


def field_path(parts: Iterable[Any]) -> str:
    """``result.image_url`` / ``ref_images[0]``: a dotted path from a jsonschema path."""
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else join(path, str(part))
    return path


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _types(value: Any) -> str:
    return " or ".join(value) if isinstance(value, list) else str(value)


def _preview(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


# --- the report ---------------------------------------------------------------------------

REPORT_FORMAT = "bria-mock-verify-report/1"
# The order the report lists operations in; others follow.
OPERATIONS = (*EDIT_OPERATIONS, STATUS, RESULT_IMAGE)


def build_report(
    *,
    target: Mapping[str, Any],
    profile: str,
    spend: Mapping[str, Any],
    observations: Iterable[Mapping[str, Any]],
    tests: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    ``observations``: one per response (``operation``, ``endpoint``, ``status_code``, ``test``, ``deviations``);
    ``tests``: one per test (``nodeid``, ``outcome``, ``message``).
    """
    seen = list(observations)
    outcomes = list(tests)
    failed = {test["nodeid"] for test in outcomes if test["outcome"] == "failed"}
    deviations = _deviations(seen)
    counts = {
        outcome: sum(test["outcome"] == outcome for test in outcomes) for outcome in ("passed", "failed", "skipped")
    }
    return {
        "format": REPORT_FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "target": dict(target),
        "profile": profile,
        "summary": {
            "ok": not failed and not deviations and counts["passed"] > 0,
            "tests": counts,
            "responses": len(seen),
            "deviations": len(deviations),
        },
        "spend": dict(spend),
        "endpoints": _endpoints(seen, failed),
        "deviations": deviations,
        "tests": outcomes,
    }


def _endpoints(seen: list[Mapping[str, Any]], failed: set[str]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for observation in seen:
        key = (observation["operation"], observation["status_code"])
        row = rows.setdefault(
            key, {"endpoint": observation["endpoint"], "responses": 0, "deviations": 0, "tests": set()}
        )
        row["responses"] += 1
        row["deviations"] += len(observation["deviations"])
        row["tests"].add(observation["test"])
    out = []
    for (operation, status_code), row in sorted(rows.items(), key=lambda item: (_order(item[0][0]), item[0][1])):
        failing = sorted(row["tests"] & failed)
        out.append(
            {
                "endpoint": row["endpoint"],
                "operation": operation,
                "status_code": status_code,
                "responses": row["responses"],
                "deviations": row["deviations"],
                "failed_tests": failing,
                "result": "fail" if row["deviations"] or failing else "pass",
            }
        )
    return out


def _deviations(seen: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct deviation once, with how often it was seen and by which tests."""
    merged: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for observation in seen:
        for deviation in observation["deviations"]:
            key = (deviation["kind"], deviation["operation"], deviation["status_code"], deviation["field"])
            entry = merged.setdefault(
                key,
                {
                    "kind": deviation["kind"],
                    "endpoint": observation["endpoint"],
                    "operation": deviation["operation"],
                    "status_code": deviation["status_code"],
                    "field": deviation["field"],
                    "detail": deviation["detail"],
                    "count": 0,
                    "tests": [],
                },
            )
            entry["count"] += 1
            if observation["test"] not in entry["tests"]:
                entry["tests"].append(observation["test"])
    return sorted(merged.values(), key=lambda entry: (entry["kind"], _order(entry["operation"]), entry["field"]))


def _order(operation: str) -> int:
    return OPERATIONS.index(operation) if operation in OPERATIONS else len(OPERATIONS)
