"""Sample images the fake serves under ``/samples/<name>``: inputs for curl examples and triggers.

They are drawn with Pillow on first use and cached for the life of the process.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from mock_server.triggers import UNSAFE_INPUT_MARKER, UNSAFE_OUTPUT_MARKER

SUBJECT_COLOUR = (230, 120, 30)
BACKGROUND_COLOUR = (200, 225, 245)
SIZE = (640, 480)


def subject_image(
    size: tuple[int, int] = SIZE,
    *,
    subject: tuple[int, int, int] = SUBJECT_COLOUR,
    background: tuple[int, int, int] = BACKGROUND_COLOUR,
    alpha: bool = False,
    edge_blur: float = 4,
) -> Image.Image:
    """An ellipse (the subject) centred on a plain background; with ``alpha``, RGBA whose
    alpha is the subject, its edge softened (partially transparent) by ``edge_blur`` pixels."""
    width, height = size
    image = Image.new("RGB", size, background)
    box = (width // 4, height // 5, width * 3 // 4, height * 4 // 5)
    ImageDraw.Draw(image).ellipse(box, fill=subject)
    if not alpha:
        return image
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    image.putalpha(mask.filter(ImageFilter.GaussianBlur(edge_blur)) if edge_blur else mask)
    return image


def encode(image: Image.Image, fmt: str, *, comment: str = "") -> bytes:
    """Encode an image; ``comment`` goes into the JPEG or GIF comment, or a PNG text chunk."""
    out = io.BytesIO()
    options: dict[str, object] = {}
    if comment and fmt in ("JPEG", "GIF"):
        options["comment"] = comment
    if comment and fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", comment)
        options["pnginfo"] = info
    image.save(out, fmt, **options)
    return out.getvalue()


def _animated_gif() -> bytes:
    frames = [subject_image((64, 48)).convert("P"), Image.new("P", (64, 48), 3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


_SAMPLES: dict[str, Callable[[], bytes]] = {
    "subject.jpg": lambda: encode(subject_image(), "JPEG"),
    "subject.png": lambda: encode(subject_image(alpha=True), "PNG"),
    "subject.webp": lambda: encode(subject_image(), "WEBP"),
    "cmyk.jpg": lambda: encode(subject_image().convert("CMYK"), "JPEG"),
    "background.jpg": lambda: encode(Image.new("RGB", SIZE, (40, 140, 60)), "JPEG"),
    "grayscale.png": lambda: encode(subject_image().convert("L"), "PNG"),
    "animated.gif": _animated_gif,
    "unsafe-input.jpg": lambda: encode(subject_image(), "JPEG", comment=UNSAFE_INPUT_MARKER),
    "unsafe-output.jpg": lambda: encode(subject_image(), "JPEG", comment=UNSAFE_OUTPUT_MARKER),
}

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}


def sample_names() -> list[str]:
    return sorted(_SAMPLES)


@functools.cache
def sample(name: str) -> bytes | None:
    """The bytes of a sample image, or None when there is no such sample."""
    make = _SAMPLES.get(name)
    return make() if make else None


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
