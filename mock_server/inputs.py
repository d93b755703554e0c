"""Turning the ``image`` / ``ref_images`` strings of a request into decoded Pillow images.

A value is a URL when it starts with ``scheme://``; otherwise base64, with or without a
``data:image/...;base64,`` prefix. Fetching URLs is the caller's job (see ``backend``).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Collection

from PIL import Image, UnidentifiedImageError

from mock_server.errors import BadRequest, UnsupportedMediaType

ACCEPTED_MODES = ("RGB", "RGBA", "CMYK")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_DATA_URL_PREFIX = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def url_scheme(value: str) -> str | None:
    """The lower-cased scheme when ``value`` is a URL, else None (it is then base64)."""
    match = _SCHEME.match(value)
    return match.group(1).lower() if match else None


def decode_base64(value: str, field: str) -> bytes:
    """The bytes of a base64 image string; 415 when it is not base64 at all."""
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


def decode_image(data: bytes, field: str, *, formats: Collection[str], max_pixels: int) -> Image.Image:
    """Open, check and fully decode image bytes, or raise 415 saying why.

    The declared size is checked before any pixel is decoded, so a decompression bomb
    costs nothing. Animated files are decoded by their first frame.
    """
    image = _open(data, field)
    if image.format not in formats:
        raise UnsupportedMediaType(f"{field}: {image.format or 'this'} files are not supported; use {_names(formats)}")
    width, height = image.size
    if width * height > max_pixels:
        raise UnsupportedMediaType(f"{field}: {width}x{height} pixels is over the limit of {max_pixels} pixels")
    if image.mode not in ACCEPTED_MODES:
        raise UnsupportedMediaType(f"{field}: colour mode {image.mode} is not supported; use {_names(ACCEPTED_MODES)}")
    _load(image, field)
    return image


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
