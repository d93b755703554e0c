"""Masks: the geometry rules a mask must meet (400 naming the field) and its binary form.

A mask marks with white (255) the pixels an operation may change; black (0) pixels are kept.
JPEG masks carry compression noise and brushes leave soft rims, so the fake thresholds the
mask's grey level at 128 instead of refusing any value between 0 and 255 (docs/emulation.md).
"""

from __future__ import annotations

from PIL import Image

from mock_server.errors import BadRequest

ASPECT_TOLERANCE = 0.01
"""Relative difference of width/height ratios still counted as "the same aspect ratio" (rounding)."""

_BINARY_LUT = [0] * 128 + [255] * 128


def check_same_aspect_ratio(mask: tuple[int, int], image: tuple[int, int], field: str = "mask") -> None:
    """400 naming ``field`` unless the mask has the image's aspect ratio (within ``ASPECT_TOLERANCE``)."""
    mask_ratio, image_ratio = mask[0] / mask[1], image[0] / image[1]
    if abs(mask_ratio - image_ratio) > ASPECT_TOLERANCE * image_ratio:
        raise BadRequest(
            f"{field}: must have the same aspect ratio as the image ({mask[0]}x{mask[1]} against {image[0]}x{image[1]})"
        )


def check_same_size(mask: tuple[int, int], image: tuple[int, int], field: str = "mask") -> None:
    """400 naming ``field`` unless the mask is exactly the image's size."""
    if mask != image:
        raise BadRequest(
            f"{field}: must be the same size as the image ({mask[0]}x{mask[1]} against {image[0]}x{image[1]})"
        )


def binary_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The mask as mode ``L``, scaled to ``size``, every pixel 0 or 255 (grey level thresholded at 128)."""
    grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return grey.point(_BINARY_LUT)
