"""What each endpoint does with a validated request: which images it reads, which checks it
runs before accepting, and how its result image is rendered.

Checks here run when the request arrives, in both sync and async mode, so every error
they raise is an HTTP answer to the submit itself. Only output moderation (which needs
the result) surfaces later: as a job in ERROR, or as the sync call's answer.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from mock_server.config import Settings
from mock_server.contract import with_defaults
from mock_server.errors import BadRequest, ModerationFailed
from mock_server.inputs import InputImage
from mock_server.triggers import UNSAFE_INPUT_MARKER, UNSAFE_OUTPUT_MARKER, prompt_is_unsafe

REMOVE_BACKGROUND = "remove_background"
REPLACE_BACKGROUND = "replace_background"


class ImageLoader(Protocol):
    """Reads one image field (base64 or URL) into a checked image, raising the documented errors."""

    def __call__(self, value: str, field: str, *, endpoint: str) -> InputImage: ...


@dataclasses.dataclass(frozen=True)
class Plan:
    """An accepted request, ready to render: its result fields besides image_url, whether
    the result will fail output moderation, and the bytes of the input images it holds."""

    render: Callable[[], bytes]
    result_fields: Mapping[str, Any]
    output_unsafe: bool
    input_bytes: int = 0


def plan_remove_background(body: Mapping[str, Any], load: ImageLoader, settings: Settings) -> Plan:
    """Check and prepare a remove_background request."""
    options = with_defaults("remove_background.request", body)
    image = load(options["image"], "image", endpoint=REMOVE_BACKGROUND)
    _moderate_inputs(options, {"image": image})
    render = partial(_render_remove_background, image, preserve_alpha=options["preserve_alpha"])
    return Plan(render, {}, _output_unsafe(options, image), input_bytes=len(image.data))


def plan_replace_background(body: Mapping[str, Any], load: ImageLoader, settings: Settings) -> Plan:
    """Check and prepare a replace_background request."""
    options = with_defaults("replace_background.request", body)
    ref_fields = _ref_images(options)
    if len(ref_fields) > settings.max_ref_images:
        raise BadRequest(f"ref_images: at most {settings.max_ref_images} reference images (max_ref_images)")
    prompt = options.get("prompt") or None
    if prompt and options["prompt_content_moderation"] and prompt_is_unsafe(prompt):
        raise ModerationFailed("prompt: the prompt failed content moderation (prompt_content_moderation)")
    image = load(options["image"], "image", endpoint=REPLACE_BACKGROUND)
    refs = {field: load(value, field, endpoint=REPLACE_BACKGROUND) for field, value in ref_fields}
    _moderate_inputs(options, {"image": image, **refs})
    seed = options["seed"] if options.get("seed") is not None else secrets.randbelow(2**31)
    render = partial(
        _render_replace_background,
        image,
        prompt=prompt,
        ref_images=list(refs.values()),
        mode=options["mode"],
        seed=seed,
        original_quality=options["original_quality"],
        force_background_detection=options["force_background_detection"],
        negative_prompt=options.get("negative_prompt"),
        enhance_ref_images=options["enhance_ref_images"],
    )
    fields: dict[str, Any] = {"seed": seed}
    if prompt:
        from mock_server.imaging import refine_prompt

        fields["refined_prompt"] = refine_prompt(prompt, options["mode"]) if options["refine_prompt"] else prompt
    held = len(image.data) + sum(len(ref.data) for ref in refs.values())
    return Plan(render, fields, _output_unsafe(options, image), input_bytes=held)


def _render_remove_background(image: InputImage, *, preserve_alpha: bool) -> bytes:
    from mock_server import imaging  # (imported when first used: a server starts without it)

    return imaging.remove_background(image.open(), preserve_alpha=preserve_alpha)


def _render_replace_background(image: InputImage, *, ref_images: list[InputImage], **options: Any) -> bytes:
    from mock_server import imaging

    return imaging.replace_background(image.open(), ref_images=[ref.open() for ref in ref_images], **options)


def _ref_images(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    refs = options.get("ref_images") or []
    if isinstance(refs, str):
        return [("ref_images", refs)]
    return [(f"ref_images[{index}]", value) for index, value in enumerate(refs)]


def _moderate_inputs(options: Mapping[str, Any], images: Mapping[str, InputImage]) -> None:
    if not options.get("visual_input_content_moderation"):
        return
    for field, image in images.items():
        if UNSAFE_INPUT_MARKER in image.markers:
            raise ModerationFailed(
                f"{field}: the input image failed content moderation (visual_input_content_moderation)"
            )


def _output_unsafe(options: Mapping[str, Any], image: InputImage) -> bool:
    return bool(options.get("visual_output_content_moderation")) and UNSAFE_OUTPUT_MARKER in image.markers
