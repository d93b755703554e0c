"""Rewriting the URLs in the target's answers so that the caller's next requests come back through the proxy.

``status_url`` always (polling is traffic to check); ``result.image_url`` only when asked
(``--rewrite-image-urls``): on the target's own origin, onto the proxy at the same path; on another
host (Bria's CDN), onto a proxy path that stands for that URL (``foreign_images`` registers it and
names the path), so the proxy only ever fetches image URLs the target itself handed out.
An answer with nothing to rewrite goes on byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def rewrite_urls(
    body: bytes, *, origin: str, proxy_base: str, foreign_images: Callable[[str], str] | None = None
) -> bytes:
    """``body`` with the target's ``status_url`` (and, given ``foreign_images``, ``image_url``) on ``proxy_base``.

    ``foreign_images(url)`` is the proxy path standing for an image URL on another origin.
    """
    if b"_url" not in body:  # the common case for errors and polls in progress: nothing to parse
        return body
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict):
        return body
    changed = _move(parsed, "status_url", origin, proxy_base)
    result = parsed.get("result")
    if foreign_images is not None and isinstance(result, dict):
        changed = (
            _move(result, "image_url", origin, proxy_base) or _moved_away(result, foreign_images, proxy_base) or changed
        )
    return json.dumps(parsed, separators=(",", ":")).encode() if changed else body


def _move(holder: dict[str, Any], key: str, origin: str, proxy_base: str) -> bool:
    value = holder.get(key)
    if isinstance(value, str) and (value == origin or value.startswith(origin + "/")):
        holder[key] = proxy_base + value[len(origin) :]
        return True
    return False


def _moved_away(result: dict[str, Any], foreign_images: Callable[[str], str], proxy_base: str) -> bool:
    value = result.get("image_url")
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        result["image_url"] = proxy_base + foreign_images(value)
        return True
    return False
