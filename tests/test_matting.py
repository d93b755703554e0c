"""The colour-keyed soft matte."""

from __future__ import annotations

import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from mock_server.matting import colour_matte, subject_matte

SIZE = (200, 150)
BOX = (50, 30, 150, 120)


def make_scene(background: tuple[int, int, int], subject: tuple[int, int, int], *, noise: int = 8) -> Image.Image:
    """An ellipse of ``subject`` colour at ``BOX`` on a plain ``background``, plus uniform noise of +-``noise``."""
    image = Image.new("RGB", SIZE, background)
    ImageDraw.Draw(image).ellipse(BOX, fill=subject)
    grain = Image.frombytes("L", SIZE, random.Random(1).randbytes(SIZE[0] * SIZE[1]))
    grain = grain.point(lambda value: value * (2 * noise + 1) // 256)
    bands = [ImageChops.add(band, grain, 1, -noise) for band in image.split()]
    return Image.merge("RGB", bands)


def truth() -> Image.Image:
    """The subject's mask, 0/255."""
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).ellipse(BOX, fill=255)
    return mask


def iou(matte: Image.Image, mask: Image.Image) -> float:
    """Intersection over union of ``matte`` thresholded at 128 and a 0/255 mask."""
    binary = matte.point(lambda value: 255 if value >= 128 else 0)
    inter = ImageChops.multiply(binary, mask).histogram()[255]
    union = ImageChops.lighter(binary, mask).histogram()[255]
    return inter / union


def share(matte: Image.Image, region: Image.Image, values: range) -> float:
    """Fraction of the pixels under ``region`` whose matte value is in ``values``."""
    histogram = matte.histogram(mask=region)
    return sum(histogram[value] for value in values) / sum(histogram)


def test_matte_separates_subject_from_plain_background() -> None:
    matte = colour_matte(make_scene((200, 210, 220), (180, 40, 30)))
    assert matte.mode == "L"
    assert matte.size == SIZE
    assert iou(matte, truth()) >= 0.95


def test_matte_is_opaque_inside_transparent_outside_soft_only_at_the_edge() -> None:
    matte = colour_matte(make_scene((235, 235, 230), (30, 30, 35)))
    inside = truth().filter(ImageFilter.MinFilter(11))
    outside = ImageChops.invert(truth().filter(ImageFilter.MaxFilter(9)))
    assert share(matte, inside, range(255, 256)) == 1.0
    assert share(matte, outside, range(0, 1)) == 1.0
    edge = ImageChops.subtract(truth().filter(ImageFilter.MaxFilter(5)), truth().filter(ImageFilter.MinFilter(5)))
    assert share(matte, edge, range(1, 255)) > 0.3


def test_noisy_background_stays_transparent() -> None:
    matte = colour_matte(make_scene((120, 160, 120), (240, 240, 60), noise=30))
    outside = ImageChops.invert(truth().filter(ImageFilter.MaxFilter(9)))
    assert share(matte, outside, range(0, 1)) > 0.99
    assert iou(matte, truth()) >= 0.9


def test_subject_touching_the_border_does_not_become_the_background() -> None:
    image = make_scene((230, 230, 230), (40, 60, 160))
    ImageDraw.Draw(image).rectangle((60, 100, 140, SIZE[1]), fill=(40, 60, 160))
    mask = truth()
    ImageDraw.Draw(mask).rectangle((60, 100, 140, SIZE[1]), fill=255)
    assert iou(colour_matte(image), mask) >= 0.9


def test_large_image_matte_is_computed_small_and_scaled_back() -> None:
    image = make_scene((20, 20, 20), (250, 250, 250)).resize((2400, 1800), Image.Resampling.NEAREST)
    mask = truth().resize((2400, 1800), Image.Resampling.NEAREST)
    matte = colour_matte(image)
    assert matte.size == (2400, 1800)
    assert iou(matte, mask) >= 0.95


def test_sample_mask_restricts_the_background_samples() -> None:
    image = make_scene((230, 230, 230), (30, 30, 30), noise=0)
    image.paste((30, 30, 30), (0, 0, SIZE[0], 20))  # a dark band along the top, outside the sample mask
    samples = Image.new("L", SIZE, 255)
    samples.paste(0, (0, 0, SIZE[0], 20))
    matte = colour_matte(image, sample_mask=samples)
    assert matte.getpixel((100, 10)) == 255
    assert matte.getpixel((100, 140)) == 0


def test_no_background_sample_means_all_subject() -> None:
    matte = colour_matte(make_scene((230, 230, 230), (30, 30, 30)), sample_mask=Image.new("L", SIZE, 0))
    assert matte.getextrema() == (255, 255)


def test_subject_matte_of_a_cut_out_is_its_visible_area() -> None:
    alpha = truth().filter(ImageFilter.GaussianBlur(2))
    matte = subject_matte(make_scene((0, 0, 0), (180, 40, 30)), alpha)
    expected = alpha.point(lambda value: 255 if value else 0)
    assert ImageChops.difference(matte, expected).getbbox() is None


def test_subject_matte_never_keeps_fully_transparent_pixels() -> None:
    image = make_scene((200, 210, 220), (180, 40, 30))
    alpha = Image.new("L", SIZE, 255)
    alpha.paste(0, (90, 60, 110, 80))  # a transparent hole inside the subject
    matte = subject_matte(image, alpha)
    assert matte.getpixel((100, 70)) == 0
    assert matte.getpixel((70, 75)) == 255
    assert matte.getpixel((5, 5)) == 0


def test_subject_matte_without_alpha_is_the_colour_matte() -> None:
    image = make_scene((200, 210, 220), (180, 40, 30))
    assert subject_matte(image, None).tobytes() == colour_matte(image).tobytes()


def make_bottle() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A dark bottle with a white label, in front of a light backdrop of almost the label's colour."""
    image = make_scene((236, 236, 232), (40, 70, 50))
    label = (70, 55, 130, 95)
    ImageDraw.Draw(image).rectangle(label, fill=(240, 240, 238))
    return image, label


def test_a_region_of_background_colour_enclosed_by_the_subject_stays_in_the_subject() -> None:
    image, (left, top, right, bottom) = make_bottle()

    matte = colour_matte(image)

    label_inside = Image.new("L", SIZE, 0)
    ImageDraw.Draw(label_inside).rectangle((left + 4, top + 4, right - 4, bottom - 4), fill=255)
    assert share(matte, label_inside, range(255, 256)) == 1.0
    assert iou(matte, truth()) >= 0.95
    outside = ImageChops.invert(truth().filter(ImageFilter.MaxFilter(9)))
    assert share(matte, outside, range(0, 1)) == 1.0


def test_the_enclosed_region_keeps_the_soft_outer_edge() -> None:
    image, _ = make_bottle()

    matte = colour_matte(image)

    edge = ImageChops.subtract(truth().filter(ImageFilter.MaxFilter(5)), truth().filter(ImageFilter.MinFilter(5)))
    assert share(matte, edge, range(1, 255)) > 0.3


def test_background_reaching_in_from_the_border_stays_background() -> None:
    image = make_scene((236, 236, 232), (40, 70, 50), noise=0)
    ImageDraw.Draw(image).rectangle((95, 0, 105, 75), fill=(236, 236, 232))  # a notch open to the top edge

    matte = colour_matte(image)

    assert matte.getpixel((100, 60)) == 0
