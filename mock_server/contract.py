"""The JSON Schemas in ``schemas/``: loaded once, used to validate requests and responses.

The schema files are the single source of truth. They are imported as ``mock_server/schemas``:
installed, a folder of the package; in a source checkout, a link to the top-level ``schemas/``.

Requests are checked on every call, so they get validators compiled from the schemas
(fastjsonschema). They report the first rule a body breaks: that the body is an object,
then missing fields, then each field in the schema's order, then the rules across fields
(exactly one of prompt and ref_images). Responses, checked by the tests, use jsonschema, which
reports every error.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

from mock_server.errors import BadRequest

if TYPE_CHECKING:  # jsonschema is imported when first used: serving requests never needs it
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import ValidationError

_PACKAGE_DIR = Path(__file__).resolve().parent


def schema_dir() -> Path:
    """Where the schema files are: the package's own ``schemas`` folder."""
    folder = _PACKAGE_DIR / "schemas"
    if not (folder / "error.json").is_file():
        # A checkout made with git's core.symlinks off holds the link as a small text file.
        raise FileNotFoundError(f"bria-mock's schemas are missing from {folder} (is it a symlink git did not make?)")
    return folder


def schema_names() -> list[str]:
    """Every schema's name: its file name without ``.json``."""
    return list(_schema_names())


@functools.cache
def _schema_names() -> tuple[str, ...]:
    # Listed once per process: a proxy checks every answer against the list, and globbing is slow.
    return tuple(sorted(path.stem for path in schema_dir().glob("*.json")))


@functools.cache
def load_schema(name: str) -> Mapping[str, Any]:
    """The schema ``schemas/<name>.json`` as a dict (cached: do not mutate it)."""
    with (schema_dir() / f"{name}.json").open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema  # (that every file is valid Draft 7 is checked by the project's tests)


@functools.cache
def validator(name: str) -> Draft7Validator:
    """A jsonschema validator for one schema, built once per process."""
    from jsonschema import Draft7Validator

    return Draft7Validator(load_schema(name))


@functools.cache
def compiled(name: str) -> tuple[Callable[[Any], Any], ...]:
    """Compiled validators for one schema (each raises ``JsonSchemaValueException``), built once.

    Run in order: the fields first, then the rules across fields at the top (``oneOf`` and the
    like), so that a field of the wrong type is named rather than an exactly-one-of rule it breaks.
    """
    schema = _without_annotations(load_schema(name))
    fields = {key: value for key, value in schema.items() if key not in _ACROSS_FIELDS}
    across = {key: value for key, value in schema.items() if key in _ACROSS_FIELDS or key == "errorMessage"}
    parts = [fields, across] if any(key in schema for key in _ACROSS_FIELDS) else [fields]
    # (use_default=False: defaults would fill in the body)
    return tuple(fastjsonschema.compile(part, use_default=False) for part in parts)


_ACROSS_FIELDS = ("oneOf", "anyOf", "allOf", "not")
_ANNOTATIONS = frozenset({"$schema", "$comment", "title", "description", "default", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})  # values are schemas


def _without_annotations(schema: Any, names: bool = False) -> Any:
    """The schema without the keywords that only document (``names``: a map of field names to schemas)."""
    if isinstance(schema, list):
        return [_without_annotations(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    if names:
        return {name: _without_annotations(sub) for name, sub in schema.items()}
    return {
        key: _without_annotations(value, names=key in _SCHEMA_MAPS)
        for key, value in schema.items()
        if key not in _ANNOTATIONS
    }


def validate_request(name: str, body: Any) -> None:
    """Raise :class:`BadRequest` naming the field when ``body`` breaks the request schema."""
    problem = _shape_problem(load_schema(name), body)
    if problem is not None:
        raise BadRequest(problem)
    try:
        for check in compiled(name):
            check(body)
    except fastjsonschema.JsonSchemaValueException as error:
        raise BadRequest(describe_first(error)) from None


def _shape_problem(schema: Mapping[str, Any], body: Any) -> str | None:
    """A body that is not an object, or lacks a required field: the commonest 400s, found before the
    compiled validator runs, because when it raises one of them it rebuilds the whole schema as the
    error's ``definition`` (most of the cost of such a 400)."""
    if not isinstance(body, dict):
        return f"body: {_problem('type', 'object', body)}" if schema.get("type") == "object" else None
    missing = next((field for field in schema.get("required", ()) if field not in body), None)
    return None if missing is None else f"{missing}: {_problem('required', None, body)}"


def describe_first(error: fastjsonschema.JsonSchemaValueException) -> str:
    """``"<field>: <problem>"`` for the first error a compiled validator found, worded as :func:`describe`."""
    definition = error.definition if isinstance(error.definition, dict) else {}
    custom = definition.get("errorMessage", {})
    if error.rule in custom:
        return str(custom[error.rule])
    # The compiled validator names the body "data" and a field "data.ref_images[1]": the rest is
    # already the field's name as describe() writes it.
    field = str(error.name).removeprefix("data").lstrip(".")
    if error.rule == "required" and isinstance(error.value, dict):
        missing = next(name for name in definition["required"] if name not in error.value)
        field = f"{field}.{missing}" if field else missing
    problem = _problem(str(error.rule), definition.get(str(error.rule)), error.value)
    return f"{field or 'body'}: {problem or error.message.removeprefix(str(error.name)).strip()}"


def response_errors(name: str, body: Any) -> list[str]:
    """Every way ``body`` breaks the response schema ``name``; empty when it conforms."""
    return [describe(error) for error in validator(name).iter_errors(body)]


def describe(error: ValidationError) -> str:
    """``"<field>: <problem>"`` for a validation error, with the schema's own wording where it has one.

    A field the schema does not know is named with the closest known one and the list of them;
    a value that matches none of a ``oneOf`` of objects tagged by ``type`` is described against
    the branch its ``type`` picks (or the list of types, when it picks none).
    """
    custom = error.schema.get("errorMessage", {}) if isinstance(error.schema, dict) else {}
    if str(error.validator) in custom:
        # The schema words the rule itself (e.g. "exactly one of prompt and ref_images").
        return str(custom[str(error.validator)])
    field = _field_name(error.absolute_path)
    if (
        error.validator == "additionalProperties"
        and isinstance(error.instance, dict)
        and isinstance(error.schema, dict)
    ):
        return _unknown_field(field, error.instance, error.schema)
    if error.validator == "oneOf" and _tags(error.validator_value):
        return _untagged_branch(field, error)
    field = field or _missing_field(error) or "body"
    return f"{field}: {_short_message(error)}"


def _unknown_field(field: str, instance: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    known = list(schema.get("properties", {}))
    unknown = next((name for name in instance if name not in known), "")
    path = f"{field}.{unknown}" if field else unknown
    return f"{path or 'body'}: not a known field{_did_you_mean(unknown, known)}; known fields: {', '.join(known)}"


def _tags(branches: Any) -> list[str]:
    """The ``type`` constants of a ``oneOf`` whose every branch is an object tagged by one; else []."""
    if not isinstance(branches, list):
        return []
    tags = [branch.get("properties", {}).get("type", {}).get("const") for branch in branches]
    return tags if all(isinstance(tag, str) for tag in tags) else []


def _untagged_branch(field: str, error: ValidationError) -> str:
    tags = _tags(error.validator_value)
    instance = error.instance
    where = field or "body"
    if not isinstance(instance, dict):
        return f"{where}: {_problem('type', 'object', instance)}"
    tag = instance.get("type")
    if tag not in tags:
        problem = "this field is required" if "type" not in instance else f"{tag!r} is not a known type"
        hint = _did_you_mean(tag, tags) if isinstance(tag, str) else ""
        return f"{where}.type: {problem}{hint}; types: {', '.join(tags)}"
    branch = tags.index(tag)
    inside = [sub for sub in error.context or () if sub.relative_schema_path and sub.relative_schema_path[0] == branch]
    detail = describe(inside[0]) if inside else f"{where}: {error.message}"
    return f"{detail} ({where.rsplit('.', 1)[-1]} type {tag})"


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _field_name(path: Iterable[Any]) -> str:
    parts = ""
    for part in path:
        parts += f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part))
    return parts


def _missing_field(error: ValidationError) -> str:
    if error.validator == "required":
        # jsonschema's message is "'image' is a required property"; the name is its first quoted word.
        return str(error.message).split("'")[1] if error.message.count("'") >= 2 else ""
    return ""


def _short_message(error: ValidationError) -> str:
    return _problem(str(error.validator), error.validator_value, error.instance) or str(error.message)


def _problem(rule: str, rule_value: Any, instance: Any) -> str | None:
    """The fake's own wording of the rules clients break most (None: the validator's own wording)."""
    if rule == "required":
        return "this field is required"
    if rule == "type":
        return f"expected {_types(rule_value)}, got {_json_type(instance)}"
    if rule == "enum":
        hint = _did_you_mean(instance, map(str, rule_value)) if isinstance(instance, str) else ""
        return f"must be one of {', '.join(str(value) for value in rule_value)}{hint}"
    if rule in _BOUNDS and _is_number(instance):
        return f"must be {rule_value} {_BOUNDS[rule]}, got {instance!r}"
    return None


_BOUNDS = {"minimum": "or more", "maximum": "or less"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _types(value: Any) -> str:
    return " or ".join(value) if isinstance(value, list) else str(value)


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _json_type(instance: Any) -> str:
    """The JSON type of a parsed value, as Draft 7 names it (a float with no fraction is an integer)."""
    if instance is None:
        return "null"
    if isinstance(instance, float) and instance.is_integer():
        return "integer"
    return _JSON_TYPES.get(type(instance), type(instance).__name__)


@functools.cache
def defaults(name: str) -> Mapping[str, Any]:
    """The documented default of every field of a request schema that has one."""
    properties = load_schema(name).get("properties", {})
    return {field: spec["default"] for field, spec in properties.items() if "default" in spec}


def with_defaults(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A validated request body with documented defaults filled in; ``null`` counts as absent."""
    present = {field: value for field, value in body.items() if value is not None}
    return {**defaults(name), **present}


def response_schema(operation: str, status_code: int, body: Any) -> str:
    """The schema a response must conform to, by operation and status code.

    ``operation`` is an operation's name (see ``operations.OPERATIONS``) or ``status``.
    """
    if operation == "status":
        if status_code == 200 and isinstance(body, dict):
            return f"status.{str(body.get('status', '')).lower()}"
        return "status.not_found" if status_code == 404 and body == {"status": "NOT_FOUND"} else "error"
    if status_code == 200:
        return f"{operation}.200"
    return "accepted.202" if status_code == 202 else "error"
