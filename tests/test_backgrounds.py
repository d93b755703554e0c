"""Generated backgrounds: hex colours, text prompts, reference images."""

from __future__ import annotations

import itertools

import pytest
from PIL import Image, ImageChops, ImageStat

from mock_server.backgrounds import find_hex_colour, make_background, reference_background, text_background

SIZE = (160, 120)


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute per-channel difference of two same-size RGB images."""
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


def mean_colour(image: Image.Image) -> list[float]:
    """The per-channel mean colour."""
    return ImageStat.Stat(image).mean


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """One multi-band pixel."""
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def spread(image: Image.Image) -> int:
    """Range of the first band's values."""
    low, high = image.getchannel(0).getextrema()
    assert isinstance(low, int) and isinstance(high, int)
    return high - low


def text(prompt: str, *, mode: str = "base", seed: int = 1, negative: str | None = None) -> Image.Image:
    """A text background at ``SIZE``."""
    return text_background(SIZE, prompt=prompt, mode=mode, seed=seed, negative_prompt=negative)


@pytest.mark.parametrize(
    ("prompt", "colour"),
    [
        ("#FF5733", (255, 87, 51)),
        ("a wall painted #00ff7f please", (0, 255, 127)),
        ("#f53", (255, 85, 51)),
        ("first #123456 then #abcdef", (18, 52, 86)),
    ],
)
def test_find_hex_colour(prompt: str, colour: tuple[int, int, int]) -> None:
    assert find_hex_colour(prompt) == colour


@pytest.mark.parametrize("prompt", ["a beach", "#12345", "#FF5733AA", "FF5733", "#ggg"])
def test_find_hex_colour_ignores_non_colours(prompt: str) -> None:
    assert find_hex_colour(prompt) is None


def test_hex_prompt_gives_a_solid_background_in_every_mode() -> None:
    for mode in ("base", "high_control", "fast"):
        background = make_background(
            SIZE, prompt="on #0a0B0c", ref_images=[], mode=mode, seed=3, negative_prompt=None, enhance_ref_images=False
        )
        assert background.getextrema() == ((10, 10), (11, 11), (12, 12))


def test_text_background_is_deterministic() -> None:
    assert text("in a parking lot").tobytes() == text("in a parking lot").tobytes()


def test_text_background_depends_on_prompt_seed_and_mode() -> None:
    reference = text("in a parking lot")
    assert mean_difference(reference, text("on a sunny beach")) > 30
    assert mean_difference(reference, text("in a parking lot", seed=2)) > 5
    assert mean_difference(reference, text("in a parking lot", mode="high_control")) > 5
    assert mean_difference(reference, text("in a parking lot", mode="fast")) > 5


def test_colour_words_in_the_prompt_colour_the_background() -> None:
    red, green, blue = mean_colour(text("a red room"))
    assert red > green + 60 and red > blue + 60
    red, green, blue = mean_colour(text("a blue room"))
    assert blue > red + 60 and blue > green + 30


def test_negative_prompt_bans_the_colours_it_names() -> None:
    for seed in range(6):
        red, green, blue = mean_colour(text("a red room", seed=seed, negative="red"))
        assert not (red > green + 60 and red > blue + 60)


def test_negative_prompt_is_ignored_in_fast_mode() -> None:
    assert text("a room", mode="fast", negative="blur").tobytes() == text("a room", mode="fast").tobytes()
    assert text("a room", negative="blur").tobytes() != text("a room").tobytes()


def test_high_control_draws_a_horizon() -> None:
    background = text("a quiet room", mode="high_control")
    top = mean_colour(background.crop((0, 0, SIZE[0], 10)))
    bottom = mean_colour(background.crop((0, SIZE[1] - 10, *SIZE)))
    assert sum(bottom) < sum(top)  # the ground is a darkened palette colour


def test_unknown_mode_and_missing_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        make_background(
            SIZE, prompt="x", ref_images=[], mode="turbo", seed=1, negative_prompt=None, enhance_ref_images=False
        )
    with pytest.raises(ValueError, match="prompt"):
        make_background(
            SIZE, prompt=None, ref_images=[], mode="base", seed=1, negative_prompt=None, enhance_ref_images=False
        )


def test_solid_reference_fills_the_background() -> None:
    background = reference_background(SIZE, [Image.new("RGB", (50, 300), (220, 20, 30))], seed=1, enhance=False)
    assert background.size == SIZE
    assert background.getextrema() == ((220, 220), (20, 20), (30, 30))


def test_every_reference_counts() -> None:
    refs = [Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (300, 90), (0, 0, 255))]
    red, green, blue = mean_colour(reference_background(SIZE, refs, seed=1, enhance=False))
    assert 120 <= red <= 135 and green == 0 and 120 <= blue <= 135


def test_reference_is_cover_cropped_not_stretched() -> None:
    ref = Image.new("RGB", (400, 100), (0, 0, 0))
    for left in range(0, 400, 20):
        ref.paste((255, 255, 255), (left, 0, left + 10, 100))  # stripes 10 px wide
    background = reference_background((100, 100), [ref], seed=4, enhance=False)
    row = [pixel(background, (x, 50))[0] > 127 for x in range(100)]
    changes = sum(first != second for first, second in itertools.pairwise(row))
    assert 8 <= changes <= 10  # squeezing 400 px into 100 would give about 40


def test_enhancement_stretches_a_flat_reference() -> None:
    ref = Image.linear_gradient("L").convert("RGB").point(lambda value: 100 + value // 5)
    plain = reference_background(SIZE, [ref], seed=1, enhance=False)
    enhanced = reference_background(SIZE, [ref], seed=1, enhance=True)
    assert spread(plain) < 60
    assert spread(enhanced) > 200


def test_reference_crop_follows_the_seed() -> None:
    ref = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90).resize((600, 100)).convert("RGB")
    first = reference_background((100, 100), [ref], seed=1, enhance=False)
    second = reference_background((100, 100), [ref], seed=2, enhance=False)
    assert mean_difference(first, second) > 1
    assert reference_background((100, 100), [ref], seed=1, enhance=False).tobytes() == first.tobytes()
