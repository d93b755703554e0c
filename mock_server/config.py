"""Settings of the fake: defaults, environment variables (prefix ``BRIA_MOCK_``) and overrides.

Settings are read when an app is created (``Settings.from_env()``), never at import.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

ENV_PREFIX = "BRIA_MOCK_"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that changes how the fake behaves. Each field is also ``BRIA_MOCK_<FIELD>``."""

    host: str = "127.0.0.1"
    port: int = 8000
    # Base of every absolute URL the fake hands out (status_url, image_url). Empty: taken
    # from each request's own scheme and Host header, which is right unless behind a proxy.
    public_url: str = ""
    # Accepted api_token values; empty accepts any non-empty token.
    tokens: tuple[str, ...] = ()
    # A job answers IN_PROGRESS to this many status polls and for at least this many seconds.
    progress_polls: int = 1
    progress_seconds: float = 0.0
    # Jobs (and their result images) expire this long after they were accepted ...
    job_ttl_seconds: float = 3600.0
    # ... or earlier when more than this many jobs are kept: the oldest go first.
    max_jobs: int = 10_000
    # ... or when their result images take more than this many bytes (a 1 MP cut-out is ~1 MB).
    max_result_bytes: int = 512 * 1024 * 1024
    # Request bodies over this many bytes are refused with 413 before they are read whole.
    max_body_bytes: int = 16 * 1024 * 1024
    # Images declaring more pixels than this are refused with 415 before they are decoded.
    max_image_pixels: int = 64_000_000
    # The remove_background page says JPEG and PNG only; its field list says WEBP too.
    rmbg_accept_webp: bool = True
    # Requests per minute per token and endpoint: a plan (free, payg, enterprise), a number, or off.
    rate_limit: str = "off"
    # The journal keeps at most this many exchanges and about this many bytes; the oldest go first.
    journal_max_entries: int = 1000
    journal_max_bytes: int = 8 * 1024 * 1024
    # A JSON file of rules loaded at start (a list of rules, or {"rules": [...]}).
    rules_file: str = ""
    # Required (header X-Bria-Mock-Admin-Token) on /bria-mock/ controls when set.
    admin_token: str = ""
    # replace_background takes at most this many reference images (more: 400).
    max_ref_images: int = 10
    # Off: image URLs not on the fake answer 460. On: fetched, refusing every address that is
    # not on the public internet, within a size and a time limit (see mock_server.fetch).
    allow_remote_fetch: bool = False
    fetch_max_bytes: int = 12 * 1024 * 1024
    fetch_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``BRIA_MOCK_*`` variables, then explicit overrides (``None`` is ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _parse(field: dataclasses.Field[Any], raw: str) -> Any:
    kind = field.type
    try:
        if kind == "bool":
            return _parse_bool(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value) or value < 0:
                raise ValueError("expected a finite number, 0 or more")
            return value
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r}: {exc}") from None
    if kind == "tuple[str, ...]":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")
