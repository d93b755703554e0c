"""Result images that change the canvas: increase_resolution, enhance and expand, and their geometry rules.

The geometry is computed from sizes alone (``*_size`` and ``expand_layout``), so that the
operations' checks answer 400 before a job is accepted; the image functions then follow it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from PIL import Image, ImageFilter

from mock_server.errors import BadRequest
from mock_server.fills import fill_from_surroundings, mean_colour, seeded_rng, seeded_texture
from mock_server.imaging import normalise, png_bytes

MAX_UPSCALED_PIXELS = 8192 * 8192
"""increase_resolution: the largest result, in pixels ("up to a total area of 8192x8192")."""
MAX_ENHANCED_PIXELS = 10_000_000
"""enhance: the result doubles each side, up to 10 megapixels."""
MAX_CANVAS_PIXELS = 5000 * 5000
"""expand: the largest canvas, in pixels."""
ASPECT_RATIOS = {"1:1": 1.0, "2:3": 2 / 3, "3:2": 3 / 2, "3:4": 3 / 4, "4:3": 4 / 3, "4:5": 4 / 5, "5:4": 5 / 4}
ASPECT_RATIOS |= {"9:16": 9 / 16, "16:9": 16 / 9}
_GENERATED_SHARE = 0.3  # how much of expand's new area is the seeded texture (the rest: the extended edges)
_OPAQUE_LUT = [0] + [255] * 255


def upscaled_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """increase_resolution's result size: exactly ``factor`` times each side; 400 past ``MAX_UPSCALED_PIXELS``."""
    width, height = size[0] * factor, size[1] * factor
    if width * height > MAX_UPSCALED_PIXELS:
        raise BadRequest(
            f"desired_increase: {size[0]}x{size[1]} times {factor} is {width}x{height}, "
            f"over the limit of 8192x8192 pixels in area"
        )
    return width, height


def enhanced_size(size: tuple[int, int]) -> tuple[int, int]:
    """enhance's result size: twice each side, scaled down to ``MAX_ENHANCED_PIXELS`` keeping the aspect ratio."""
    width, height = 2 * size[0], 2 * size[1]
    if width * height <= MAX_ENHANCED_PIXELS:
        return width, height
    scale = math.sqrt(MAX_ENHANCED_PIXELS / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def increase_resolution(image: Image.Image, *, desired_increase: int, preserve_alpha: bool) -> bytes:
    """The image scaled by exactly ``desired_increase`` (Lanczos), nothing added."""
    rgb, alpha = normalise(image)
    size = upscaled_size(rgb.size, desired_increase)
    return _with_alpha(rgb.resize(size, Image.Resampling.LANCZOS), alpha, preserve_alpha, size)


def enhance(image: Image.Image, *, seed: int, preserve_alpha: bool) -> bytes:
    """Twice the size (at most 10 MP) and sharpened; the seed picks the sharpening's strength (its "detail").

    (Sharpening, not added grain: noise would make the PNG several times slower to encode.)
    """
    rgb, alpha = normalise(image)
    size = enhanced_size(rgb.size)
    rng = seeded_rng("enhance", seed)
    # Sharpened before the upscale: a quarter of the pixels to filter, much the same look.
    sharpen = ImageFilter.UnsharpMask(radius=1, percent=100 + rng.randrange(60), threshold=rng.randrange(3))
    return _with_alpha(rgb.filter(sharpen).resize(size, Image.Resampling.BICUBIC), alpha, preserve_alpha, size)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where expand puts the input: the canvas size, the input's size on it and its top-left corner."""

    canvas: tuple[int, int]
    size: tuple[int, int]
    location: tuple[int, int]


def expand_layout(
    image: tuple[int, int],
    *,
    aspect_ratio: str | float | None,
    canvas_size: Sequence[int],
    original_image_size: Sequence[int] | None,
    original_image_location: Sequence[int] | None,
) -> Layout:
    """The canvas of an expand request, or 400 naming the field.

    With ``aspect_ratio`` the input keeps its size, centred on the smallest canvas of that ratio
    that holds it (the input scaled down when that canvas would pass 5000x5000 in area);
    otherwise the input is scaled to ``original_image_size`` and placed at ``original_image_location``.
    """
    if aspect_ratio is not None:
        return _layout_for_ratio(image, _ratio(aspect_ratio))
    if original_image_size is None or original_image_location is None:
        missing = "original_image_size" if original_image_size is None else "original_image_location"
        raise BadRequest(f"{missing}: required with the other when aspect_ratio is not given")
    width, height = canvas_size
    if width * height > MAX_CANVAS_PIXELS:
        raise BadRequest(f"canvas_size: {width}x{height} is over the limit of 5000x5000 pixels in area")
    return Layout(
        (width, height),
        (original_image_size[0], original_image_size[1]),
        (original_image_location[0], original_image_location[1]),
    )


def _ratio(aspect_ratio: str | float) -> float:
    if isinstance(aspect_ratio, str):
        if aspect_ratio not in ASPECT_RATIOS:
            raise BadRequest(f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)} or a number from 0.5 to 3.0")
        return ASPECT_RATIOS[aspect_ratio]
    if not 0.5 <= aspect_ratio <= 3.0:
        raise BadRequest(f"aspect_ratio: {aspect_ratio} is not between 0.5 and 3.0")
    return float(aspect_ratio)


def _layout_for_ratio(image: tuple[int, int], ratio: float) -> Layout:
    width, height = image
    if width / height < ratio:
        canvas = (max(width, round(height * ratio)), height)
    else:
        canvas = (width, max(height, round(width / ratio)))
    scale = min(1.0, math.sqrt(MAX_CANVAS_PIXELS / (canvas[0] * canvas[1])))
    if scale < 1.0:
        canvas = (math.floor(canvas[0] * scale), math.floor(canvas[1] * scale))
        width, height = min(canvas[0], round(width * scale)), min(canvas[1], round(height * scale))
    location = ((canvas[0] - width) // 2, (canvas[1] - height) // 2)
    return Layout(canvas, (width, height), location)


def expand(
    image: Image.Image, layout: Layout, *, prompt: str, negative_prompt: str | None, seed: int, preserve_alpha: bool
) -> bytes:
    """The input placed unchanged (when not rescaled) at the layout's location; the rest of the canvas filled.

    The new area extends the input's edges (push-pull) mixed with a seeded colour field from the
    prompt, negative prompt and seed. With ``preserve_alpha``, new pixels take the alpha of the
    nearest input pixels.
    """
    rgb, alpha = normalise(image)
    if rgb.size != layout.size:
        rgb = rgb.resize(layout.size, Image.Resampling.BICUBIC)
        alpha = alpha.resize(layout.size, Image.Resampling.BICUBIC) if alpha is not None else None
    placed = Image.new("RGB", layout.canvas)
    placed.paste(rgb, layout.location)
    known = Image.new("L", layout.canvas, 0)
    known.paste(255, (*layout.location, layout.location[0] + rgb.width, layout.location[1] + rgb.height))
    hole = known.point(lambda value: 255 - value)
    rng = seeded_rng("expand", prompt, negative_prompt, seed)
    texture = seeded_texture(layout.canvas, rng, mean_colour(rgb), spread=50)
    generated = Image.blend(fill_from_surroundings(placed, hole), texture, _GENERATED_SHARE)
    canvas = Image.composite(placed, generated, known)
    if alpha is not None and preserve_alpha:
        placed_alpha = Image.new("L", layout.canvas, 0)
        placed_alpha.paste(alpha, layout.location)
        canvas.putalpha(Image.composite(placed_alpha, fill_from_surroundings(placed_alpha, hole), known))
    return png_bytes(canvas)


def _with_alpha(rgb: Image.Image, alpha: Image.Image | None, preserve_alpha: bool, size: tuple[int, int]) -> bytes:
    if alpha is not None and preserve_alpha:
        rgb.putalpha(alpha.resize(size, Image.Resampling.BICUBIC))
    return png_bytes(rgb)
