"""What the proxy checks as traffic passes: each request against its operation's request schema,
each answer as the verify report checks the contract suite's (:func:`check_api_response`).

Deviations are the verify report's kinds (``missing_field``, ``extra_field``, ``unexpected_status``...);
a request's are the same kinds, found against ``schemas/<operation>.request.json``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mock_server import operations
from mock_server.contract import validator
from mock_server.verify_report import (
    INVALID_JSON,
    RESULT_IMAGE,
    STATUS,
    check_api_response,
    check_image_response,
    classify,
    operation_of,
)

OTHER = "other"  # a path that is no API operation: forwarded, not checked
RESULTS_PREFIX = "/results/"  # the fake's result images (a fake standing in for the service)


@dataclasses.dataclass(frozen=True)
class Violation:
    """One way one request or answer breaks the contract."""

    side: str  # "request" or "response"
    kind: str
    field: str
    detail: str

    def describe(self) -> str:
        where = f" {self.field}" if self.field else ""
        return f"{self.side}: {self.kind}{where}: {self.detail}"


def endpoint_of(method: str, path: str) -> str:
    """The operation a request is for (a table operation, ``status``, ``result``: a result image), or ``other``."""
    if path.startswith(RESULTS_PREFIX) and method in {"GET", "HEAD"}:
        return RESULT_IMAGE
    name = operation_of(path)
    if name is None or (name == STATUS) != (method in {"GET", "HEAD"}):
        return OTHER
    return name


def is_checked_json(endpoint: str) -> bool:
    """Whether the answer is an API answer in JSON, checked (and read whole, to check it)."""
    return endpoint not in {OTHER, RESULT_IMAGE}


def check_request(endpoint: str, body: bytes) -> list[Violation]:
    """Every way a submission's body breaks its request schema (nothing for polls and downloads)."""
    if endpoint in {OTHER, RESULT_IMAGE, STATUS}:
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return [Violation("request", INVALID_JSON, "body", f"not JSON: {body[:80]!r}")]
    schema = operations.operation(endpoint).request_schema
    found = (
        Violation("request", kind, field, detail)
        for error in validator(schema).iter_errors(parsed)
        for kind, field, detail in classify(error)
    )
    return list(dict.fromkeys(found))  # a rule reached by two paths of the schema is one violation


def check_response(endpoint: str, status_code: int, content_type: str | None, content: bytes) -> list[Violation]:
    """Every way an answer breaks the contract (status code, content type, its schema)."""
    if endpoint == OTHER:
        return []
    if endpoint == RESULT_IMAGE:
        verdict = check_image_response(status_code, content_type)
    else:
        verdict = check_api_response(endpoint, status_code, content_type, content)
    return [Violation("response", found.kind, found.field, found.detail) for found in verdict.deviations]


def parsed_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None
