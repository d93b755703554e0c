"""The public imaging façade: remove_background, replace_background, refine_prompt."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from mock_server.imaging import TARGET_PIXELS, one_megapixel_size, refine_prompt, remove_background, replace_background

SIZE = (240, 180)
BOX = (60, 40, 180, 150)
COLOUR_PAIRS = [
    ((235, 235, 230), (30, 30, 35)),  # dark subject on a light background
    ((25, 25, 30), (230, 225, 220)),  # light subject on a dark background
    ((200, 210, 220), (180, 40, 30)),
    ((40, 140, 60), (200, 60, 180)),
    ((110, 110, 110), (180, 180, 180)),
]


def make_subject(background: tuple[int, int, int], subject: tuple[int, int, int]) -> Image.Image:
    """An ellipse of ``subject`` colour at ``BOX`` on a plain ``background``, with +-8 of uniform noise."""
    image = Image.new("RGB", SIZE, background)
    ImageDraw.Draw(image).ellipse(BOX, fill=subject)
    grain = Image.frombytes("L", SIZE, random.Random(7).randbytes(SIZE[0] * SIZE[1])).point(lambda v: v * 17 // 256)
    return Image.merge("RGB", [ImageChops.add(band, grain, 1, -8) for band in image.split()])


def subject_mask(size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] = BOX) -> Image.Image:
    """The ellipse's mask, 0/255."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def reopen(image: Image.Image, fmt: str, **options: Any) -> Image.Image:
    """Encode ``image`` in ``fmt`` and decode it again, loaded, as the server hands images over."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def decode(data: bytes) -> Image.Image:
    """Decode result bytes, checking they are a PNG."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """One multi-band pixel."""
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def iou(alpha: Image.Image, mask: Image.Image) -> float:
    """Intersection over union of ``alpha`` thresholded at 128 and a 0/255 mask."""
    binary = alpha.point(lambda value: 255 if value >= 128 else 0)
    return ImageChops.multiply(binary, mask).histogram()[255] / ImageChops.lighter(binary, mask).histogram()[255]


def replace(image: Image.Image, **overrides: Any) -> bytes:
    """Call replace_background with defaults that keep tests small and fast (original size, a text prompt)."""
    arguments: dict[str, Any] = {
        "prompt": "in a parking lot",
        "ref_images": [],
        "mode": "base",
        "seed": 1,
        "original_quality": True,
        "force_background_detection": False,
        "negative_prompt": None,
        "enhance_ref_images": False,
    }
    arguments.update(overrides)
    return replace_background(image, **arguments)


def with_alpha(image: Image.Image, alpha: Image.Image) -> Image.Image:
    """A copy of ``image`` with ``alpha`` as its alpha channel."""
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


# remove_background


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(("background", "subject"), COLOUR_PAIRS)
def test_remove_background_recovers_the_subject(
    fmt: str, background: tuple[int, int, int], subject: tuple[int, int, int]
) -> None:
    result = decode(remove_background(reopen(make_subject(background, subject), fmt)))
    assert result.mode == "RGBA"
    assert result.size == SIZE
    assert iou(result.getchannel("A"), subject_mask()) >= 0.9


def test_remove_background_edges_are_soft() -> None:
    alpha = decode(remove_background(reopen(make_subject(*COLOUR_PAIRS[2]), "JPEG"))).getchannel("A")
    mask = subject_mask()
    edge = ImageChops.subtract(mask.filter(ImageFilter.MaxFilter(5)), mask.filter(ImageFilter.MinFilter(5)))
    histogram = alpha.histogram(mask=edge)
    assert sum(histogram[1:255]) > 0.3 * sum(histogram)
    assert alpha.getpixel((120, 95)) == 255
    assert alpha.getpixel((5, 5)) == 0


def test_remove_background_keeps_the_input_colours() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[3]), "PNG")
    result = decode(remove_background(image))
    assert result.convert("RGB").tobytes() == image.tobytes()


def test_remove_background_is_deterministic_and_leaves_the_input_alone() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG")
    before = (image.mode, image.size, image.tobytes(), dict(image.info))
    first = remove_background(image)
    assert remove_background(image) == first
    assert (image.mode, image.size, image.tobytes(), dict(image.info)) == before


def test_remove_background_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    image = reopen(make_subject(*COLOUR_PAIRS[2]), "JPEG", exif=exif.tobytes())
    result = decode(remove_background(image))
    assert result.size == (SIZE[1], SIZE[0])
    assert iou(result.getchannel("A"), subject_mask().transpose(Image.Transpose.ROTATE_270)) >= 0.9
    assert "exif" not in result.info


def test_preserve_alpha_has_no_effect_without_alpha() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[1]), "JPEG")
    assert remove_background(image, preserve_alpha=True) == remove_background(image, preserve_alpha=False)


def test_preserve_alpha_keeps_partial_transparency_inside_the_subject() -> None:
    alpha = Image.new("L", SIZE, 255)
    alpha.paste(128, (100, 70, 140, 120))  # a half-transparent patch inside the subject
    image = reopen(with_alpha(make_subject(*COLOUR_PAIRS[2]), alpha), "PNG")
    kept = decode(remove_background(image, preserve_alpha=True)).getchannel("A")
    opaque = decode(remove_background(image, preserve_alpha=False)).getchannel("A")
    assert kept.crop((102, 72, 138, 118)).getextrema() == (128, 128)
    assert opaque.crop((102, 72, 138, 118)).getextrema() == (255, 255)
    for alpha_out in (kept, opaque):
        assert alpha_out.getpixel((5, 5)) == 0
        assert alpha_out.getpixel((80, 95)) == 255


def test_cut_out_input_keeps_its_own_alpha_or_turns_it_opaque() -> None:
    alpha = subject_mask().filter(ImageFilter.GaussianBlur(2))
    image = reopen(with_alpha(make_subject(*COLOUR_PAIRS[2]), alpha), "PNG")
    kept = decode(remove_background(image, preserve_alpha=True)).getchannel("A")
    opaque = decode(remove_background(image, preserve_alpha=False)).getchannel("A")
    assert kept.tobytes() == alpha.tobytes()
    assert opaque.tobytes() == alpha.point(lambda value: 255 if value else 0).tobytes()


def test_cmyk_jpeg_colours_come_out_right() -> None:
    colour = (30, 120, 200)
    image = reopen(make_subject((235, 235, 230), colour).convert("CMYK"), "JPEG", quality=95)
    assert image.mode == "CMYK"
    red, green, blue, alpha = pixel(decode(remove_background(image)), (120, 95))
    assert alpha == 255
    assert all(abs(got - want) <= 12 for got, want in zip((red, green, blue), colour, strict=True))


def make_mode(mode: str) -> Image.Image:
    """A light disc on a dark background in ``mode``; palette images get a transparent background."""
    grey = Image.new("L", SIZE, 40)
    ImageDraw.Draw(grey).ellipse(BOX, fill=220)
    if mode == "P":
        image = grey.convert("P")
        image.info["transparency"] = 40
        return reopen(image, "PNG")
    if mode == "I;16":
        return reopen(grey.convert("I").point(lambda value: value * 257).convert("I;16"), "PNG")
    if mode == "LA":
        return reopen(with_alpha(grey, Image.new("L", SIZE, 255)).convert("LA"), "PNG")
    return grey.convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "I;16", "RGBX", "YCbCr", "HSV", "LAB"])
def test_remove_background_accepts_any_mode(mode: str) -> None:
    image = make_mode(mode)
    assert image.mode == mode
    result = decode(remove_background(image))
    assert result.size == SIZE
    assert iou(result.getchannel("A"), subject_mask()) >= 0.9
    red, _, _, _ = pixel(result, (120, 95))
    assert red >= 200  # 16-bit values are scaled down, not clipped to white


# replace_background


@pytest.mark.parametrize("size", [(240, 180), (4000, 3000), (1000, 1000), (3000, 200), (50, 90)])
def test_replace_background_scales_to_one_megapixel(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (10, 20, 30))
    result = decode(replace(image, prompt="#FFFFFF", original_quality=False))
    width, height = result.size
    assert result.mode == "RGB"
    assert abs(width * height - TARGET_PIXELS) <= 0.01 * TARGET_PIXELS
    assert abs(width / height - size[0] / size[1]) <= (width / height) * (1 / width + 1 / height)


@given(st.integers(1, 8000), st.integers(1, 8000))
def test_one_megapixel_size_is_within_rounding(width: int, height: int) -> None:
    scale = math.sqrt(TARGET_PIXELS / (width * height))
    new_width, new_height = one_megapixel_size((width, height))
    assert abs(new_width - width * scale) <= 0.5 or new_width == 1
    assert abs(new_height - height * scale) <= 0.5 or new_height == 1
    if min(new_width, new_height) >= 100:
        assert abs(new_width * new_height - TARGET_PIXELS) <= 0.01 * TARGET_PIXELS


def test_original_quality_keeps_the_oriented_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG", exif=exif.tobytes())
    assert decode(replace(image, original_quality=True)).size == (SIZE[1], SIZE[0])


@pytest.mark.parametrize(("prompt", "colour"), [("#FF5733", (255, 87, 51)), ("a wall in #0f0 please", (0, 255, 0))])
def test_hex_prompt_fills_the_background_exactly(prompt: str, colour: tuple[int, int, int]) -> None:
    result = decode(replace(reopen(make_subject(*COLOUR_PAIRS[2]), "JPEG"), prompt=prompt))
    outside = ImageChops.invert(subject_mask().filter(ImageFilter.MaxFilter(9)))
    assert Image.new("RGB", SIZE, colour).histogram(mask=outside) == result.histogram(mask=outside)
    assert abs(pixel(result, (120, 95))[0] - 180) <= 12  # the subject is still there


def test_hex_background_shows_exactly_where_the_input_alpha_is_zero() -> None:
    alpha = subject_mask().filter(ImageFilter.GaussianBlur(3))
    image = with_alpha(make_subject(*COLOUR_PAIRS[2]), alpha)
    result = decode(replace(image, prompt="#123456"))
    clear = alpha.point(lambda value: 255 if value == 0 else 0)
    assert result.histogram(mask=clear) == Image.new("RGB", SIZE, (18, 52, 86)).histogram(mask=clear)
    solid = alpha.point(lambda value: 255 if value == 255 else 0)
    assert result.histogram(mask=solid) == image.convert("RGB").histogram(mask=solid)


def test_force_background_detection_ignores_the_input_alpha() -> None:
    # An alpha that keeps everything but one corner pixel: it says (5, 5) is foreground.
    alpha = Image.new("L", SIZE, 255)
    alpha.putpixel((SIZE[0] - 1, SIZE[1] - 1), 0)
    image = with_alpha(make_subject(*COLOUR_PAIRS[2]), alpha)
    trusted = decode(replace(image, prompt="#00FF00"))
    forced = decode(replace(image, prompt="#00FF00", force_background_detection=True))
    assert pixel(trusted, (5, 5)) != (0, 255, 0)
    assert pixel(forced, (5, 5)) == (0, 255, 0)
    assert pixel(forced, (120, 95)) == pixel(trusted, (120, 95))


def background_difference(first: bytes, second: bytes) -> float:
    """Mean absolute difference of two results over the region well outside the subject."""
    outside = ImageChops.invert(subject_mask().filter(ImageFilter.MaxFilter(9)))
    difference = ImageChops.difference(decode(first), decode(second))
    return sum(ImageStat.Stat(difference, outside).mean) / 3


def test_text_backgrounds_are_deterministic_and_follow_prompt_seed_and_mode() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG")
    reference = replace(image)
    assert replace(image) == reference
    assert background_difference(reference, replace(image, prompt="on a sunny beach at sunset")) > 30
    assert replace(image, seed=2) != reference
    assert background_difference(reference, replace(image, mode="high_control")) > 5
    assert background_difference(reference, replace(image, mode="fast")) > 5


def test_negative_prompt_counts_except_in_fast_mode() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG")
    assert replace(image, negative_prompt="cars") != replace(image)
    assert replace(image, mode="fast", negative_prompt="cars") == replace(image, mode="fast")


def test_reference_images_drive_the_background() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG")
    red = Image.new("RGB", (300, 200), (255, 0, 0))
    blue = reopen(Image.new("RGB", (90, 120), (0, 0, 255)), "PNG")
    only_red = decode(replace(image, prompt=None, ref_images=[red]))
    both = decode(replace(image, prompt=None, ref_images=[red, blue]))
    assert pixel(only_red, (5, 5)) == (255, 0, 0)
    red_part, green_part, blue_part = pixel(both, (5, 5))
    assert 120 <= red_part <= 135 and green_part == 0 and 120 <= blue_part <= 135


def test_transparent_reference_is_flattened_on_white() -> None:
    clear = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    result = decode(replace(reopen(make_subject(*COLOUR_PAIRS[1]), "JPEG"), prompt=None, ref_images=[clear]))
    assert pixel(result, (5, 5)) == (255, 255, 255)


def test_enhance_ref_images_changes_a_dull_reference() -> None:
    image = reopen(make_subject(*COLOUR_PAIRS[0]), "JPEG")
    dull = Image.linear_gradient("L").point(lambda value: 100 + value // 5).convert("RGB")
    plain = replace(image, prompt=None, ref_images=[dull])
    assert replace(image, prompt=None, ref_images=[dull], enhance_ref_images=True) != plain
    assert replace(image, prompt=None, ref_images=[dull], enhance_ref_images=False) == plain


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        replace(make_subject(*COLOUR_PAIRS[0]), mode="turbo")


# refine_prompt


def test_refine_prompt_extends_the_prompt_per_mode() -> None:
    refined = {mode: refine_prompt("  a car   in a parking lot. ", mode) for mode in ("base", "high_control", "fast")}
    assert all(text.startswith("a car in a parking lot, ") for text in refined.values())
    assert len(set(refined.values())) == 3
    assert refine_prompt("a car in a parking lot", "base") == refined["base"]


def test_refine_prompt_keeps_a_hex_colour() -> None:
    assert refine_prompt("#FF5733", "high_control").startswith("#FF5733, ")


def test_refine_prompt_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        refine_prompt("a beach", "turbo")


def test_an_opaque_alpha_channel_counts_as_no_alpha_so_the_new_background_shows() -> None:
    opaque_rgba = Image.new("RGBA", (200, 150), (200, 225, 245, 255))
    ImageDraw.Draw(opaque_rgba).ellipse((60, 40, 140, 110), fill=(230, 120, 30, 255))

    result = Image.open(
        io.BytesIO(
            replace_background(
                opaque_rgba,
                prompt="#00FF00",
                ref_images=[],
                mode="base",
                seed=1,
                original_quality=True,
                force_background_detection=False,
                negative_prompt=None,
                enhance_ref_images=True,
            )
        )
    )

    assert result.getpixel((2, 2)) == (0, 255, 0)
