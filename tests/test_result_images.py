"""Result images through the HTTP API: seeds replay, hex colours are exact, mattes are usable masks."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image, ImageChops, ImageDraw

from mock_server.fixtures.plugin import BriaMock

RMBG = "/v2/image/edit/remove_background"
REPLACE = "/v2/image/edit/replace_background"


def result_bytes(api: httpx.Client, path: str, payload: dict[str, object]) -> tuple[dict[str, object], bytes]:
    body = api.post(path, json={**payload, "sync": True}).json()
    return body["result"], api.get(body["result"]["image_url"]).content


def test_without_a_seed_the_returned_seed_replays_the_same_image(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {"image": bria_inprocess.url("/samples/subject.jpg"), "prompt": "a quiet forest at dawn", "mode": "base"}
    first, first_png = result_bytes(api, REPLACE, payload)

    replay, replay_png = result_bytes(api, REPLACE, {**payload, "seed": first["seed"]})

    assert replay["seed"] == first["seed"]
    assert replay_png == first_png


def test_a_different_seed_gives_a_different_image(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {"image": bria_inprocess.url("/samples/subject.jpg"), "prompt": "a quiet forest at dawn"}

    assert (
        result_bytes(api, REPLACE, {**payload, "seed": 1})[1] != result_bytes(api, REPLACE, {**payload, "seed": 2})[1]
    )


def test_refined_prompt_is_the_prompt_itself_when_refine_prompt_is_false(
    api: httpx.Client, bria_inprocess: BriaMock
) -> None:
    payload = {"image": bria_inprocess.url("/samples/subject.jpg"), "prompt": "on a beach", "refine_prompt": False}

    assert result_bytes(api, REPLACE, payload)[0]["refined_prompt"] == "on a beach"


def test_a_hex_colour_prompt_gives_exactly_that_background(api: httpx.Client, bria_inprocess: BriaMock) -> None:
    payload = {"image": bria_inprocess.url("/samples/subject.jpg"), "prompt": "studio backdrop #FF5733"}
    image = Image.open(io.BytesIO(result_bytes(api, REPLACE, payload)[1]))

    assert image.getpixel((0, 0)) == image.getpixel((image.width - 1, image.height - 1)) == (255, 87, 51)


def test_thresholding_the_cutout_alpha_recovers_the_subject(api: httpx.Client) -> None:
    source = Image.new("RGB", (400, 300), (240, 240, 240))
    ImageDraw.Draw(source).rectangle((120, 80, 280, 220), fill=(20, 60, 160))
    truth = Image.new("1", source.size, 0)
    ImageDraw.Draw(truth).rectangle((120, 80, 280, 220), fill=1)
    out = io.BytesIO()
    source.save(out, "PNG")

    _, png = result_bytes(api, RMBG, {"image": base64.b64encode(out.getvalue()).decode()})
    mask = Image.open(io.BytesIO(png)).getchannel("A").point(lambda a: 255 if a >= 128 else 0).convert("1")

    intersection = ImageChops.logical_and(mask, truth).histogram()[-1]
    union = ImageChops.logical_or(mask, truth).histogram()[-1]
    assert intersection / union >= 0.9
