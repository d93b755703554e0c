"""Turning the ``image`` / ``ref_images`` strings of a request into checked input images.

A value is a URL when it starts with ``scheme://``; otherwise base64, with or without a
``data:image/...;base64,`` prefix. Fetching URLs is the caller's job (see ``backend``).

A checked image keeps its encoded bytes, not its pixels: an accepted job may wait a long
time for its first due poll, and a decoded 1 MP image is ten times its JPEG. The check itself
decodes at the smallest size the format allows (a JPEG at 1/8 of each side: every byte of it is
still read, so a truncated or corrupt one is still found), and an operation that needs less
than the full size decodes at reduced size too (``InputImage.open(at_least=...)``); the pixels
either decode costs are counted against the process's budget (``pixel_budget``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import io
import re
import threading
from collections.abc import Collection

from PIL import Image, UnidentifiedImageError

from mock_server.errors import BadRequest, UnsupportedMediaType
from mock_server.pixel_budget import PixelBudget
from mock_server.triggers import image_markers

Size = tuple[int, int]

ACCEPTED_MODES = ("RGB", "RGBA", "CMYK")
# A mask is black and white: greyscale, bilevel and palette files are masks as good as RGB ones.
MASK_MODES = (*ACCEPTED_MODES, "L", "LA", "1", "P")
# Checked images remembered, so that a client sending the same image again (load tests, test
# suites) is not decoded again: only images up to CACHED_BYTES, at most CACHED_IMAGES of them.
CACHED_IMAGES = 256
CACHED_BYTES = 64 * 1024
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DATA_URL_PREFIX = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
# Frame markers of arithmetic-coded JPEGs (in entropy-coded data 0xFF is always followed by 0x00 or a
# restart marker, so these bytes are markers, or inside a metadata segment: then the check is skipped).
_ARITHMETIC_FRAMES = tuple(bytes((0xFF, code)) for code in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def url_scheme(value: str) -> str | None:
    """The lower-cased scheme when ``value`` is a URL, else None (it is then base64)."""
    match = _SCHEME.match(value)
    return match.group(1).lower() if match else None


def decode_base64(value: str, field: str) -> bytes:
    """The bytes of a base64 image string; 415 when it is not base64 at all."""
    try:  # the common case first: plain, padded, standard base64
        data = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    else:
        if data:
            return data
    payload = _WHITESPACE.sub("", _DATA_URL_PREFIX.sub("", value, count=1))
    altchars = b"-_" if ("-" in payload or "_" in payload) else None
    payload += "=" * (-len(payload) % 4)  # clients often strip the padding
    try:
        data = base64.b64decode(payload, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedMediaType(f"{field}: not an http(s) URL and not valid base64") from None
    if not data:
        raise BadRequest(f"{field}: the base64 string decodes to nothing")
    return data


@dataclasses.dataclass(frozen=True)
class InputImage:
    """An image that passed every input check: its encoded bytes and what the checks read."""

    data: bytes
    format: str
    size: Size  # as its header declares it (before EXIF orientation)
    markers: frozenset[str]  # moderation markers in its metadata (see ``triggers``)

    def open(self, at_least: Size | None = None) -> Image.Image:
        """The decoded image; with ``at_least``, a JPEG decodes at the smallest scale (1/2, 1/4, 1/8)
        whose sides are still that large (other formats decode whole)."""
        image = Image.open(io.BytesIO(self.data))
        if at_least is not None:
            image.draft(image.mode, at_least)
        image.load()
        return image

    def decoded_size(self, at_least: Size | None = None) -> Size:
        """The size :meth:`open` decodes at, from the header alone (Pillow's JPEG draft rule)."""
        if at_least is None or self.format != "JPEG":
            return self.size
        return _jpeg_scaled(self.size, at_least)

    def decoded_pixels(self, at_least: Size | None = None) -> int:
        width, height = self.size if at_least is None else self.decoded_size(at_least)
        return width * height


def _jpeg_scaled(size: Size, at_least: Size) -> Size:
    """libjpeg scales by 1/1, 1/2, 1/4 or 1/8: the smallest scale keeping both sides at least ``at_least``."""
    fits = min(size[0] // max(1, at_least[0]), size[1] // max(1, at_least[1]))
    scale = next(scale for scale in (8, 4, 2, 1) if fits >= scale or scale == 1)
    return (size[0] + scale - 1) // scale, (size[1] + scale - 1) // scale


class TooLargeToDecodeHere(Exception):
    """Raised instead of decoding an image over ``decode_limit`` pixels: the caller is on the
    event loop, and decodes it again in a worker thread."""


@dataclasses.dataclass(frozen=True)
class DecodeBudget:
    """Where a check's decode counts: the process's budget, and how long it may wait for room."""

    budget: PixelBudget
    wait_seconds: float


def check_image(
    data: bytes,
    field: str,
    *,
    formats: frozenset[str],
    max_pixels: int,
    decode_limit: int | None = None,
    budget: DecodeBudget | None = None,
) -> InputImage:
    """Check image bytes as :func:`decode_image` does, remembering small images that pass.

    Only what passed is remembered: a refusal, or a 503 of a full budget, is decided again."""
    remembered = len(data) <= CACHED_BYTES  # (hashing a big image as a key would cost more than it saves)
    key = (data, formats, max_pixels, is_mask_field(field))
    known = _checked.get(key) if remembered else None
    if known is not None:
        return known
    image, declared = _decode(data, field, formats, max_pixels, decode_limit, budget)
    checked = InputImage(data, str(image.format), declared, frozenset(image_markers(image)))
    if remembered:
        _checked.put(key, checked)
    return checked


def decode_image(
    data: bytes,
    field: str,
    *,
    formats: Collection[str],
    max_pixels: int,
    decode_limit: int | None = None,
    budget: DecodeBudget | None = None,
) -> Image.Image:
    """Open, check and decode image bytes (a JPEG at 1/8 scale), or raise 415 saying why.

    The declared size is checked before any pixel is decoded, so a decompression bomb
    costs nothing. Animated files are decoded by their first frame. An image whose check
    decodes over ``decode_limit`` pixels raises :class:`TooLargeToDecodeHere` before it is
    decoded; the decode holds its pixels in ``budget`` (503 when there is no room in time).
    """
    return _decode(data, field, formats, max_pixels, decode_limit, budget)[0]


def _decode(
    data: bytes,
    field: str,
    formats: Collection[str],
    max_pixels: int,
    decode_limit: int | None,
    budget: DecodeBudget | None,
) -> tuple[Image.Image, Size]:
    """The checked image, decoded as small as its format allows, and its declared size."""
    image = _open(data, field)
    if image.format not in formats:
        raise UnsupportedMediaType(f"{field}: {image.format or 'this'} files are not supported; use {_names(formats)}")
    width, height = image.size
    if width * height > max_pixels:
        raise UnsupportedMediaType(f"{field}: {width}x{height} pixels is over the limit of {max_pixels} pixels")
    modes = MASK_MODES if is_mask_field(field) else ACCEPTED_MODES
    if image.mode not in modes:
        raise UnsupportedMediaType(f"{field}: colour mode {image.mode} is not supported; use {_names(modes)}")
    if image.format == "JPEG" and _jpeg_too_short(data, width, height):
        raise UnsupportedMediaType(
            f"{field}: the image is truncated or corrupt ({len(data)} bytes for {width}x{height})"
        )
    image.draft(image.mode, (1, 1))  # a JPEG decodes at 1/8 scale; libjpeg still reads every byte
    decoded = image.width * image.height
    if decode_limit is not None and decoded > decode_limit:
        raise TooLargeToDecodeHere(field)
    if budget is None:
        _load(image, field)
    else:
        with budget.budget.held_for(decoded, wait=budget.wait_seconds, field=field):
            _load(image, field)
    return image, (width, height)


def _jpeg_too_short(data: bytes, width: int, height: int) -> bool:
    """Whether a JPEG is too short to hold the pixels it declares, read from its size alone.

    Huffman coding spends at least one bit on the DC value of every 8x8 block of the full-resolution
    component, so a file under ``blocks / 8`` bytes is cut short (libjpeg would fill the rest with
    grey, and the fake would process 64 million pixels from 631 bytes). Arithmetic coding (SOF9 to
    SOF15: rare) can spend less, so those are left to the decoder.
    """
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    return len(data) * 8 < blocks and not any(marker in data for marker in _ARITHMETIC_FRAMES)


def is_mask_field(field: str) -> bool:
    """Whether a request field holds a mask (``mask``), which may also be greyscale, bilevel or palette."""
    return field == "mask"


def _open(data: bytes, field: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsupportedMediaType(f"{field}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise UnsupportedMediaType(f"{field}: the data is not an image in a supported format") from None
    except (OSError, ValueError, SyntaxError):
        raise UnsupportedMediaType(f"{field}: the image header is corrupt") from None


def _load(image: Image.Image, field: str) -> None:
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise UnsupportedMediaType(f"{field}: the image is truncated or corrupt") from None


def _names(values: Collection[str]) -> str:
    return ", ".join(sorted(values))


class _Remembered:
    """A small thread-safe LRU map (requests are checked on the event loop and in worker threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: collections.OrderedDict[object, InputImage] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> InputImage | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: object, value: InputImage) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_checked = _Remembered(CACHED_IMAGES)
