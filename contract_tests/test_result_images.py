"""Properties of result images on generated inputs: size, mode, the 1 MP rule, seed determinism."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from mock_server.contract_tests.client import BriaApi
from mock_server.contract_tests.profiles import contract_settings
from mock_server.contract_tests.strategies import input_images
from mock_server.image_factory import TestImage

# "Scaled to 1 megapixel keeping the aspect ratio": 1024 x 1024 pixels, within 1%.
ONE_MEGAPIXEL = 1024 * 1024
AREA_TOLERANCE = 0.01
MODES = st.sampled_from(["base", "high_control", "fast"])
HEX_COLOURS = st.integers(0, 0xFFFFFF).map(lambda value: f"#{value:06X}")


def sync_result(bria_api: BriaApi, operation: str, body: dict[str, object]) -> tuple[str | None, str, tuple[int, int]]:
    response = bria_api.submit(operation, {**body, "sync": True})
    assert response.status_code == 200, response.text
    return bria_api.download(response.json()["result"]["image_url"]).properties


@contract_settings()
@given(image=input_images())
def test_remove_background_gives_an_rgba_png_of_the_input_size(bria_api: BriaApi, image: TestImage) -> None:
    assert sync_result(bria_api, "remove_background", {"image": image.base64}) == ("PNG", "RGBA", image.size)


@contract_settings(cost=4)
@given(image=input_images(), colour=HEX_COLOURS)
def test_replace_background_gives_about_one_megapixel_with_the_input_aspect_ratio(
    bria_api: BriaApi, image: TestImage, colour: str
) -> None:
    fmt, _, (width, height) = sync_result(bria_api, "replace_background", {"image": image.base64, "prompt": colour})

    scale = math.sqrt(ONE_MEGAPIXEL / (image.size[0] * image.size[1]))
    assert fmt == "PNG"
    assert abs(width * height - ONE_MEGAPIXEL) <= ONE_MEGAPIXEL * AREA_TOLERANCE
    # Rounding each side to whole pixels moves it by at most half a pixel.
    assert abs(width - image.size[0] * scale) <= 1 and abs(height - image.size[1] * scale) <= 1


@contract_settings()
@given(image=input_images(), colour=HEX_COLOURS)
def test_replace_background_with_original_quality_keeps_the_input_size(
    bria_api: BriaApi, image: TestImage, colour: str
) -> None:
    body = {"image": image.base64, "prompt": colour, "original_quality": True}

    assert sync_result(bria_api, "replace_background", body)[::2] == ("PNG", image.size)


@contract_settings(cost=2)
@given(
    image=input_images(),
    prompt=st.sampled_from(["a sunny beach", "a red brick wall", "night city lights", "a forest path"]),
    mode=MODES,
    seed=st.integers(0, 2**31 - 1),
)
def test_the_same_seed_gives_a_byte_identical_image(
    bria_api: BriaApi, image: TestImage, prompt: str, mode: str, seed: int
) -> None:
    body = {"image": image.base64, "prompt": prompt, "mode": mode, "seed": seed, "original_quality": True}
    urls = []
    for _ in range(2):
        response = bria_api.submit("replace_background", {**body, "sync": True})
        assert response.status_code == 200, response.text
        assert response.json()["result"]["seed"] == seed
        urls.append(response.json()["result"]["image_url"])

    assert bria_api.download(urls[0]).content == bria_api.download(urls[1]).content
