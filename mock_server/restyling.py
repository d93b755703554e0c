"""Result images of the instruction and style edits (restyle, relight, ..., the FIBO edit) and their
structured instructions.

Deviation from the real service: no model reads the instruction. Every parameter of the request
and the seed are hashed into a colour grade of the whole image and a translucent seeded shape,
so that the result is the input's size, visibly changed, and changes whenever any parameter or
the seed does; the same request and seed give the same bytes. A mask limits the change to its
white pixels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw

from mock_server.fills import seeded_rng
from mock_server.imaging import normalise, png_bytes
from mock_server.masks import binary_mask

_GRADE_RANGE = (0.7, 1.3)  # per-channel gain: wide enough that every grade is plainly visible
_OFFSET_RANGE = (-40, 40)
_MIN_GRADE_DISTANCE = 0.25  # the three gains together differ from 1 by at least this much
_SHAPE_OPACITY = 140
_IP_NAMES = ("mickey mouse", "pikachu", "spider-man", "spiderman", "batman", "hello kitty", "darth vader")


def seeded_edit(
    image: Image.Image, operation: str, parameters: Mapping[str, Any], seed: int, mask: Image.Image | None = None
) -> bytes:
    """The image, same size, graded and marked as ``operation``, its ``parameters`` and ``seed`` decide.

    ``parameters`` are the request's own fields (any JSON values); their every value is part of
    the hash. With ``mask``, pixels where it is black come out unchanged.
    """
    rgb, alpha = normalise(image)
    rng = seeded_rng(operation, _canonical(parameters), seed)
    edited = _mark(_grade(rgb, rng), rng)
    if mask is not None:
        edited = Image.composite(edited, rgb, binary_mask(mask, rgb.size))
    if alpha is not None:
        edited.putalpha(alpha)
    return png_bytes(edited)


def structured_instruction(
    operation: str, parameters: Mapping[str, Any], seed: int, image: tuple[int, int], colour: tuple[int, int, int]
) -> str:
    """A deterministic structured instruction (a JSON object as a string) for an edit request."""
    description = {
        "edit": operation,
        "instruction": _instruction_text(operation, parameters),
        "parameters": {key: value for key, value in sorted(parameters.items()) if key != "instruction"},
        "source_image": {"width": image[0], "height": image[1], "mean_color": "#{:02x}{:02x}{:02x}".format(*colour)},
        "seed": seed,
    }
    return json.dumps(description, sort_keys=True)


def ip_warning(text: str | None) -> str | None:
    """The warning an ``ip_signal`` request gets when its instruction names protected characters, else None."""
    found = [name for name in _IP_NAMES if text and name in text.lower()]
    if not found:
        return None
    return f"The instruction may refer to intellectual property: {', '.join(found)}"


def _canonical(parameters: Mapping[str, Any]) -> str:
    return json.dumps(parameters, sort_keys=True, default=str)


def _instruction_text(operation: str, parameters: Mapping[str, Any]) -> str:
    if "instruction" in parameters:
        return str(parameters["instruction"])
    described = ", ".join(f"{key} {value}" for key, value in sorted(parameters.items()))
    return f"{operation.replace('_', ' ')}: {described}" if described else operation.replace("_", " ")


def _grade(rgb: Image.Image, rng: Any) -> Image.Image:
    """A per-channel gain and offset, drawn until it differs plainly from doing nothing."""
    while True:
        gains = [rng.uniform(*_GRADE_RANGE) for _ in range(3)]
        if sum(abs(gain - 1) for gain in gains) >= _MIN_GRADE_DISTANCE:
            break
    offsets = [rng.randint(*_OFFSET_RANGE) for _ in range(3)]
    bands = [
        band.point([max(0, min(255, round(value * gain + offset))) for value in range(256)])
        for band, gain, offset in zip(rgb.split(), gains, offsets, strict=True)
    ]
    return Image.merge("RGB", bands)


def _mark(rgb: Image.Image, rng: Any) -> Image.Image:
    """A translucent seeded ellipse (the "object" the edit adds or changes)."""
    width, height = rgb.size
    left, top = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
    box = (left * width, top * height, (left + rng.uniform(0.2, 0.4)) * width, (top + rng.uniform(0.2, 0.4)) * height)
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    shape = Image.new("L", rgb.size, 0)
    ImageDraw.Draw(shape).ellipse(box, fill=_SHAPE_OPACITY)
    return Image.composite(Image.new("RGB", rgb.size, colour), rgb, shape)
