"""The one test-image factory: what it draws, in which formats and modes, and who uses it."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from PIL import Image

from mock_server import samples
from mock_server.contract_tests.strategies import input_images
from mock_server.image_factory import (
    BACKGROUND_COLOUR,
    BROKEN,
    SUBJECT_COLOUR,
    TestImage,
    make_image,
)


def decoded(made: TestImage) -> Image.Image:
    return Image.open(io.BytesIO(made.data))


def grey_level(colour: tuple[int, int, int]) -> int:
    """The 8-bit grey Pillow makes of a colour."""
    level = Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))
    assert isinstance(level, int)
    return level


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("JPEG", "RGB"), ("JPEG", "CMYK"), ("JPEG", "L"), ("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "P"), ("PNG", "I;16"),
     ("WEBP", "RGBA"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "CMYK")],
)  # fmt: skip
def test_the_image_factory_makes_what_it_says(fmt: str, mode: str) -> None:
    made = make_image(fmt, mode, (40, 30), soft_edges=True)

    image = decoded(made)
    assert (image.format, image.mode, image.size) == (fmt, mode, (40, 30))
    assert made.data_url.startswith(f"data:image/{fmt.lower()};base64,")


def test_the_image_factory_refuses_impossible_combinations() -> None:
    with pytest.raises(ValueError, match="JPEG cannot store mode RGBA"):
        make_image("JPEG", "RGBA")


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_a_16_bit_image_keeps_its_subject_across_the_16_bit_range(fmt: str) -> None:
    image = decoded(make_image(fmt, "I;16", (40, 30)))

    # The subject is darker than the background: the two greys, each scaled from 8 to 16 bits.
    assert image.getextrema() == (grey_level(SUBJECT_COLOUR) * 257, grey_level(BACKGROUND_COLOUR) * 257)


@pytest.mark.parametrize(("soft_edges", "partial"), [(False, False), (True, True), (3, True)])
def test_soft_edges_give_a_partially_transparent_rim(soft_edges: bool | float, partial: bool) -> None:
    alpha = decoded(make_image("PNG", "RGBA", (60, 40), soft_edges=soft_edges)).getchannel("A")

    levels = alpha.histogram()
    assert levels[0] > 0 and levels[255] > 0  # transparent background, opaque subject
    assert (sum(levels[1:255]) > 0) is partial


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_images_do_not_decode(kind: str) -> None:
    made = make_image("JPEG", "RGB", (32, 32), broken=kind)

    with pytest.raises((OSError, Image.DecompressionBombError, SyntaxError)):
        decoded(made).load()


def test_an_unknown_breakage_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="truncated, wrong_magic"):
        make_image(broken="sideways")


def test_the_samples_are_drawn_by_the_factory() -> None:
    assert samples.sample("subject.jpg") == make_image("JPEG", "RGB", samples.SIZE).data
    assert samples.sample("cmyk.jpg") == make_image("JPEG", "CMYK", samples.SIZE).data


@settings(max_examples=5, deadline=None)
@given(image=input_images())
def test_the_contract_suite_draws_with_the_factory(image: TestImage) -> None:
    assert decoded(image).size == image.size
    assert isinstance(image, TestImage)
