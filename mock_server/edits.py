"""Result images of the edits around the subject and masks: erase, fill, blur, crop.

Every function takes decoded images and the request's parameters and returns PNG bytes; the
same arguments give the same bytes. The subject is the fake's matte
(:func:`mock_server.matting.subject_matte`); pixels an operation keeps come out unchanged.
With ``preserve_alpha`` and an input that has transparency, the input's alpha is kept.

Deviation from the real service: erased and generated regions are filled by
:mod:`mock_server.fills` (push-pull from the surroundings, seeded colour fields), not a model.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter

from mock_server.backgrounds import find_hex_colour
from mock_server.fills import fill_from_surroundings, mean_colour, seeded_rng, seeded_texture
from mock_server.imaging import normalise, png_bytes
from mock_server.masks import binary_mask
from mock_server.matting import colour_matte, subject_matte

BLUR_PER_SCALE = 0.005
"""Background blur radius per step of ``scale``, as a share of the image's short side (at least 1 px)."""
_GENERATED_SHARE = 0.6  # how much of gen_fill's masked region is the seeded texture (the rest: surroundings)
_SUBJECT_LUT = [0] * 128 + [255] * 128
_ANY_LUT = [0] + [255] * 255
_RIM_MARGIN = 5  # (a 5x5 maximum: two pixels past the matte's last non-zero pixel)


def erase_foreground(image: Image.Image, *, preserve_alpha: bool) -> bytes:
    """The subject gone: its pixels (soft edge included) filled from the surrounding background."""
    rgb, alpha = normalise(image)
    matte = subject_matte(rgb, alpha)
    # The hole reaches past the soft edge, so that the fill comes from background, not the subject's rim.
    hole = matte.point(_ANY_LUT).filter(ImageFilter.MaxFilter(_RIM_MARGIN))
    filled = fill_from_surroundings(rgb, hole)
    return _with_alpha(Image.composite(filled, rgb, matte), alpha, preserve_alpha)


def blur_background(image: Image.Image, *, scale: int, preserve_alpha: bool) -> bytes:
    """The background blurred with a radius growing with ``scale`` (1-5); the subject's pixels unchanged."""
    rgb, alpha = normalise(image)
    matte = subject_matte(rgb, alpha)
    radius = scale * max(1.0, BLUR_PER_SCALE * min(rgb.size))
    blurred = rgb.filter(ImageFilter.GaussianBlur(radius))
    return _with_alpha(Image.composite(rgb, blurred, matte), alpha, preserve_alpha)


def crop_foreground(
    image: Image.Image, *, padding: int, force_background_detection: bool, preserve_alpha: bool
) -> bytes:
    """RGBA: the background removed, cropped to the subject's bounding box plus ``padding`` on every side.

    The matte is the input's own alpha when it has one, unless ``force_background_detection``.
    Padding past the image's edges is transparent. With no subject found, the whole image.
    """
    rgb, alpha = normalise(image)
    if alpha is not None and not force_background_detection:
        matte = alpha
    else:
        matte = colour_matte(rgb)
        if alpha is not None and preserve_alpha:
            matte = ImageChops.darker(matte, alpha)
    box = matte.point(_SUBJECT_LUT).getbbox() or (0, 0, rgb.width, rgb.height)
    rgb.putalpha(matte)
    left, top, right, bottom = box
    return png_bytes(rgb.crop((left - padding, top - padding, right + padding, bottom + padding)))


def erase(image: Image.Image, mask: Image.Image, *, mask_type: str, preserve_alpha: bool) -> bytes:
    """The masked pixels filled from the unmasked surroundings; every other pixel unchanged.

    ``mask_type`` (manual or automatic) does not change the result.
    """
    rgb, alpha = normalise(image)
    hole = binary_mask(mask, rgb.size)
    return _with_alpha(Image.composite(fill_from_surroundings(rgb, hole), rgb, hole), alpha, preserve_alpha)


def gen_fill(
    image: Image.Image,
    mask: Image.Image,
    *,
    prompt: str,
    negative_prompt: str | None,
    seed: int,
    preserve_alpha: bool,
) -> bytes:
    """The masked pixels replaced by content from the prompt and seed; every other pixel unchanged.

    The new content is a seeded colour field around the prompt's colour (a hex colour in the
    prompt, else one drawn from the prompt, negative prompt and seed), blended with the
    surroundings so that it sits in the picture.
    """
    rgb, alpha = normalise(image)
    hole = binary_mask(mask, rgb.size)
    rng = seeded_rng("gen_fill", prompt, negative_prompt, seed)
    base = find_hex_colour(prompt) or (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    texture = seeded_texture(rgb.size, rng, base, spread=40)
    surroundings = fill_from_surroundings(rgb, hole)
    content = Image.blend(surroundings, texture, _GENERATED_SHARE)
    return _with_alpha(Image.composite(content, rgb, hole), alpha, preserve_alpha)


def image_colour(image: Image.Image) -> tuple[int, int, int]:
    """The image's mean colour (for the structured instructions that describe it)."""
    rgb, _ = normalise(image)
    return mean_colour(rgb.reduce(max(1, min(rgb.size) // 64)))


def _with_alpha(rgb: Image.Image, alpha: Image.Image | None, preserve_alpha: bool) -> bytes:
    """PNG of ``rgb``, carrying the input's alpha when it had one and ``preserve_alpha`` asks to keep it."""
    if alpha is not None and preserve_alpha:
        rgb.putalpha(alpha)
    return png_bytes(rgb)
