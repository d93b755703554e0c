"""The operation table: every API operation the fake serves, as data.

Routes, the endpoint names that rules and the journal use, ``/openapi.json``, the verify
report's sections and the contract suite's parametrisation are all read from ``OPERATIONS``.
Adding an endpoint is one entry here, its schema files in ``schemas/`` and one image function.
The entries of the other edits are built in ``edit_operations`` (around the subject, masks,
size and canvas) and ``instruction_operations`` (instruction and style edits, the FIBO edit,
structured instructions); what an entry carries is ``operation_model.Operation``.

An operation differs from the others only in its data and in three functions:

- ``check`` runs on the validated request (defaults filled in) before any image is read, and
  may add fields the result needs (a drawn ``seed``) or raise a documented error;
- ``check_inputs`` runs on the checked input images (their sizes known) before the job is
  accepted: mask and geometry rules;
- ``produce`` turns the request and its checked input images into the result: PNG bytes (or
  none, for ``structured_instruction_generate``) and the result's other fields. It runs in a
  worker thread, once per job, and is deterministic for the same request (and seed).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mock_server.edit_operations import EDIT_OPERATIONS
from mock_server.errors import BadRequest, ModerationFailed
from mock_server.instruction_operations import INSTRUCTION_OPERATIONS
from mock_server.operation_model import (
    ALL_FORMATS,
    EDIT_PREFIX,
    EXAMPLE_IMAGE,
    DecodeSizes,
    Inputs,
    Operation,
    Options,
    Output,
)
from mock_server.triggers import prompt_is_unsafe

if TYPE_CHECKING:
    from mock_server.config import Settings

__all__ = ["ALL_FORMATS", "OPERATIONS", "Inputs", "Operation", "Options", "Output", "operation"]


# --- remove_background ------------------------------------------------------------------------


def _rmbg_formats(settings: Settings) -> frozenset[str]:
    # The remove_background page says JPEG and PNG only; its field list says WEBP too (rmbg_accept_webp).
    return ALL_FORMATS if settings.rmbg_accept_webp else ALL_FORMATS - {"WEBP"}


def _no_check(options: Options, settings: Settings) -> None:
    return None


def _produce_remove_background(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import imaging  # (imported when first used: a server starts without Pillow's work)

    return Output(imaging.remove_background(inputs["image"].open(), preserve_alpha=options["preserve_alpha"]))


# --- replace_background -----------------------------------------------------------------------


def _check_replace_background(options: Options, settings: Settings) -> None:
    refs = options.get("ref_images") or []
    count = 1 if isinstance(refs, str) else len(refs)
    if count > settings.max_ref_images:
        raise BadRequest(f"ref_images: at most {settings.max_ref_images} reference images (max_ref_images)")
    prompt = options.get("prompt") or None
    if prompt and options["prompt_content_moderation"] and prompt_is_unsafe(prompt):
        raise ModerationFailed("prompt: the prompt failed content moderation (prompt_content_moderation)")
    if options.get("seed") is None:  # drawn now: the result reports the seed that replays it
        options["seed"] = secrets.randbelow(2**31)


def _replace_background_sizes(options: Mapping[str, Any], inputs: Inputs) -> DecodeSizes:
    """The result is about 1 MP (unless ``original_quality``): the image is needed at that size,
    each reference at the size that covers the result (either way round, whatever its orientation)."""
    from mock_server import imaging

    full = inputs["image"].size
    result = full if options["original_quality"] else imaging.one_megapixel_size(full)
    sizes = {} if options["original_quality"] else {"image": result}
    side = max(result)
    for field, ref in inputs.items():
        if field.startswith("ref_images"):
            sizes[field] = imaging.cover_size(ref.size, (side, side))
    return sizes


def _produce_replace_background(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import imaging

    prompt = options.get("prompt") or None
    sizes = _replace_background_sizes(options, inputs)
    image = imaging.replace_background(
        inputs["image"].open(sizes.get("image")),
        full_size=inputs["image"].size,
        prompt=prompt,
        ref_images=[image.open(sizes.get(field)) for field, image in inputs.items() if field.startswith("ref_images")],
        mode=options["mode"],
        seed=options["seed"],
        original_quality=options["original_quality"],
        force_background_detection=options["force_background_detection"],
        negative_prompt=options.get("negative_prompt"),
        enhance_ref_images=options["enhance_ref_images"],
    )
    fields: dict[str, Any] = {"seed": options["seed"]}
    if prompt:
        fields["refined_prompt"] = (
            imaging.refine_prompt(prompt, options["mode"]) if options["refine_prompt"] else prompt
        )
    return Output(image, fields)


# --- the table ----------------------------------------------------------------------------------

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="remove_background",
        path=f"{EDIT_PREFIX}remove_background",
        summary="Remove the background",
        check=_no_check,
        produce=_produce_remove_background,
        formats=_rmbg_formats,
    ),
    Operation(
        name="replace_background",
        path=f"{EDIT_PREFIX}replace_background",
        summary="Replace the background",
        check=_check_replace_background,
        produce=_produce_replace_background,
        example={"image": EXAMPLE_IMAGE, "prompt": "a sunny beach"},
        image_fields=("image", "ref_images"),
        decode_sizes=_replace_background_sizes,
    ),
    *EDIT_OPERATIONS,
    *INSTRUCTION_OPERATIONS,
)

# The status service's path (its one route is ``STATUS_PATH + "{request_id}"``).
STATUS_PATH = "/v2/status/"


def status_url(base_url: str, request_id: str) -> str:
    """Where a job's status is polled: the ``status_url`` of a 202."""
    return f"{base_url}{STATUS_PATH}{request_id}"


# Endpoint names beside the operations: the status service, result-image downloads, anything else.
STATUS = "status"
RESULT = "result"
SAMPLE = "sample"
OTHER = "other"
WEBHOOK = "webhook"  # not a request to the fake: the deliveries it makes (rules act on them)


def operation(name: str) -> Operation:
    """The operation called ``name`` (KeyError when there is none)."""
    return _BY_NAME[name]


def names() -> list[str]:
    """The operations' endpoint names, in table order."""
    return [op.name for op in OPERATIONS]


def endpoint_names() -> list[str]:
    """Every endpoint name a rule or a journal query may use: the operations, then the others
    (``webhook``: the deliveries the fake makes, which only rules act on)."""
    return [*names(), STATUS, RESULT, SAMPLE, OTHER, WEBHOOK]


_BY_NAME: Mapping[str, Operation] = {op.name: op for op in OPERATIONS}


def is_billable(name: str) -> bool:
    """Whether a call of this endpoint costs credits on the real service (only operations do)."""
    op = _BY_NAME.get(name)
    return op is not None and op.billable


@functools.cache
def rate_limited() -> frozenset[str]:
    """The endpoints a rate limit counts: every operation and the status service (as the real edge does)."""
    return frozenset([*names(), STATUS])


def image_summary_fields() -> Sequence[str]:
    """Every request field that can hold an image (the journal shows their digests, not their bytes)."""
    return sorted({field for op in OPERATIONS for field in op.image_fields})
