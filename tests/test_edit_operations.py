"""Every image edit through the in-process API: what each result must show, on images built here,
determinism, the mask and geometry 400s, sync and async."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from mock_server import operations
from mock_server.contract import response_errors

SIZE = (64, 48)
BACKDROP = (232, 232, 226)
SUBJECT = (40, 70, 150)
SUBJECT_BOX = (20, 12, 44, 36)  # the ellipse's bounding box (right and bottom exclusive)
EDIT = "/v2/image/edit/"


def encoded(image: Image.Image, format: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format)
    return base64.b64encode(buffer.getvalue()).decode()


def scene(backdrop: Image.Image | None = None) -> Image.Image:
    """A blue ellipse on a light backdrop (or on ``backdrop``)."""
    image = backdrop.copy() if backdrop is not None else Image.new("RGB", SIZE, BACKDROP)
    ImageDraw.Draw(image).ellipse(
        (SUBJECT_BOX[0], SUBJECT_BOX[1], SUBJECT_BOX[2] - 1, SUBJECT_BOX[3] - 1), fill=SUBJECT
    )
    return image


def striped() -> Image.Image:
    """A light backdrop with dark vertical stripes: blurring it shows."""
    image = Image.new("RGB", SIZE, BACKDROP)
    draw = ImageDraw.Draw(image)
    for x in range(0, SIZE[0], 4):
        draw.line((x, 0, x, SIZE[1]), fill=(150, 150, 140))
    return image


def box_mask(box: tuple[int, int, int, int], size: tuple[int, int] = SIZE, mode: str = "L") -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    return mask.convert(mode)


def region(box: tuple[int, int, int, int], size: tuple[int, int] = SIZE) -> Image.Image:
    return box_mask(box, size)


def inside_subject() -> Image.Image:
    """Pixels well inside the ellipse."""
    return region((26, 18, 38, 30))


def far_background() -> Image.Image:
    """Pixels far from the ellipse."""
    mask = Image.new("L", SIZE, 255)
    mask.paste(0, (SUBJECT_BOX[0] - 6, SUBJECT_BOX[1] - 6, SUBJECT_BOX[2] + 6, SUBJECT_BOX[3] + 6))
    return mask


def run(client: httpx.Client, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], Image.Image]:
    """A sync call: its result fields and its image."""
    op = operations.operation(name)
    answer = client.post(op.path, json={**body, "sync": True})
    assert answer.status_code == 200, answer.text
    assert response_errors(op.result_schema, answer.json()) == []
    result: dict[str, Any] = answer.json()["result"]
    return result, downloaded(client, result["image_url"])


def downloaded(client: httpx.Client, url: str) -> Image.Image:
    image = Image.open(io.BytesIO(client.get(url).content))
    image.load()
    return image


def result_png(client: httpx.Client, name: str, body: dict[str, Any]) -> bytes:
    result, _ = run(client, name, body)
    return client.get(result["image_url"]).content


def mean_difference(first: Image.Image, second: Image.Image, mask: Image.Image | None = None) -> float:
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB"))
    return sum(ImageStat.Stat(difference, mask).mean) / 3


def unchanged(first: Image.Image, second: Image.Image, mask: Image.Image) -> bool:
    """Whether the two images are identical wherever ``mask`` is white."""
    difference = ImageChops.difference(first.convert("RGB"), second.convert("RGB")).convert("L")
    return ImageChops.multiply(difference.point(lambda value: 255 if value else 0), mask).getbbox() is None


def refused(client: httpx.Client, name: str, body: dict[str, Any]) -> str:
    """The details of a 400 answer."""
    answer = client.post(operations.operation(name).path, json=body)
    assert answer.status_code == 400, answer.text
    return str(answer.json()["error"]["details"])


# --- around the subject ---------------------------------------------------------------------------


def test_erase_foreground_fills_the_subject_from_the_background_and_keeps_the_rest(bria_client: httpx.Client) -> None:
    image = scene()

    _, result = run(bria_client, "erase_foreground", {"image": encoded(image)})

    assert result.size == SIZE
    assert mean_difference(result, Image.new("RGB", SIZE, BACKDROP), inside_subject()) < 8
    assert unchanged(result, image, far_background())


def test_blur_background_keeps_the_subject_and_blurs_more_as_the_scale_grows(bria_client: httpx.Client) -> None:
    image = scene(striped())
    results = [run(bria_client, "blur_background", {"image": encoded(image), "scale": scale})[1] for scale in (1, 3, 5)]

    blur = [mean_difference(result, image, far_background()) for result in results]

    assert all(result.size == SIZE for result in results)
    assert all(unchanged(result, image, inside_subject()) for result in results)
    assert 0 < blur[0] < blur[1] < blur[2]


def test_blur_background_scale_is_limited_to_one_to_five(bria_client: httpx.Client) -> None:
    assert refused(bria_client, "blur_background", {"image": encoded(scene()), "scale": 6}).startswith("scale:")


@pytest.mark.parametrize("padding", [0, 5])
def test_crop_foreground_crops_to_the_subject_plus_padding(bria_client: httpx.Client, padding: int) -> None:
    _, result = run(bria_client, "crop_foreground", {"image": encoded(scene()), "padding": padding})

    width, height = SUBJECT_BOX[2] - SUBJECT_BOX[0], SUBJECT_BOX[3] - SUBJECT_BOX[1]
    assert result.mode == "RGBA"
    assert abs(result.width - (width + 2 * padding)) <= 2
    assert abs(result.height - (height + 2 * padding)) <= 2
    assert result.getpixel((result.width // 2, result.height // 2)) == (*SUBJECT, 255)
    assert result.getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_crop_foreground_padding_adds_exactly_twice_the_padding(bria_client: httpx.Client) -> None:
    image = encoded(scene())
    _, tight = run(bria_client, "crop_foreground", {"image": image})
    _, padded = run(bria_client, "crop_foreground", {"image": image, "padding": 7})

    assert padded.size == (tight.width + 14, tight.height + 14)


def test_crop_foreground_refuses_a_padding_that_would_make_a_huge_result(bria_client: httpx.Client) -> None:
    image = encoded(scene())

    assert refused(bria_client, "crop_foreground", {"image": image, "padding": 1001}).startswith("padding:")
    large = encoded(Image.new("RGB", (4000, 4000), (200, 225, 245)))
    assert refused(bria_client, "crop_foreground", {"image": large, "padding": 600}).startswith("padding:")


# --- size and canvas ------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4])
def test_increase_resolution_is_exactly_the_factor_and_adds_nothing(bria_client: httpx.Client, factor: int) -> None:
    image = scene()

    _, result = run(bria_client, "increase_resolution", {"image": encoded(image), "desired_increase": factor})

    assert result.size == (SIZE[0] * factor, SIZE[1] * factor)
    assert mean_difference(result.resize(SIZE, Image.Resampling.BOX), image) < 3


def test_increase_resolution_refuses_other_factors_and_results_over_8192_squared(bria_client: httpx.Client) -> None:
    large = encoded(Image.new("RGB", (2100, 2100), BACKDROP))

    assert refused(bria_client, "increase_resolution", {"image": encoded(scene()), "desired_increase": 3}).startswith(
        "desired_increase:"
    )
    assert "8192" in refused(bria_client, "increase_resolution", {"image": large, "desired_increase": 4})


def poll(client: httpx.Client, request_id: str) -> dict[str, Any]:
    for _ in range(20):
        body: dict[str, Any] = client.get(f"/v2/status/{request_id}").json()
        if body["status"] != "IN_PROGRESS":
            return body
    raise AssertionError(f"job {request_id} still in progress")


def enhanced(client: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    answer = client.post(f"{EDIT}enhance", json=body)
    assert answer.status_code == 202, answer.text
    done = poll(client, answer.json()["request_id"])
    assert done["status"] == "COMPLETED", done
    return done["result"], client.get(done["result"]["image_url"]).content


def test_enhance_is_async_only_doubles_the_size_and_replays_by_seed(bria_client: httpx.Client) -> None:
    image = encoded(scene())

    first, first_png = enhanced(bria_client, {"image": image, "sync": True, "seed": 11})
    again, again_png = enhanced(bria_client, {"image": image, "seed": 11})
    _, other_png = enhanced(bria_client, {"image": image, "seed": 12})

    assert Image.open(io.BytesIO(first_png)).size == (2 * SIZE[0], 2 * SIZE[1])
    assert first["seed"] == again["seed"] == 11
    assert first_png == again_png != other_png


def test_enhance_is_sharper_than_a_plain_resize(bria_client: httpx.Client) -> None:
    image = scene()
    _, png = enhanced(bria_client, {"image": encoded(image), "seed": 1})
    plain = image.resize((2 * SIZE[0], 2 * SIZE[1]), Image.Resampling.BICUBIC)

    edges = [
        ImageStat.Stat(picture.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]
        for picture in (plain, Image.open(io.BytesIO(png)))
    ]

    assert edges[1] > edges[0]


def test_expand_places_the_original_unchanged_at_the_location_on_the_exact_canvas(bria_client: httpx.Client) -> None:
    image = scene()
    body = {
        "image": encoded(image),
        "canvas_size": [100, 80],
        "original_image_size": list(SIZE),
        "original_image_location": [30, 20],
        "prompt": "a meadow",
        "seed": 4,
    }

    result, expanded = run(bria_client, "expand", body)

    assert expanded.size == (100, 80)
    assert expanded.convert("RGB").crop((30, 20, 30 + SIZE[0], 20 + SIZE[1])).tobytes() == image.tobytes()
    assert result["seed"] == 4
    assert result["prompt"] == "a meadow"


def test_expand_location_outside_the_canvas_crops_the_original(bria_client: httpx.Client) -> None:
    image = scene()
    body = {"image": encoded(image), "canvas_size": [50, 40], "original_image_size": list(SIZE)}

    _, expanded = run(bria_client, "expand", {**body, "original_image_location": [-10, -4]})

    assert expanded.size == (50, 40)
    assert expanded.convert("RGB").tobytes() == image.crop((10, 4, 60, 44)).tobytes()


def test_expand_to_an_aspect_ratio_centres_the_original(bria_client: httpx.Client) -> None:
    image = scene()

    _, expanded = run(bria_client, "expand", {"image": encoded(image), "aspect_ratio": "16:9", "seed": 1})

    assert expanded.size == (85, 48)
    assert expanded.convert("RGB").crop((10, 0, 74, 48)).tobytes() == image.tobytes()


def test_expand_fill_depends_on_prompt_and_seed(bria_client: httpx.Client) -> None:
    body = {"image": encoded(scene()), "aspect_ratio": 2.0, "prompt": "a meadow", "seed": 1}

    first = result_png(bria_client, "expand", body)

    assert first == result_png(bria_client, "expand", body)
    assert first != result_png(bria_client, "expand", {**body, "seed": 2})
    assert first != result_png(bria_client, "expand", {**body, "prompt": "a beach"})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"original_image_size": [10, 10]}, "original_image_location"),
        ({"original_image_location": [0, 0]}, "original_image_size"),
        (
            {"canvas_size": [6000, 5000], "original_image_size": [10, 10], "original_image_location": [0, 0]},
            "canvas_size",
        ),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"aspect_ratio": 3.5}, "aspect_ratio"),
        ({"canvas_size": [10]}, "canvas_size"),
    ],
)
def test_expand_geometry_rules_answer_400_naming_the_field(
    bria_client: httpx.Client, changes: dict[str, Any], field: str
) -> None:
    assert refused(bria_client, "expand", {"image": encoded(scene()), **changes}).startswith(f"{field}:")


# --- masks --------------------------------------------------------------------------------------------

MASKED = (8, 8, 30, 24)


def test_erase_changes_only_the_masked_pixels_filling_them_from_the_surroundings(bria_client: httpx.Client) -> None:
    image = scene()
    mask = box_mask(MASKED)

    _, result = run(bria_client, "erase", {"image": encoded(image), "mask": encoded(mask)})

    assert result.size == SIZE
    assert unchanged(result, image, ImageChops.invert(mask))
    assert not unchanged(result, image, mask)


@pytest.mark.parametrize("mode", ["L", "1", "RGB"])
def test_a_mask_may_be_greyscale_bilevel_or_colour_and_smaller_with_the_same_aspect_ratio(
    bria_client: httpx.Client, mode: str
) -> None:
    image = scene()
    half = box_mask((4, 4, 15, 12), (32, 24), mode)

    _, result = run(bria_client, "erase", {"image": encoded(image), "mask": encoded(half)})

    assert unchanged(result, image, ImageChops.invert(box_mask(MASKED)).point(lambda value: value))


@pytest.mark.parametrize("name", ["erase", "gen_fill"])
def test_a_mask_of_another_aspect_ratio_is_a_400_naming_the_mask(bria_client: httpx.Client, name: str) -> None:
    body = {"image": encoded(scene()), "mask": encoded(box_mask((0, 0, 10, 10), (48, 48))), "prompt": "a vase"}

    assert refused(bria_client, name, body).startswith("mask: must have the same aspect ratio")


def test_gen_fill_changes_only_the_masked_pixels_from_prompt_and_seed(bria_client: httpx.Client) -> None:
    image = scene()
    mask = box_mask(MASKED)
    body = {"image": encoded(image), "mask": encoded(mask), "prompt": "a vase #FF0000", "seed": 3}

    result, filled = run(bria_client, "gen_fill", body)
    red = ImageStat.Stat(filled.convert("RGB"), mask).mean

    assert filled.size == SIZE
    assert unchanged(filled, image, ImageChops.invert(mask))
    assert red[0] > red[1] + 40  # the prompt's colour shows
    assert result["seed"] == 3
    png = result_png(bria_client, "gen_fill", body)
    assert png == result_png(bria_client, "gen_fill", body)
    assert png != result_png(bria_client, "gen_fill", {**body, "seed": 4})


def test_gen_fill_returns_the_refined_prompt_or_the_prompt_itself(bria_client: httpx.Client) -> None:
    body = {"image": encoded(scene()), "mask": encoded(box_mask(MASKED)), "prompt": "a vase", "seed": 1}

    refined, _ = run(bria_client, "gen_fill", body)
    plain, _ = run(bria_client, "gen_fill", {**body, "refine_prompt": False})

    assert refined["refined_prompt"].startswith("a vase, ")
    assert plain["refined_prompt"] == "a vase"


# --- every operation: async, and an unsafe prompt -----------------------------------------------------


@pytest.mark.parametrize("op", operations.OPERATIONS, ids=[op.name for op in operations.OPERATIONS])
def test_every_operation_completes_async_with_the_sync_answers_shape(
    bria_client: httpx.Client, op: operations.Operation
) -> None:
    answer = bria_client.post(op.path, json=op.example_request(encoded(scene())))
    assert answer.status_code == 202, answer.text

    done = poll(bria_client, answer.json()["request_id"])

    assert done["status"] == "COMPLETED", done
    assert response_errors(op.result_schema, {"result": done["result"], "request_id": done["request_id"]}) == []
