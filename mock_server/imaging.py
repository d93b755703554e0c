"""The fake's result images: background removal and replacement, as PNG bytes.

This is the façade the operations call. Every input is first brought to a common
form: EXIF orientation applied (as a service honouring the camera's orientation
would), any Pillow mode converted to RGB plus an optional alpha channel. The matte
comes from :mod:`mock_server.matting`, new backgrounds from :mod:`mock_server.backgrounds`.

Output is deterministic: the same arguments give byte-identical PNGs. PNGs are
written at zlib level ``PNG_COMPRESS_LEVEL`` (1, not Pillow's 6): files are somewhat
larger, but encoding, the dominant cost, is several times faster. No EXIF, ICC
profile or other metadata is copied to the output.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageChops, ImageOps

from mock_server.backgrounds import MODES, find_hex_colour, make_background
from mock_server.matting import colour_matte, subject_matte

PNG_COMPRESS_LEVEL = 1
TARGET_PIXELS = 1024 * 1024
"""What "1 megapixel" means for replace_background: 1,048,576 pixels, a 1024 x 1024 area."""

_ORIENTATION = 0x0112  # the EXIF tag
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_DEEP_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")
_REFINEMENTS = {
    "base": "clean high quality background, soft natural lighting, realistic",
    "high_control": "detailed scene with coherent layout and perspective, realistic lighting, sharp fine details",
    "fast": "simple clean background, balanced lighting",
}
_SOLID_REFINEMENT = "seamless solid color backdrop, even studio lighting"


def remove_background(image: Image.Image, *, preserve_alpha: bool = True) -> bytes:
    """PNG bytes: RGBA, exactly the (EXIF-oriented) input's width and height.

    The colour channels are the input's own; the alpha is the soft matte of
    :func:`mock_server.matting.subject_matte`. For an input with an alpha channel,
    ``preserve_alpha`` keeps its partial transparency (output alpha is the lower of
    matte and input alpha); when false the matte alone decides, so the subject is
    fully opaque. Without an input alpha channel ``preserve_alpha`` has no effect.
    """
    rgb, alpha = normalise(image)
    matte = subject_matte(rgb, alpha)
    if alpha is not None and preserve_alpha:
        matte = ImageChops.darker(matte, alpha)
    rgb.putalpha(matte)
    return png_bytes(rgb)


def replace_background(
    image: Image.Image,
    *,
    prompt: str | None,
    ref_images: Sequence[Image.Image],
    mode: str,
    seed: int,
    original_quality: bool,
    force_background_detection: bool,
    negative_prompt: str | None,
    enhance_ref_images: bool,
    full_size: tuple[int, int] | None = None,
) -> bytes:
    """PNG bytes (RGB): foreground composited over a generated background.

    The output is scaled to about ``TARGET_PIXELS`` (small images are upscaled)
    unless ``original_quality``, which keeps the oriented input's size. ``full_size`` is the
    input's declared size (before orientation) when ``image`` was decoded at reduced size: the
    output's size is reckoned from it, so a reduced decode gives the same size. The matte is
    the input's own alpha when it has one, unless ``force_background_detection``
    asks for a colour matte that ignores it. See :func:`mock_server.backgrounds.make_background`
    for how the prompt, reference images, mode, seed and negative prompt shape the background.
    """
    rgb, alpha = normalise(image)
    size = rgb.size if original_quality else one_megapixel_size(_oriented(full_size, image) or rgb.size)
    background = make_background(
        size,
        prompt=prompt,
        ref_images=[flatten(ref) for ref in ref_images],
        mode=mode,
        seed=seed,
        negative_prompt=negative_prompt,
        enhance_ref_images=enhance_ref_images,
    )
    rgb, alpha = _resize(rgb, alpha, size)
    matte = alpha if alpha is not None and not force_background_detection else colour_matte(rgb)
    return png_bytes(Image.composite(rgb, background, matte))


def refine_prompt(prompt: str, mode: str) -> str:
    """Deterministic 'refined' version of the prompt: the prompt, tidied, plus mode-dependent refinement words.

    A prompt holding a hex colour keeps it and gets solid-backdrop words instead.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    core = " ".join(prompt.split()).rstrip(" .,;")
    suffix = _SOLID_REFINEMENT if find_hex_colour(core) else _REFINEMENTS[mode]
    return f"{core}, {suffix}" if core else suffix


def normalise(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Return new RGB and alpha (``None`` when the input has no transparency) images, EXIF orientation applied.

    An alpha channel that is opaque everywhere counts as none: PNGs are often saved as RGBA
    without any transparency, and using such an alpha as the matte would hide the new background.
    """
    oriented = _oriented_image(image)
    if oriented.mode == "La":
        oriented = oriented.convert("LA")
    elif oriented.mode in _DEEP_MODES:
        oriented = _to_8_bit(oriented)
    if not oriented.has_transparency_data:
        return oriented.convert("RGB"), None
    rgba = oriented.convert("RGBA")
    alpha = rgba.getchannel("A")
    return rgba.convert("RGB"), (None if alpha.getextrema()[0] == 255 else alpha)


def flatten(image: Image.Image) -> Image.Image:
    """Return ``image`` normalised to RGB, any transparency composited over white."""
    rgb, alpha = normalise(image)
    if alpha is None:
        return rgb
    return Image.composite(rgb, Image.new("RGB", rgb.size, (255, 255, 255)), alpha)


def one_megapixel_size(size: tuple[int, int]) -> tuple[int, int]:
    """Scale ``size`` by ``sqrt(TARGET_PIXELS / area)``, each side rounded (and at least 1).

    Each side is within half a pixel of the exact scaled side, so the aspect ratio is
    kept within rounding; the area is within 1% of the target while the short side
    comes out at 100 pixels or more (aspect ratios up to about 100:1).
    """
    scale = math.sqrt(TARGET_PIXELS / (size[0] * size[1]))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _oriented_image(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says; itself when it needs no turning (Pillow's
    ``exif_transpose`` copies it then: at 64 MP that copy is 256 MB, and ``convert`` copies anyway)."""
    if image.getexif().get(_ORIENTATION, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def cover_size(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The smallest scaling of ``size`` (never above it) whose sides both cover ``target``."""
    scale = min(1.0, max(target[0] / size[0], target[1] / size[1]))
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


def _oriented(size: tuple[int, int] | None, image: Image.Image) -> tuple[int, int] | None:
    """``size`` as the image's EXIF orientation turns it (orientations 5 to 8 swap the sides)."""
    if size is None:
        return None
    return (size[1], size[0]) if image.getexif().get(_ORIENTATION, 1) in _SWAPPING_ORIENTATIONS else size


def _to_8_bit(image: Image.Image) -> Image.Image:
    """Bring 16-bit and 32-bit greyscale to mode ``L``, scaling values above 255 down (plain conversion clips)."""
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    high = image.getextrema()[1]
    if isinstance(high, int | float) and high > 255:
        image = image.point(lambda value: value / 257)
    return image.convert("L")


def _resize(
    rgb: Image.Image, alpha: Image.Image | None, size: tuple[int, int]
) -> tuple[Image.Image, Image.Image | None]:
    """Resize colour and alpha together, so that transparent pixels' colours do not bleed into the edges."""
    if rgb.size == size:
        return rgb, alpha
    if alpha is None:
        return rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0), None
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    rgba = rgba.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return rgba.convert("RGB"), rgba.getchannel("A")


def png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG, with no metadata, at the module's compression level."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
