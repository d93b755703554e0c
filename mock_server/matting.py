"""A cheap, deterministic soft alpha matte: the fake's stand-in for a segmentation model.

The background is assumed to be roughly one colour. Its colour is the median of the
image's border pixels; each pixel's distance from it goes through a soft ramp whose
start adapts to the border's own noise, then a blur-and-rethreshold pass removes
specks and pinholes. Only background-coloured pixels connected to the image border
count as background: a region of background colour enclosed by the subject (a white
label on a bottle before a light backdrop) stays in the subject, as a segmentation
model would keep it. A final small blur feathers the edge. All of it runs on an
image of at most ``WORKING_SIDE`` pixels a side (the connectivity on a coarser grid,
at most ``CONNECTIVITY_SIDE``) and is scaled back bilinearly, so the cost is bounded
whatever the input size.

Deviation from the real service (RMBG 2.0): this is colour keying, not a model. A
busy or multi-coloured background, a subject the colour of its background, or a
subject covering most of the border is separated poorly.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageChops, ImageFilter, ImageStat

WORKING_SIDE = 1024
"""Longest side, in pixels, at which the matte is computed."""
CONNECTIVITY_SIDE = 128
"""Longest side of the grid on which background connected to the border is found."""

_RAMP_WIDTH = 40
_MIN_START, _MAX_START = 16, 96
_CLEAN_RADIUS_PX = 1.5
_FEATHER_RADIUS_PX = 1.0
_MOSTLY_TRANSPARENT = 0.5


def colour_matte(rgb: Image.Image, *, sample_mask: Image.Image | None = None) -> Image.Image:
    """Return a soft matte (mode ``L``, the size of ``rgb``): 255 on the subject, 0 on the background.

    ``sample_mask`` (mode ``L``, same size) restricts which border pixels count as
    background samples; pixels where it is 0 are ignored. With no usable sample
    every pixel is subject.
    """
    work = _working_copy(rgb)
    ring = _border_ring(work.size)
    if sample_mask is not None:
        ring = ImageChops.darker(ring, _fit(sample_mask, work.size))
    if not ring.getbbox():
        return Image.new("L", rgb.size, 255)
    distance = _distance(work, _median_colour(work, ring))
    start = _ramp_start(distance.histogram(mask=ring))
    matte = _clean(distance.point(_ramp_lut(start, start + _RAMP_WIDTH)))
    return _fit(_feather(_keep_enclosed(matte)), rgb.size)


def subject_matte(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Return the matte for an image that may carry its own alpha channel.

    Fully transparent input pixels are always background. When at least half the
    border is fully transparent (a cut-out), every other pixel is subject; otherwise
    the colour matte is computed with the background sampled from the border pixels
    that are not fully transparent.
    """
    if alpha is None:
        return colour_matte(rgb)
    visible = alpha.point(_visible_lut())
    if _transparent_share(visible) >= _MOSTLY_TRANSPARENT:
        return visible
    return ImageChops.darker(colour_matte(rgb, sample_mask=visible), visible)


def _working_copy(image: Image.Image) -> Image.Image:
    """Shrink ``image`` so its longest side is at most ``WORKING_SIDE`` (box filter: cheap, anti-aliased)."""
    scale = WORKING_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)


def _fit(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale a mask to ``size``; bilinear so that upscaled edges stay soft."""
    if mask.size == size:
        return mask
    return mask.resize(size, Image.Resampling.BILINEAR)


def _border_ring(size: tuple[int, int]) -> Image.Image:
    """Return a mask of the image's outer ring, about 2% of the short side thick (at least 1 px)."""
    width, height = size
    thickness = max(1, min(size) // 50)
    ring = Image.new("L", size, 255)
    if width > 2 * thickness and height > 2 * thickness:
        ring.paste(0, (thickness, thickness, width - thickness, height - thickness))
    return ring


def _median_colour(image: Image.Image, mask: Image.Image) -> tuple[int, int, int]:
    """Per-channel median of the pixels under ``mask``: robust to a subject that touches the border."""
    red, green, blue = ImageStat.Stat(image, mask).median[:3]
    return int(red), int(green), int(blue)


def _distance(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Chebyshev colour distance of every pixel from ``colour`` (mode ``L``)."""
    difference = ImageChops.difference(image, Image.new("RGB", image.size, colour))
    red, green, blue = difference.split()
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _ramp_start(border_histogram: list[int]) -> int:
    """Distance below which a pixel is surely background: above the border's typical noise.

    Uses the 75th percentile of the border distances, so a subject covering up to a
    quarter of the border does not raise it.
    """
    target = 0.75 * sum(border_histogram)
    running = 0
    for value, count in enumerate(border_histogram):
        running += count
        if running >= target:
            return min(_MAX_START, max(_MIN_START, 2 * value + 8))
    return _MAX_START


@functools.cache
def _ramp_lut(start: int, end: int) -> tuple[int, ...]:
    """Look-up table: 0 up to ``start``, 255 from ``end``, a smoothstep in between (built once per ramp)."""
    lut = []
    for value in range(256):
        t = min(1.0, max(0.0, (value - start) / (end - start)))
        lut.append(round(255 * t * t * (3 - 2 * t)))
    return tuple(lut)


def _clean(matte: Image.Image) -> Image.Image:
    """Blur and re-threshold: a cheap soft opening/closing that drops specks and fills pinholes.

    The threshold sits above the middle, which pulls the edge about a pixel inwards:
    the feather then spreads over subject pixels rather than a halo of background.
    """
    blurred = matte.filter(ImageFilter.GaussianBlur(_CLEAN_RADIUS_PX))
    return blurred.point(_ramp_lut(128, 255))


def _keep_enclosed(matte: Image.Image) -> Image.Image:
    """Raise to opaque every background-like pixel that is not connected to the image border.

    Connectivity is found on a coarse grid; the reached region grows by one grid cell before
    it is scaled back, so that it covers the subject's soft edge band (kept as it is) but
    never an enclosed region (whose pixels become 255).
    """
    scale = min(1.0, CONNECTIVITY_SIDE / max(matte.size))
    grid = (max(1, round(matte.width * scale)), max(1, round(matte.height * scale)))
    passable = matte.resize(grid, Image.Resampling.BOX).point(_BACKGROUND_LIKE_LUT)
    reached = _reach_from_border(passable).filter(ImageFilter.MaxFilter(3))
    return ImageChops.lighter(matte, ImageChops.invert(_fit(reached, matte.size)))


_BACKGROUND_LIKE_LUT = [255] * 128 + [0] * 128  # a matte value under the middle is background-like
_REACH_CHECK_EVERY = 16


def _reach_from_border(passable: Image.Image) -> Image.Image:
    """The passable pixels (255) 4-connected to the image border, as 255 (a geodesic reconstruction).

    Each step spreads the reached region by one pixel up, down, left and right, inside the
    passable pixels, until a check finds it unchanged. (``ImageChops.offset`` wraps around:
    that only joins border pixels to border pixels, which are all seeds already.)
    """
    frame = Image.new("L", passable.size, 255)
    if passable.width > 2 and passable.height > 2:
        frame.paste(0, (1, 1, passable.width - 1, passable.height - 1))
    reached = ImageChops.darker(frame, passable)
    for step in range(1, 4 * sum(passable.size) + 1):
        spread = reached
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            spread = ImageChops.lighter(spread, ImageChops.offset(reached, dx, dy))
        spread = ImageChops.darker(spread, passable)
        if step % _REACH_CHECK_EVERY == 0 and not ImageChops.difference(spread, reached).getbbox():
            return spread
        reached = spread
    return reached


def _feather(matte: Image.Image) -> Image.Image:
    """Soften the edge so that boundary pixels are partially transparent."""
    return matte.filter(ImageFilter.GaussianBlur(_FEATHER_RADIUS_PX))


def _visible_lut() -> list[int]:
    """Look-up table mapping alpha 0 to 0 and any other alpha to 255."""
    return [0] + [255] * 255


def _transparent_share(visible: Image.Image) -> float:
    """Fraction of the border ring that is fully transparent in a 0/255 visibility mask."""
    histogram = visible.histogram(mask=_border_ring(visible.size))
    total = sum(histogram)
    return histogram[0] / total if total else 0.0
