"""Checking input images: what is remembered, and what is left to a worker thread."""

from __future__ import annotations

import base64
import io

import anyio
import pytest
from PIL import Image

from mock_server import Settings
from mock_server.backend import BriaBackend
from mock_server.errors import UnsupportedMediaType
from mock_server.image_factory import make_image
from mock_server.inputs import CACHED_BYTES, TooLargeToDecodeHere, check_image
from mock_server.resolver import INLINE_MAX_PIXELS

FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
BASE_URL = "http://127.0.0.1:1"


def noise_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 64).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_a_small_image_that_passed_is_not_checked_again() -> None:
    data = make_image(format="PNG", size=(40, 30)).data

    first = check_image(data, "image", formats=FORMATS, max_pixels=10_000)

    assert (first.format, first.size) == ("PNG", (40, 30))
    assert check_image(bytes(data), "ref_images[0]", formats=FORMATS, max_pixels=10_000) is first


def test_what_is_remembered_still_depends_on_the_formats_and_the_pixel_limit() -> None:
    data = make_image(format="WEBP", size=(40, 30)).data
    check_image(data, "image", formats=FORMATS, max_pixels=10_000)

    with pytest.raises(UnsupportedMediaType, match="WEBP files are not supported"):
        check_image(data, "image", formats=FORMATS - {"WEBP"}, max_pixels=10_000)
    with pytest.raises(UnsupportedMediaType, match="over the limit of 1000 pixels"):
        check_image(data, "image", formats=FORMATS, max_pixels=1000)


def test_a_large_image_is_checked_every_time() -> None:
    data = noise_png(200, 200)
    assert len(data) > CACHED_BYTES

    first = check_image(data, "image", formats=FORMATS, max_pixels=10**6)

    assert check_image(data, "image", formats=FORMATS, max_pixels=10**6) is not first


def test_a_broken_image_is_refused_every_time() -> None:
    data = make_image(format="PNG", size=(40, 30)).data[:-30]
    for _ in range(2):
        with pytest.raises(UnsupportedMediaType, match="truncated or corrupt"):
            check_image(data, "image", formats=FORMATS, max_pixels=10_000)


def test_the_resolver_reads_small_images_on_the_event_loop_and_leaves_urls_and_large_decodes_to_a_thread() -> None:
    resolver = BriaBackend(Settings()).resolver(BASE_URL)
    small = make_image(format="PNG", size=(64, 64))
    side = int(INLINE_MAX_PIXELS**0.5) + 1
    large = make_image(format="PNG", size=(side, side))
    url = f"{BASE_URL}/samples/subject.jpg"

    assert resolver.read("image", small.base64, FORMATS, inline=True).size == (64, 64)
    for value in (large.base64, url):
        with pytest.raises(TooLargeToDecodeHere):
            resolver.read("image", value, FORMATS, inline=True)
    assert resolver.read("image", large.base64, FORMATS).size == (side, side)
    assert resolver.read("image", url, FORMATS).format == "JPEG"


def test_resolving_keeps_the_fields_in_order_and_reports_the_first_bad_one_first() -> None:
    resolver = BriaBackend(Settings()).resolver(BASE_URL)
    side = int(INLINE_MAX_PIXELS**0.5) + 1
    large = make_image(format="PNG", size=(side, side)).data[:-40]  # broken, and read in a thread
    small = make_image(format="PNG", size=(8, 8)).data[:-30]  # broken, and read on the loop
    values = [("image", base64.b64encode(large).decode()), ("ref_images[0]", base64.b64encode(small).decode())]

    with pytest.raises(UnsupportedMediaType, match=r"^image: "):
        anyio.run(resolver.resolve, values, FORMATS)
    good = make_image(format="PNG", size=(8, 8)).base64
    values = [("image", f"{BASE_URL}/samples/subject.jpg"), ("ref_images[0]", good)]
    resolved = anyio.run(resolver.resolve, values, FORMATS)
    assert list(resolved) == ["image", "ref_images[0]"]
