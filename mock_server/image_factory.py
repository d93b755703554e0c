"""Test images drawn with Pillow: the one factory behind the samples, the pytest plugin and the contract suite.

Every image is a subject (an ellipse) on a plain background, in any format and colour mode a request
can carry, optionally with soft edges, a metadata comment (the fake's moderation markers), or broken
the ways a real pipeline meets. ``make_image(...)`` is a plain function; the plugin's ``bria_image``
fixture is the same bound to the running fake, so each image also has a ``url`` the fake serves.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import struct
import zlib

from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MODES = ("RGB", "RGBA", "CMYK", "L", "LA", "P", "I;16")
BROKEN = ("truncated", "wrong_magic", "base64_garbage", "huge_dimensions")
CONTENT_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
    "TIFF": "image/tiff",
}  # fmt: skip
SUBJECT_COLOUR = (230, 120, 30)
BACKGROUND_COLOUR = (200, 225, 245)
# Which modes each format can store (Pillow's writers).
_SAVES = {
    "JPEG": {"RGB", "CMYK", "L"},
    "PNG": {"RGB", "RGBA", "L", "LA", "P", "I;16"},
    "WEBP": {"RGB", "RGBA"},
    "GIF": {"P", "L"},
    "BMP": {"RGB", "L", "P"},
    "TIFF": {"RGB", "RGBA", "CMYK", "L", "LA", "P", "I;16"},
}
# An 8-bit level times 257 spans the whole 16-bit range (255 * 257 == 65535).
_EIGHT_TO_SIXTEEN_BITS = 257
Colour = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class TestImage:
    """An encoded test image in every form a request can carry it."""

    __test__ = False  # not a pytest test class, despite the name

    data: bytes
    format: str
    mode: str
    size: tuple[int, int]
    url: str | None = None

    @property
    def base64(self) -> str:
        """The bytes in base64, as the ``image`` field carries them."""
        return base64.b64encode(self.data).decode("ascii")

    @property
    def data_url(self) -> str:
        """A ``data:image/...;base64,`` URL of the bytes."""
        return f"data:{self.content_type};base64,{self.base64}"

    @property
    def content_type(self) -> str:
        """The media type of the format (``image/png``...)."""
        return CONTENT_TYPES.get(self.format, "application/octet-stream")


def make_image(
    format: str = "PNG",
    mode: str = "RGB",
    size: tuple[int, int] = (64, 48),
    *,
    subject: Colour = SUBJECT_COLOUR,
    background: Colour = BACKGROUND_COLOUR,
    soft_edges: bool | float = False,
    broken: str | None = None,
    comment: str = "",
) -> TestImage:
    """A subject (an ellipse) on a plain background, encoded as ``format`` in ``mode``.

    ``soft_edges`` gives RGBA/LA images a partially transparent rim around the subject: ``True``
    for a rim in proportion to the size, or its width in pixels. ``broken`` is one of
    ``truncated``, ``wrong_magic``, ``base64_garbage``, ``huge_dimensions``. ``comment`` goes
    into the metadata (e.g. ``bria-mock:unsafe-input`` to trip moderation).
    Raises ``ValueError`` for a mode the format cannot store.
    """
    format = format.upper()
    if format not in _SAVES or mode not in _SAVES[format]:
        raise ValueError(f"{format} cannot store mode {mode}; it stores {sorted(_SAVES.get(format, ()))}")
    if broken is not None:
        return _broken(broken, format, mode, size)
    image = draw_subject(size, mode, subject=subject, background=background, edge_blur=_edge_blur(soft_edges, size))
    return TestImage(encode(image, format, comment=comment), format, mode, size)


def draw_subject(
    size: tuple[int, int],
    mode: str = "RGB",
    *,
    subject: Colour = SUBJECT_COLOUR,
    background: Colour = BACKGROUND_COLOUR,
    edge_blur: float = 0,
) -> Image.Image:
    """The subject on its background as a Pillow image in ``mode``, not encoded.

    With an alpha channel (RGBA, LA) the alpha is the subject, its rim softened by ``edge_blur`` pixels.
    """
    rgb, mask = _subject_and_mask(size, subject, background)
    if mode in ("RGBA", "LA"):
        rgb.putalpha(mask.filter(ImageFilter.GaussianBlur(edge_blur)) if edge_blur else mask)
        return rgb if mode == "RGBA" else rgb.convert("LA")
    if mode == "I;16":
        # Through 32-bit "I": in "L", every level times 257 would clip to 255 and flatten the image.
        return rgb.convert("L").convert("I").point(lambda level: level * _EIGHT_TO_SIXTEEN_BITS).convert("I;16")
    return rgb.convert(mode)


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


def _subject_and_mask(size: tuple[int, int], subject: Colour, background: Colour) -> tuple[Image.Image, Image.Image]:
    width, height = size
    box = (width // 4, height // 5, width * 3 // 4, height * 4 // 5)
    image = Image.new("RGB", size, background)
    ImageDraw.Draw(image).ellipse(box, fill=subject)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return image, mask


def _edge_blur(soft_edges: bool | float, size: tuple[int, int]) -> float:
    if soft_edges is True:
        return max(1, min(size) // 20)
    return float(soft_edges)  # False is 0: hard edges


def _broken(kind: str, format: str, mode: str, size: tuple[int, int]) -> TestImage:
    if kind == "huge_dimensions":
        return TestImage(_png_header(50_000, 50_000), "PNG", "RGB", (50_000, 50_000))
    if kind not in BROKEN:
        raise ValueError(f"broken must be one of {', '.join(BROKEN)}")
    whole = make_image(format, mode, size)
    if kind == "truncated":
        return dataclasses.replace(whole, data=whole.data[: len(whole.data) // 2])
    if kind == "wrong_magic":
        return dataclasses.replace(whole, data=b"\x00\x11\x22\x33" + whole.data[4:])
    return dataclasses.replace(whole, data=b"\xff\xfe not an image at all \x00" * 4)  # base64_garbage


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and carries almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
