"""Turning the ``image`` / ``ref_images`` strings of a request into checked input images.

A value is a URL when it starts with ``scheme://``; otherwise base64, with or without a
``data:image/...;base64,`` prefix. Fetching URLs is the caller's job (see ``backend``).

A checked image keeps its encoded bytes, not its pixels: an accepted job may wait a long
time for its first due poll, and a decoded 1 MP image is ten times its JPEG.
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
from mock_server.triggers import image_markers

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
    size: tuple[int, int]
    markers: frozenset[str]  # moderation markers in its metadata (see ``triggers``)

    def open(self) -> Image.Image:
        """The decoded image (it decoded once already, when it was checked)."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


class TooLargeToDecodeHere(Exception):
    """Raised instead of decoding an image over ``decode_limit`` pixels: the caller is on the
    event loop, and decodes it again in a worker thread."""


def check_image(
    data: bytes, field: str, *, formats: frozenset[str], max_pixels: int, decode_limit: int | None = None
) -> InputImage:
    """Check image bytes as :func:`decode_image` does, remembering small images that pass."""
    remembered = len(data) <= CACHED_BYTES  # (hashing a big image as a key would cost more than it saves)
    key = (data, formats, max_pixels, is_mask_field(field))
    known = _checked.get(key) if remembered else None
    if known is not None:
        return known
    image = decode_image(data, field, formats=formats, max_pixels=max_pixels, decode_limit=decode_limit)
    checked = InputImage(data, str(image.format), image.size, frozenset(image_markers(image)))
    if remembered:
        _checked.put(key, checked)
    return checked


def decode_image(
    data: bytes, field: str, *, formats: Collection[str], max_pixels: int, decode_limit: int | None = None
) -> Image.Image:
    """Open, check and fully decode image bytes, or raise 415 saying why.

    The declared size is checked before any pixel is decoded, so a decompression bomb
    costs nothing. Animated files are decoded by their first frame. An image over
    ``decode_limit`` pixels raises :class:`TooLargeToDecodeHere` before it is decoded.
    """
    image = _open(data, field)
    if image.format not in formats:
        raise UnsupportedMediaType(f"{field}: {image.format or 'this'} files are not supported; use {_names(formats)}")
    width, height = image.size
    if width * height > max_pixels:
        raise UnsupportedMediaType(f"{field}: {width}x{height} pixels is over the limit of {max_pixels} pixels")
    modes = MASK_MODES if is_mask_field(field) else ACCEPTED_MODES
    if image.mode not in modes:
        raise UnsupportedMediaType(f"{field}: colour mode {image.mode} is not supported; use {_names(modes)}")
    if decode_limit is not None and width * height > decode_limit:
        raise TooLargeToDecodeHere(field)
    _load(image, field)
    return image


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
