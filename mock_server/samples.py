"""Sample images the fake serves under ``/samples/<name>``: inputs for curl examples and triggers.

They are drawn by the test-image factory (``mock_server.image_factory``) on first use and cached
for the life of the process.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from mock_server.image_factory import draw_subject, make_image
from mock_server.triggers import UNSAFE_INPUT_MARKER, UNSAFE_OUTPUT_MARKER

SIZE = (640, 480)
# The colour of background.jpg: a plain image, the subject drawn in the background's own colour.
PLAIN_GREEN = (40, 140, 60)
# The subject's rim in subject.png, in pixels.
SAMPLE_EDGE_BLUR = 4


def _drawn(fmt: str, mode: str = "RGB", **options: Any) -> Callable[[], bytes]:
    return lambda: make_image(fmt, mode, SIZE, **options).data


def _animated_gif() -> bytes:
    frames = [draw_subject((64, 48)).convert("P"), Image.new("P", (64, 48), 3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


_SAMPLES: dict[str, Callable[[], bytes]] = {
    "subject.jpg": _drawn("JPEG"),
    "subject.png": _drawn("PNG", "RGBA", soft_edges=SAMPLE_EDGE_BLUR),
    "subject.webp": _drawn("WEBP"),
    "cmyk.jpg": _drawn("JPEG", "CMYK"),
    "background.jpg": _drawn("JPEG", subject=PLAIN_GREEN, background=PLAIN_GREEN),
    "grayscale.png": _drawn("PNG", "L"),
    "animated.gif": _animated_gif,
    "unsafe-input.jpg": _drawn("JPEG", comment=UNSAFE_INPUT_MARKER),
    "unsafe-output.jpg": _drawn("JPEG", comment=UNSAFE_OUTPUT_MARKER),
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
