"""The table entries of the instruction and style edits (restyle, relight, reseason, colorize, restore,
sketch_to_colored_image, rewrite_text, add_object_by_text, replace_object_by_text, blend,
erase_by_text), the FIBO edit (``edit``) and ``structured_instruction_generate``.

Each result carries the seed and a structured instruction; ``structured_instruction_generate``
makes no image at all. The image functions are in :mod:`mock_server.restyling`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mock_server.edit_operations import draw_seed, moderate_prompt
from mock_server.errors import BadRequest
from mock_server.masks import check_same_size
from mock_server.operation_model import EDIT_PREFIX, EXAMPLE_IMAGE, Inputs, Operation, Options, Output

if TYPE_CHECKING:
    from mock_server.config import Settings

FIRST_IMAGE = "images[0]"
# The fields of the FIBO edit that shape its result (besides the images, the mask and the seed).
_EDIT_PARAMETERS = (
    "instruction",
    "structured_instruction",
    "negative_prompt",
    "guidance_scale",
    "steps_num",
    "model_version",
    "output_type",
)


def _styled(name: str, summary: str, parameters: tuple[str, ...], example: Mapping[str, Any]) -> Operation:
    """An instruction or style edit of the image: ``parameters`` are its own fields, all shaping the result."""

    def check(options: Options, settings: Settings) -> None:
        for field in parameters:
            moderate_prompt(options, field)
        draw_seed(options)

    def produce(options: Mapping[str, Any], inputs: Inputs) -> Output:
        chosen = {field: options[field] for field in parameters if options.get(field) is not None}
        return _edited(name, chosen, options, inputs, "image")

    return Operation(
        name=name,
        path=f"{EDIT_PREFIX}{name}",
        summary=summary,
        check=check,
        produce=produce,
        example={"image": EXAMPLE_IMAGE, **example},
    )


def _edited(name: str, parameters: Mapping[str, Any], options: Mapping[str, Any], inputs: Inputs, field: str) -> Output:
    """The seeded edit of the image in ``field`` (within the mask, if any) and the result's fields."""
    from mock_server import edits, restyling

    image = inputs[field].open()
    mask = inputs["mask"].open() if "mask" in inputs else None
    seed = options["seed"]
    result = restyling.seeded_edit(image, name, parameters, seed, mask)
    return Output(result, _instruction_fields(name, parameters, options, image.size, edits.image_colour(image)))


def _instruction_fields(
    name: str, parameters: Mapping[str, Any], options: Mapping[str, Any], size: tuple[int, int], colour: Any
) -> dict[str, Any]:
    from mock_server import restyling

    given = options.get("structured_instruction")
    structured = (
        given
        if isinstance(given, str)
        else restyling.structured_instruction(name, parameters, options["seed"], size, colour)
    )
    fields: dict[str, Any] = {"seed": options["seed"], "structured_instruction": structured}
    warning = restyling.ip_warning(options.get("instruction")) if options.get("ip_signal") else None
    if warning is not None:
        fields["warning"] = warning
    return fields


# --- the FIBO edit and structured instructions --------------------------------------------------


def _check_edit(options: Options, settings: Settings) -> None:
    has_text, has_structure = options.get("instruction") is not None, options.get("structured_instruction") is not None
    if has_text == has_structure:
        raise BadRequest("instruction, structured_instruction: exactly one of the two must be provided")
    if has_structure:
        _check_structured(options["structured_instruction"])
    moderate_prompt(options, "instruction")
    draw_seed(options)


def _check_structured(value: str) -> None:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest("structured_instruction: must be a JSON object, as a string")


def _check_generate(options: Options, settings: Settings) -> None:
    moderate_prompt(options, "instruction")
    draw_seed(options)


def _check_mask_size(options: Mapping[str, Any], inputs: Inputs) -> None:
    if "mask" in inputs:
        check_same_size(inputs["mask"].size, inputs[FIRST_IMAGE].size)


def _produce_edit(options: Mapping[str, Any], inputs: Inputs) -> Output:
    chosen = {field: options[field] for field in _EDIT_PARAMETERS if options.get(field) is not None}
    return _edited("edit", chosen, options, inputs, FIRST_IMAGE)


def _produce_structured_instruction(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits

    image = inputs[FIRST_IMAGE].open()
    parameters = {"instruction": options["instruction"], "masked": "mask" in inputs}
    fields = _instruction_fields("edit", parameters, options, image.size, edits.image_colour(image))
    return Output(None, fields)


# --- the entries --------------------------------------------------------------------------------

INSTRUCTION_OPERATIONS: tuple[Operation, ...] = (
    _styled("restyle", "Restyle the image", ("style",), {"style": "oil_painting"}),
    _styled(
        "relight",
        "Relight the image",
        ("light_type", "light_direction"),
        {"light_type": "midday", "light_direction": "side"},
    ),
    _styled("reseason", "Change the season", ("season",), {"season": "winter"}),
    _styled("colorize", "Colorize or restyle the colours", ("color",), {"color": "color_vivid"}),
    _styled("restore", "Restore an old photo", (), {}),
    _styled("sketch_to_colored_image", "Turn a sketch into a coloured image", (), {}),
    _styled("rewrite_text", "Rewrite the text in the image", ("new_text",), {"new_text": "OPEN"}),
    _styled("add_object_by_text", "Add an object by text", ("instruction",), {"instruction": "add a red vase"}),
    _styled(
        "replace_object_by_text",
        "Replace an object by text",
        ("instruction",),
        {"instruction": "replace the cup with a glass"},
    ),
    _styled("blend", "Blend by instruction", ("instruction",), {"instruction": "blend in a sunset glow"}),
    _styled("erase_by_text", "Erase an object named by text", ("object_name",), {"object_name": "the lamp"}),
    Operation(
        name="edit",
        path="/v2/image/edit",
        summary="Edit by instruction (FIBO edit)",
        check=_check_edit,
        produce=_produce_edit,
        example={"images": [EXAMPLE_IMAGE], "instruction": "make the sky blue", "seed": 5},
        image_fields=("images", "mask"),
        constrained_fields=("instruction", "structured_instruction"),
        check_inputs=_check_mask_size,
    ),
    Operation(
        name="structured_instruction_generate",
        path="/v2/structured_instruction/generate",
        summary="Generate a structured edit instruction (no image)",
        check=_check_generate,
        produce=_produce_structured_instruction,
        example={"images": [EXAMPLE_IMAGE], "instruction": "make the sky blue", "seed": 5},
        image_fields=("images", "mask"),
        constrained_fields=("instruction", "structured_instruction"),
        check_inputs=_check_mask_size,
    ),
)
