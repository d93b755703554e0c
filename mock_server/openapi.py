"""The OpenAPI 3.1 document served at ``/openapi.json``, assembled from the operation table and the schema files."""

from __future__ import annotations

import copy
import functools
from typing import Any

from mock_server.contract import load_schema, schema_names
from mock_server.operations import OPERATIONS, STATUS_PATH, Operation

# The documented codes, and the fake's own: 405 (wrong method), 408 (a stalled body), 413 (body over the limit).
_API_ERRORS = ("400", "401", "403", "404", "405", "408", "413", "415", "422", "429", "460", "5XX")
_STATUS_SHAPES = ("status.in_progress", "status.completed", "status.error", "status.unknown")


@functools.cache
def document() -> dict[str, Any]:
    """Built once per process; schema files become ``components.schemas`` under their titles."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bria image editing (bria-mock)", "version": "2"},
        "paths": {
            **{op.path: _operation(op) for op in OPERATIONS},
            f"{STATUS_PATH}{{request_id}}": _status_path(),
        },
        "components": {
            "schemas": {_title(name): _component(name) for name in schema_names()},
            "securitySchemes": {"api_token": {"type": "apiKey", "in": "header", "name": "api_token"}},
        },
        "security": [{"api_token": []}],
    }


def _title(name: str) -> str:
    return str(load_schema(name)["title"])


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_title(name)}"}


def _component(name: str) -> dict[str, Any]:
    schema = copy.deepcopy(dict(load_schema(name)))
    schema.pop("$schema", None)  # the document's dialect (JSON Schema 2020-12) applies
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(op: Operation) -> dict[str, Any]:
    responses = {
        "200": _json(_ref(op.result_schema), "sync: true, the result"),
        "202": _json(_ref("accepted.202"), "sync: false (default), poll status_url"),
        **{code: _json(_ref("error"), "error envelope; code equals the HTTP status") for code in _API_ERRORS},
    }
    return {
        op.method.lower(): {
            "operationId": op.name,
            "summary": op.summary,
            "requestBody": {"required": True, "content": {"application/json": _request_content(op)}},
            "responses": responses,
        }
    }


def _request_content(op: Operation) -> dict[str, Any]:
    example = op.example_request("https://engine.example/samples/subject.jpg")
    return {"schema": _ref(op.request_schema), "example": example}


def _status_path() -> dict[str, Any]:
    one_of = {"oneOf": [_ref(name) for name in _STATUS_SHAPES]}
    return {
        "get": {
            "operationId": "get_status",
            "summary": "Status of an async request",
            "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json(one_of, "the job's state"),
                "404": _json(_ref("status.not_found"), "unknown or expired request_id"),
                **{code: _json(_ref("error"), "error envelope") for code in ("401", "403", "429", "5XX")},
            },
        }
    }
