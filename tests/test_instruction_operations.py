"""The instruction and style edits, the FIBO edit and structured_instruction/generate: same size, a visible
change that depends on every parameter and the seed, determinism, and their 400s."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops

from mock_server import operations
from mock_server.contract import load_schema
from tests.test_edit_operations import (
    SIZE,
    box_mask,
    encoded,
    mean_difference,
    refused,
    result_png,
    run,
    scene,
    unchanged,
)

# Each styled operation's own fields, with two values each: the result must change with each.
VARIANTS: dict[str, dict[str, tuple[Any, Any]]] = {
    "restyle": {"style": ("oil_painting", "anime")},
    "relight": {"light_type": ("midday", "moonlight lighting"), "light_direction": ("side", "front")},
    "reseason": {"season": ("winter", "summer")},
    "colorize": {"color": ("color_vivid", "sepia_vintage")},
    "restore": {},
    "sketch_to_colored_image": {},
    "rewrite_text": {"new_text": ("OPEN", "CLOSED")},
    "add_object_by_text": {"instruction": ("add a red vase", "add a blue cup")},
    "replace_object_by_text": {"instruction": ("replace the cup with a glass", "replace the cup with a plant")},
    "blend": {"instruction": ("blend in a sunset glow", "blend in fog")},
    "erase_by_text": {"object_name": ("the lamp", "the chair")},
}


def base_body(name: str) -> dict[str, Any]:
    return {"image": encoded(scene()), "seed": 9, **{field: values[0] for field, values in VARIANTS[name].items()}}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_styled_edit_is_the_same_size_and_visibly_changed(bria_client: httpx.Client, name: str) -> None:
    result, edited = run(bria_client, name, base_body(name))

    assert edited.size == SIZE
    assert mean_difference(edited, scene()) > 10
    assert result["seed"] == 9
    assert json.loads(result["structured_instruction"])["edit"] == name


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_styled_edit_depends_on_every_parameter_and_the_seed_and_nothing_else(
    bria_client: httpx.Client, name: str
) -> None:
    body = base_body(name)
    first = result_png(bria_client, name, body)

    assert first == result_png(bria_client, name, body)
    assert first != result_png(bria_client, name, {**body, "seed": 10})
    for field, values in VARIANTS[name].items():
        assert first != result_png(bria_client, name, {**body, field: values[1]}), field


def test_the_table_has_a_variant_for_every_styled_edit() -> None:
    def answers_an_instruction(op: operations.Operation) -> bool:
        return "structured_instruction" in load_schema(op.result_schema)["properties"]["result"]["properties"]

    styled = {
        op.name for op in operations.OPERATIONS if op.path.startswith("/v2/image/edit/") and answers_an_instruction(op)
    }
    assert styled == set(VARIANTS)


@pytest.mark.parametrize(
    ("name", "field", "value"), [("restyle", "style", "watercolour"), ("reseason", "season", "fall")]
)
def test_a_value_outside_the_enum_is_a_400_naming_the_field(
    bria_client: httpx.Client, name: str, field: str, value: str
) -> None:
    assert refused(bria_client, name, {**base_body(name), field: value}).startswith(f"{field}:")


def test_an_unsafe_instruction_is_a_422(bria_client: httpx.Client) -> None:
    answer = bria_client.post(
        "/v2/image/edit/add_object_by_text", json={"image": encoded(scene()), "instruction": "add something nsfw"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"].startswith("instruction:")


# --- the FIBO edit ------------------------------------------------------------------------------------


def edit_body(**changes: Any) -> dict[str, Any]:
    return {"images": [encoded(scene())], "instruction": "make the sky blue", "seed": 2, **changes}


def test_edit_returns_image_seed_and_structured_instruction_and_replays(bria_client: httpx.Client) -> None:
    result, edited = run(bria_client, "edit", edit_body())

    assert edited.size == SIZE
    assert result["seed"] == 2
    assert json.loads(result["structured_instruction"])["instruction"] == "make the sky blue"
    first = result_png(bria_client, "edit", edit_body())
    assert first == result_png(bria_client, "edit", edit_body())
    assert first != result_png(bria_client, "edit", edit_body(guidance_scale=3))
    assert first != result_png(bria_client, "edit", edit_body(instruction="add a cat"))


def test_edit_with_a_mask_changes_only_the_masked_pixels(bria_client: httpx.Client) -> None:
    mask = box_mask((10, 10, 40, 30))

    _, edited = run(bria_client, "edit", edit_body(mask=encoded(mask)))

    assert unchanged(edited, scene(), ImageChops.invert(mask))
    assert not unchanged(edited, scene(), mask)


def test_edit_keeps_a_given_structured_instruction(bria_client: httpx.Client) -> None:
    structured = json.dumps({"sky": "blue"})

    result, _ = run(bria_client, "edit", {"images": [encoded(scene())], "structured_instruction": structured})

    assert result["structured_instruction"] == structured
    assert isinstance(result["seed"], int)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mask": encoded(box_mask((0, 0, 8, 8), (32, 24)))}, "mask"),
        ({"images": [encoded(scene()), encoded(scene())]}, "images"),
        ({"images": []}, "images"),
        ({"structured_instruction": "{}"}, "instruction, structured_instruction"),
        ({"instruction": None, "structured_instruction": "[1]"}, "structured_instruction"),
        ({"steps_num": 10}, "steps_num"),
        ({"guidance_scale": 6}, "guidance_scale"),
    ],
)
def test_edit_rules_answer_400_naming_the_field(bria_client: httpx.Client, changes: dict[str, Any], field: str) -> None:
    assert refused(bria_client, "edit", edit_body(**changes)).startswith(f"{field}:")


def test_ip_signal_adds_a_warning_beside_the_result_only_when_asked_and_named(bria_client: httpx.Client) -> None:
    named = edit_body(instruction="add pikachu to the table")
    path = operations.operation("edit").path

    warned = bria_client.post(path, json={**named, "ip_signal": True, "sync": True}).json()
    quiet = bria_client.post(path, json={**named, "sync": True}).json()
    accepted = bria_client.post(path, json={**named, "ip_signal": True}).json()
    polled = [bria_client.get(accepted["status_url"]).json() for _ in range(2)][-1]  # the first is IN_PROGRESS

    assert "pikachu" in warned["warning"] and "warning" not in warned["result"]
    assert "warning" not in quiet
    assert polled["status"] == "COMPLETED" and polled["warning"] == warned["warning"]


# --- structured_instruction/generate ------------------------------------------------------------------


def test_structured_instruction_generate_answers_seed_and_instruction_and_no_image(bria_client: httpx.Client) -> None:
    path = operations.operation("structured_instruction_generate").path
    body = {"images": [encoded(scene())], "instruction": "make the sky blue", "seed": 8, "sync": True}

    first = bria_client.post(path, json=body).json()
    again = bria_client.post(path, json=body).json()

    assert set(first["result"]) == {"seed", "structured_instruction"}
    assert first["result"]["seed"] == 8
    assert json.loads(first["result"]["structured_instruction"])["source_image"]["width"] == SIZE[0]
    assert first["result"] == again["result"]


def test_structured_instruction_generate_with_a_mask_of_another_size_is_a_400(bria_client: httpx.Client) -> None:
    body = {"images": [encoded(scene())], "instruction": "x", "mask": encoded(Image.new("L", (10, 10)))}

    assert refused(bria_client, "structured_instruction_generate", body).startswith("mask: must be the same size")
