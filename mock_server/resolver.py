"""Reading a request's image values (base64, or URLs on the fake or elsewhere) into checked images.

One :class:`InputResolver` per request. It decides where the work runs: small base64 images are
checked on the event loop, where a thread hop would cost more than the work; URLs and large
images are read in the thread pool, so that they never hold up other requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from mock_server import samples
from mock_server.errors import BadRequest, DownloadFailed, ImageNotFound
from mock_server.inputs import DecodeBudget, InputImage, TooLargeToDecodeHere, check_image, decode_base64, url_scheme
from mock_server.pixel_budget import process_budget
from mock_server.triggers import NOT_FOUND_HOST

if TYPE_CHECKING:
    from mock_server.config import Settings

RESULTS_PATH = "/results/"
SAMPLES_PATH = "/samples/"
UPLOADS_PATH = "/uploads/"
# Inputs checked on the event loop: base64 values up to this many characters, decoding at most
# this many pixels. Anything larger, and every URL, is read in the thread pool.
INLINE_MAX_CHARS = 128 * 1024
INLINE_MAX_PIXELS = 256 * 256
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

LocalFiles = Callable[[str], "bytes | None"]  # a path on the fake (/results/..., /uploads/...) -> its bytes


class InputResolver:
    """Turns ``(field, value)`` pairs into checked :class:`InputImage` s, raising the documented errors."""

    def __init__(self, settings: Settings, base_url: str, local_file: LocalFiles) -> None:
        self.settings = settings
        self.local_hosts = _local_hosts(base_url, settings.public_url)
        self.local_file = local_file

    async def resolve(self, values: Sequence[tuple[str, str]], formats: frozenset[str]) -> dict[str, InputImage]:
        """Every value checked, in order: on the event loop until one is too large for it, then that
        one and the rest in one thread-pool hop (so the first bad field is always the one reported)."""
        resolved: dict[str, InputImage] = {}
        for index, (field, value) in enumerate(values):
            try:
                resolved[field] = self.read(field, value, formats, inline=True)
            except TooLargeToDecodeHere:
                rest = await run_in_threadpool(self._read_all, values[index:], formats)
                return {**resolved, **rest}
        return resolved

    def _read_all(self, values: Sequence[tuple[str, str]], formats: frozenset[str]) -> dict[str, InputImage]:
        return {field: self.read(field, value, formats) for field, value in values}

    def read(self, field: str, value: str, formats: frozenset[str], *, inline: bool = False) -> InputImage:
        """One image value, checked. ``inline`` (on the event loop) raises :class:`TooLargeToDecodeHere`
        instead of fetching a URL or decoding a large image."""
        if inline and (len(value) > INLINE_MAX_CHARS or url_scheme(value) is not None):
            raise TooLargeToDecodeHere(field)
        return check_image(
            self._bytes(field, value),
            field,
            formats=formats,
            max_pixels=self.settings.max_image_pixels,
            decode_limit=INLINE_MAX_PIXELS if inline else None,
            budget=None if inline else self._decode_budget(),  # (inline decodes are small: INLINE_MAX_PIXELS)
        )

    def _decode_budget(self) -> DecodeBudget:
        """Where a check's decode in the thread pool counts (the process's budget)."""
        return DecodeBudget(process_budget(self.settings.max_decoding_pixels), self.settings.decode_wait_seconds)

    def _bytes(self, field: str, value: str) -> bytes:
        scheme = url_scheme(value)
        if scheme is None:
            return decode_base64(value, field)
        if scheme not in {"http", "https"}:
            raise BadRequest(f"{field}: only http and https URLs are supported, not {scheme}")
        return self._fetch(field, value)

    def _fetch(self, field: str, url: str) -> bytes:
        """The fake's own results, samples and uploads locally; the reserved not-found host as 404;
        anything else 460, or fetched when remote fetching is on."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:  # e.g. "http://[::1/x": an unbalanced or invalid IPv6 literal
            raise BadRequest(f"{field}: not a valid URL") from None
        if not host:
            raise BadRequest(f"{field}: the URL has no host")
        if host == NOT_FOUND_HOST:
            raise ImageNotFound(f"{field}: no image at {url}")
        if host in self.local_hosts:
            data = self.local_file(parts.path)
            if data is None:
                raise ImageNotFound(f"{field}: no image at {url}")
            return data
        if not self.settings.allow_remote_fetch:
            raise DownloadFailed(f"{field}: could not download {url} (remote fetching is off: allow_remote_fetch)")
        from mock_server.fetch import fetch_image  # (httpcore and ssl: imported only when fetching is on)

        settings = self.settings
        return fetch_image(url, field, max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout_seconds)


def sample_file(path: str) -> bytes | None:
    """A sample image by its path on the fake (``/samples/<name>``)."""
    return samples.sample(path.removeprefix(SAMPLES_PATH)) if path.startswith(SAMPLES_PATH) else None


@functools.lru_cache(maxsize=64)  # a fake is reached by a few names: parse them once
def _local_hosts(base_url: str, public_url: str) -> frozenset[str]:
    """The hosts whose URLs the fake resolves itself: loopback, and the names it is reached by."""
    return _LOOPBACK_HOSTS | ({_host(base_url), _host(public_url)} - {""})


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
