"""The table entries of the image edits: erase_foreground, blur_background, crop_foreground,
increase_resolution, enhance, expand, erase and gen_fill; their checks and produce functions.

The image functions live in :mod:`mock_server.edits` and :mod:`mock_server.resizing` and are
imported on first use (a server starts without Pillow's work).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mock_server.errors import BadRequest, ModerationFailed
from mock_server.masks import check_same_aspect_ratio
from mock_server.operation_model import EDIT_PREFIX, EXAMPLE_IMAGE, Inputs, Operation, Options, Output
from mock_server.triggers import prompt_is_unsafe

if TYPE_CHECKING:
    from mock_server.config import Settings


def draw_seed(options: Options) -> None:
    """Draw the seed now when the request has none: the result reports the seed that replays it."""
    if options.get("seed") is None:
        options["seed"] = secrets.randbelow(2**31)


def moderate_prompt(options: Mapping[str, Any], field: str = "prompt") -> None:
    """422 when the text in ``field`` fails moderation and ``prompt_content_moderation`` is on."""
    text = options.get(field)
    if isinstance(text, str) and options.get("prompt_content_moderation") and prompt_is_unsafe(text):
        raise ModerationFailed(f"{field}: the {field} failed content moderation (prompt_content_moderation)")


def _no_check(options: Options, settings: Settings) -> None:
    return None


def _check_mask(options: Mapping[str, Any], inputs: Inputs) -> None:
    check_same_aspect_ratio(inputs["mask"].size, inputs["image"].size)


# --- around the subject -------------------------------------------------------------------------


def _produce_erase_foreground(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits

    return Output(edits.erase_foreground(inputs["image"].open(), preserve_alpha=options["preserve_alpha"]))


def _produce_blur_background(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits

    image = inputs["image"].open()
    return Output(edits.blur_background(image, scale=options["scale"], preserve_alpha=options["preserve_alpha"]))


# The largest crop result, as expand's largest canvas: padding grows the result on all four sides.
MAX_CROP_PIXELS = 5000 * 5000


def _check_crop_size(options: Mapping[str, Any], inputs: Inputs) -> None:
    width, height = inputs["image"].size
    padding = options["padding"]
    if (width + 2 * padding) * (height + 2 * padding) > MAX_CROP_PIXELS:
        raise BadRequest(f"padding: {padding} pixels on each side could make the result over 5000x5000 pixels in area")


def _produce_crop_foreground(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits

    image = edits.crop_foreground(
        inputs["image"].open(),
        padding=options["padding"],
        force_background_detection=options["force_background_detection"],
        preserve_alpha=options["preserve_alpha"],
    )
    return Output(image)


# --- size and canvas ----------------------------------------------------------------------------


def _check_upscale(options: Mapping[str, Any], inputs: Inputs) -> None:
    from mock_server.resizing import upscaled_size

    upscaled_size(inputs["image"].size, options["desired_increase"])


def _produce_increase_resolution(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import resizing

    image = inputs["image"].open()
    factor, preserve_alpha = options["desired_increase"], options["preserve_alpha"]
    return Output(resizing.increase_resolution(image, desired_increase=factor, preserve_alpha=preserve_alpha))


def _check_enhance(options: Options, settings: Settings) -> None:
    draw_seed(options)


def _produce_enhance(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import resizing

    image = resizing.enhance(inputs["image"].open(), seed=options["seed"], preserve_alpha=options["preserve_alpha"])
    return Output(image, {"seed": options["seed"]})


def _check_expand(options: Options, settings: Settings) -> None:
    moderate_prompt(options)
    draw_seed(options)


def _layout(options: Mapping[str, Any], size: tuple[int, int]) -> Any:
    from mock_server.resizing import expand_layout

    return expand_layout(
        size,
        aspect_ratio=options.get("aspect_ratio"),
        canvas_size=options["canvas_size"],
        original_image_size=options.get("original_image_size"),
        original_image_location=options.get("original_image_location"),
    )


def _check_expand_geometry(options: Mapping[str, Any], inputs: Inputs) -> None:
    _layout(options, inputs["image"].size)


def _produce_expand(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import resizing

    image = inputs["image"].open()
    prompt = options.get("prompt") or ""
    layout = _layout(options, image.size)
    result = resizing.expand(
        image,
        layout,
        prompt=prompt,
        negative_prompt=options.get("negative_prompt"),
        seed=options["seed"],
        preserve_alpha=options["preserve_alpha"],
    )
    return Output(result, {"seed": options["seed"], "prompt": prompt})


# --- masks --------------------------------------------------------------------------------------


def _produce_erase(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits

    image = edits.erase(
        inputs["image"].open(),
        inputs["mask"].open(),
        mask_type=options["mask_type"],
        preserve_alpha=options["preserve_alpha"],
    )
    return Output(image)


def _check_gen_fill(options: Options, settings: Settings) -> None:
    moderate_prompt(options)
    draw_seed(options)


def _produce_gen_fill(options: Mapping[str, Any], inputs: Inputs) -> Output:
    from mock_server import edits, imaging

    prompt = options["prompt"]
    image = edits.gen_fill(
        inputs["image"].open(),
        inputs["mask"].open(),
        prompt=prompt,
        negative_prompt=options.get("negative_prompt"),
        seed=options["seed"],
        preserve_alpha=options["preserve_alpha"],
    )
    refined = imaging.refine_prompt(prompt, "base") if options["refine_prompt"] else prompt
    return Output(image, {"seed": options["seed"], "refined_prompt": refined})


# --- the entries --------------------------------------------------------------------------------

EDIT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        name="erase_foreground",
        path=f"{EDIT_PREFIX}erase_foreground",
        summary="Erase the foreground and fill it from the background",
        check=_no_check,
        produce=_produce_erase_foreground,
    ),
    Operation(
        name="blur_background",
        path=f"{EDIT_PREFIX}blur_background",
        summary="Blur the background",
        check=_no_check,
        produce=_produce_blur_background,
        example={"image": EXAMPLE_IMAGE, "scale": 3},
    ),
    Operation(
        name="crop_foreground",
        path=f"{EDIT_PREFIX}crop_foreground",
        summary="Remove the background and crop to the foreground",
        check=_no_check,
        produce=_produce_crop_foreground,
        example={"image": EXAMPLE_IMAGE, "padding": 4},
        check_inputs=_check_crop_size,
    ),
    Operation(
        name="increase_resolution",
        path=f"{EDIT_PREFIX}increase_resolution",
        summary="Increase the resolution",
        check=_no_check,
        produce=_produce_increase_resolution,
        example={"image": EXAMPLE_IMAGE, "desired_increase": 2},
        check_inputs=_check_upscale,
    ),
    Operation(
        name="enhance",
        path=f"{EDIT_PREFIX}enhance",
        summary="Enhance: regenerate sharper at twice the resolution (async only)",
        check=_check_enhance,
        produce=_produce_enhance,
        example={"image": EXAMPLE_IMAGE, "seed": 7},
        sync_allowed=False,
    ),
    Operation(
        name="expand",
        path=f"{EDIT_PREFIX}expand",
        summary="Expand the canvas",
        check=_check_expand,
        produce=_produce_expand,
        example={"image": EXAMPLE_IMAGE, "aspect_ratio": "16:9", "prompt": "a quiet street", "seed": 3},
        constrained_fields=("aspect_ratio", "canvas_size", "original_image_size", "original_image_location"),
        check_inputs=_check_expand_geometry,
    ),
    Operation(
        name="erase",
        path=f"{EDIT_PREFIX}erase",
        summary="Erase the masked region",
        check=_no_check,
        produce=_produce_erase,
        example={"image": EXAMPLE_IMAGE, "mask": EXAMPLE_IMAGE},
        image_fields=("image", "mask"),
        check_inputs=_check_mask,
    ),
    Operation(
        name="gen_fill",
        path=f"{EDIT_PREFIX}gen_fill",
        summary="Generate content in the masked region",
        check=_check_gen_fill,
        produce=_produce_gen_fill,
        example={"image": EXAMPLE_IMAGE, "mask": EXAMPLE_IMAGE, "prompt": "a red vase"},
        image_fields=("image", "mask"),
        check_inputs=_check_mask,
    ),
)
