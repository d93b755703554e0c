"""Filling pixels the fake must invent: from the surroundings, and seeded textures.

Deviation from the real service: nothing here is a generative model. A hole is filled by
push-pull (each pixel takes the mean colour of the nearest known pixels, smoothly), and
"generated" content is a seeded, smooth colour field: deterministic for the same inputs.
"""

from __future__ import annotations

import hashlib
import random

from PIL import Image, ImageChops

_ALPHA_MODES = {"RGB": "RGBA", "L": "LA"}
_TEXTURE_CELLS = 6
_ANY_LUT = [0] + [255] * 255
_HALF_LUT = [0] * 128 + [255] * 128


def seeded_rng(*parts: object) -> random.Random:
    """A random generator seeded from ``parts`` (strings, numbers, tuples of them): same parts, same draws."""
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


def fill_from_surroundings(image: Image.Image, hole: Image.Image) -> Image.Image:
    """``image`` (mode ``RGB`` or ``L``) with the pixels where ``hole`` is 128 or more filled from the rest.

    Push-pull: the known pixels are averaged down a pyramid of halvings (a cell with any known
    pixel counts as known), then each level's unknown pixels take the coarser level's colour
    scaled back up. Known pixels come out unchanged. With no known pixel at all, mid-grey.
    """
    known = ImageChops.invert(hole.point(_HALF_LUT))
    if not known.getbbox():
        return Image.new(image.mode, image.size, 128 if image.mode == "L" else (128, 128, 128))
    level = image.convert(_ALPHA_MODES[image.mode])
    level.putalpha(known)
    levels = [level]
    while max(level.size) > 1:
        half = (max(1, (level.width + 1) // 2), max(1, (level.height + 1) // 2))
        level = level.resize(half, Image.Resampling.BOX)  # (Pillow averages premultiplied by alpha)
        level.putalpha(level.getchannel("A").point(_ANY_LUT))
        levels.append(level)
    fill = levels[-1].convert(image.mode)
    for finer in reversed(levels[:-1]):
        fill = Image.composite(
            finer.convert(image.mode), fill.resize(finer.size, Image.Resampling.BILINEAR), finer.getchannel("A")
        )
    return fill


def seeded_texture(
    size: tuple[int, int], rng: random.Random, base: tuple[int, int, int], spread: int = 60
) -> Image.Image:
    """A smooth RGB colour field of ``size`` around ``base``: a few random cells scaled up bicubically."""
    cells = Image.new("RGB", (_TEXTURE_CELLS, _TEXTURE_CELLS))
    cells.putdata(
        [
            tuple(max(0, min(255, channel + rng.randint(-spread, spread))) for channel in base)
            for _ in range(_TEXTURE_CELLS * _TEXTURE_CELLS)
        ]
    )
    return cells.resize(size, Image.Resampling.BICUBIC)


def mean_colour(image: Image.Image, mask: Image.Image | None = None) -> tuple[int, int, int]:
    """The mean RGB colour of ``image`` under ``mask`` (all of it when None or empty)."""
    if mask is not None and not mask.getbbox():
        mask = None
    small = image.convert("RGB")
    if mask is None:
        red, green, blue = small.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
        return red, green, blue
    layer = small.convert("RGBA")
    layer.putalpha(mask)
    red, green, blue, _ = layer.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
    return red, green, blue
