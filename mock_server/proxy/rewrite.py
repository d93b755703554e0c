"""Rewriting the URLs in the target's answers so that the caller's next requests come back through the proxy.

``status_url`` always (polling is traffic to check); ``result.image_url`` only when asked
(``--rewrite-image-urls``) and only when it is on the target's own origin: an image on another
host (Bria's CDN) is left alone, since following it would make the proxy fetch URLs it did not choose.
An answer with nothing to rewrite goes on byte for byte.
"""

from __future__ import annotations

import json
from typing import Any


def rewrite_urls(body: bytes, *, origin: str, proxy_base: str, images: bool) -> bytes:
    """``body`` with the target's ``status_url`` (and ``image_url``) moved onto ``proxy_base``."""
    if origin.encode() not in body:  # the common case for errors and polls in progress: nothing to parse
        return body
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict):
        return body
    changed = _move(parsed, "status_url", origin, proxy_base)
    result = parsed.get("result")
    if images and isinstance(result, dict):
        changed = _move(result, "image_url", origin, proxy_base) or changed
    return json.dumps(parsed, separators=(",", ":")).encode() if changed else body


def _move(holder: dict[str, Any], key: str, origin: str, proxy_base: str) -> bool:
    value = holder.get(key)
    if isinstance(value, str) and (value == origin or value.startswith(origin + "/")):
        holder[key] = proxy_base + value[len(origin) :]
        return True
    return False
