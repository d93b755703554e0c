"""The proxy's options: what ``bria-mock proxy`` takes on its command line."""

from __future__ import annotations

import dataclasses

DEFAULT_MAX_CHECK_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ProxyOptions:
    """How one proxy runs. ``target`` is required: the proxy never guesses where to forward."""

    target: str
    host: str = "127.0.0.1"
    port: int = 8010
    # Off: a target on a loopback, private or otherwise non-public address is refused, as a remote image is.
    allow_private_target: bool = False
    # On: a request or answer that breaks the contract is answered by the proxy's own error instead.
    strict: bool = False
    record: str = ""  # a folder to record exchanges to; empty: no recording
    # On: result image URLs on the target's own origin are rewritten to go through the proxy too.
    rewrite_image_urls: bool = False
    # Bodies are read whole to be checked up to this size; larger ones stream through unchecked.
    max_check_bytes: int = DEFAULT_MAX_CHECK_BYTES
    timeout_seconds: float = 120.0  # per request to the target (connect, and between bytes)
