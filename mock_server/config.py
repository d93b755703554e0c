"""Settings of the fake: defaults, environment variables (prefix ``BRIA_MOCK_``) and overrides.

Each setting is defined once, as a field of :class:`Settings` with its help text and allowed
form; the ``bria-mock serve`` options, the ``BRIA_MOCK_*`` names and the documentation's
settings table are all derived from that definition (:data:`SETTINGS`). Unknown names and
malformed values are refused with the closest valid name or the allowed form.

Settings are read when an app is created (``Settings.from_env()``), never at import.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mock_server.ratelimit import MAX_PER_MINUTE, PLANS, per_minute

ENV_PREFIX = "BRIA_MOCK_"
# BRIA_MOCK_* variables that are not settings of the fake (the project's own test switches).
NOT_SETTINGS = frozenset({"BRIA_MOCK_FUZZ"})
_META = "bria_mock_setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting as every surface shows it: name, type, default, help, allowed form, flag."""

    name: str
    kind: str  # the field's annotation: "int", "float", "bool", "str" or "tuple[str, ...]"
    default: Any
    help: str
    allowed: str  # the allowed form, as an error message says it
    flag: str  # the ``bria-mock serve`` option
    default_text: str  # the default as a person reads it ("any non-empty token")
    parse: Callable[[str], Any]  # raw text (an environment value, a CLI word) to the value
    choices: Mapping[str, Any] | None = None  # CLI words standing for values (``--rmbg-webp reject``)
    metavar: str = "X"  # what the flag's value is called in ``--help``

    @property
    def env_name(self) -> str:
        """The environment variable: ``BRIA_MOCK_<NAME>``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def repeatable(self) -> bool:
        """A list setting: its flag may be given several times; its variable is comma-separated."""
        return self.kind.startswith("tuple")

    def read(self, raw: str) -> Any:
        """The value of ``raw``; ValueError naming the variable, the setting and the allowed form when malformed."""
        try:
            return self.parse(raw)
        except (ValueError, OverflowError):
            raise ValueError(f"{self.env_name}={raw!r} (setting {self.name}): expected {self.allowed}") from None


def _setting(
    default: Any,
    help: str,
    *,
    allowed: str | None = None,
    flag: str | None = None,
    default_text: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: Mapping[str, Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A :class:`Settings` field carrying the rest of its definition (the field gives name, type, default)."""
    details: dict[str, Any] = {"help": help, "allowed": allowed, "flag": flag, "default_text": default_text}
    details |= {"parse": parse, "choices": choices, "metavar": metavar}
    return dataclasses.field(default=default, metadata={_META: details})


# --- parsers: each raises ValueError on a malformed value ---------------------------------------


def parse_bool(raw: str) -> bool:
    """true/false, also 1/0, yes/no, on/off, in any case."""
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def parse_count(raw: str) -> int:
    """A whole number, 0 or more."""
    value = int(raw.strip())
    if value < 0:
        raise ValueError(raw)
    return value


def parse_port(raw: str) -> int:
    """A TCP port number (0: any free port)."""
    value = int(raw.strip())
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


def parse_seconds(raw: str) -> float:
    """A finite number, 0 or more (seconds)."""
    value = float(raw.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError(raw)
    return value


def parse_list(raw: str) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_rate_limit(raw: str) -> str:
    """A plan name, off, or a number of requests per minute, kept as text (the limiter reads it)."""
    per_minute(raw.strip())  # raises ValueError for anything but a plan, off or a number in range
    return raw.strip()


FAILED_STATUSES = ("ERROR", "FAILED")
STATE_SCHEMES = ("redis://", "rediss://", "unix://")
_STATE_FORM = "memory, or a Redis/Valkey URL (redis://host:port/db, rediss://..., unix:///path.sock)"


def parse_state(raw: str) -> str:
    """memory, or a Redis/Valkey URL."""
    value = raw.strip()
    if value.lower() == "memory":
        return "memory"
    if not value.lower().startswith(STATE_SCHEMES):
        raise ValueError(raw)
    return value


def parse_workers(raw: str) -> int:
    """A whole number, 1 or more."""
    value = int(raw.strip())
    if value < 1:
        raise ValueError(raw)
    return value


def parse_failed_status(raw: str) -> str:
    """ERROR or FAILED, in any case."""
    value = raw.strip().upper()
    if value not in FAILED_STATUSES:
        raise ValueError(raw)
    return value


_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "int": (parse_count, "a whole number, 0 or more"),
    "float": (parse_seconds, "a number, 0 or more"),
    "bool": (parse_bool, "true or false (also 1/0, yes/no, on/off)"),
    "str": (str, "any text"),
    "tuple[str, ...]": (parse_list, "comma-separated values"),
}
_METAVARS = {"int": "N", "float": "N", "bool": "true|false", "str": "TEXT", "tuple[str, ...]": "T"}
_RATE_LIMIT_FORM = f"{', '.join(PLANS)}, off, or a number of requests per minute (0 to {MAX_PER_MINUTE})"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that changes how the fake behaves. Each field is also ``BRIA_MOCK_<FIELD>``."""

    host: str = _setting("127.0.0.1", "interface to listen on", metavar="HOST")
    port: int = _setting(8000, "port to listen on", parse=parse_port, allowed="a port number, 0 to 65535")
    # Empty: taken from each request's own scheme and Host header, right unless behind a proxy.
    public_url: str = _setting(
        "", "base of every status_url and image_url handed out", default_text="the request's own Host", metavar="URL"
    )
    tokens: tuple[str, ...] = _setting(
        (), "accepted api_token values", flag="--token", default_text="any non-empty token"
    )
    progress_polls: int = _setting(1, "status polls a job answers IN_PROGRESS")
    progress_seconds: float = _setting(0.0, "seconds a job stays IN_PROGRESS at least")
    job_ttl_seconds: float = _setting(3600.0, "seconds a job and its result image are kept", flag="--job-ttl")
    max_jobs: int = _setting(10_000, "jobs kept at most; the oldest are dropped first")
    # A 1 MP cut-out is about 1 MB.
    max_result_bytes: int = _setting(
        512 * 1024 * 1024,
        "bytes of images kept at most (results, and inputs of jobs not yet processed); the oldest jobs go first",
    )
    max_body_bytes: int = _setting(16 * 1024 * 1024, "request bodies over this many bytes get 413, unread")
    max_image_pixels: int = _setting(64_000_000, "images declaring more pixels get 415, before decoding")
    # Decoded pixels are what an image costs (Pillow holds 4 bytes a pixel, and processing copies
    # them): counted at the reduced size an operation decodes at (see mock_server.pixel_budget).
    max_request_pixels: int = _setting(
        64_000_000, "pixels one request's images may decode to together; more get 413, before any job"
    )
    max_decoding_pixels: int = _setting(
        64_000_000,
        "pixels the whole process may be decoding and processing at once; more work waits for room",
    )
    decode_wait_seconds: float = _setting(
        10.0, "seconds a sync call (or an image check) waits for room among max_decoding_pixels; longer gets 503"
    )
    # The remove_background page says JPEG and PNG only; its field list says WEBP too.
    rmbg_accept_webp: bool = _setting(
        True,
        "whether remove_background accepts WEBP input",
        flag="--rmbg-webp",
        choices={"accept": True, "reject": False},
        default_text="accept",
    )
    rate_limit: str = _setting(
        "off",
        f"requests per minute per token and endpoint: {_RATE_LIMIT_FORM}",
        parse=parse_rate_limit,
        metavar="PLAN|N",
        allowed=_RATE_LIMIT_FORM,
    )
    journal_max_entries: int = _setting(1000, "journal entries kept; the oldest go first")
    journal_max_bytes: int = _setting(8 * 1024 * 1024, "journal size kept (estimated); the oldest entries go first")
    rules_file: str = _setting(
        "",
        'a JSON file of rules loaded at start (a list, or {"rules": [...]})',
        flag="--rules",
        default_text="none",
        metavar="FILE",
    )
    admin_token: str = _setting(
        "", "required as X-Bria-Mock-Admin-Token on the /bria-mock/ controls when set", default_text="none", metavar="T"
    )
    max_ref_images: int = _setting(10, "reference images replace_background takes at most (more: 400)")
    # Off: image URLs not on the fake answer 460. On: fetched, refusing every address that is
    # not on the public internet, within a size and a time limit (see mock_server.fetch).
    allow_remote_fetch: bool = _setting(False, "fetch remote image URLs (safely); off: they answer 460")
    fetch_max_bytes: int = _setting(12 * 1024 * 1024, "fetched images over this many bytes get 460")
    fetch_timeout_seconds: float = _setting(10.0, "seconds a whole fetch may take; longer gets 460")
    # The status service, the official SDK and bria-mcp say ERROR; one published OpenAPI file says
    # FAILED, and Bria's ComfyUI nodes treat only FAILED as a failure (they poll on ERROR).
    failed_status: str = _setting(
        "ERROR",
        "the status a failed job reports: ERROR (the status service) or FAILED (for clients that wait for it)",
        parse=parse_failed_status,
        allowed="ERROR or FAILED",
        choices={status: status for status in FAILED_STATUSES},
        metavar="ERROR|FAILED",
    )

    # Bria publishes no retry policy for webhooks: these defaults are the fake's own choice.
    webhook_attempts: int = _setting(5, "attempts per webhook delivery: the first and its retries (at least 1)")
    webhook_backoff_seconds: float = _setting(
        1.0, "seconds (fake's clock) before a webhook's first retry; doubled for each retry after it"
    )
    webhook_timeout_seconds: float = _setting(10.0, "seconds a webhook attempt may take; longer is retried")
    # Empty: loopback and private addresses (where the app under test lives). Cloud metadata and
    # link-local addresses are refused whatever the list says (see mock_server.webhook_targets).
    webhook_allowlist: tuple[str, ...] = _setting(
        (),
        "where webhooks may go: addresses, networks (CIDR) or host names; * for any address",
        default_text="loopback and private addresses",
        metavar="NET",
    )
    # A job with webhook_url is not polled: each poll of its timeline counts as this long.
    webhook_seconds_per_poll: float = _setting(
        1.0, "seconds (fake's clock) a poll of a timeline (progress_polls, a job rule's polls) lasts for a webhook job"
    )
    webhook_log_max_entries: int = _setting(1000, "webhook attempts kept; the oldest go first")
    webhook_log_max_bytes: int = _setting(
        8 * 1024 * 1024, "webhook attempts kept (estimated bytes); the oldest go first"
    )

    # Deadlines on connections (see mock_server.connection_limits): a request head that does not arrive
    # in time closes its connection; a body that stalls is answered 408.
    header_timeout_seconds: float = _setting(
        10.0, "seconds a connection has to send a request head (after opening, or after its last answer)"
    )
    body_timeout_seconds: float = _setting(30.0, "seconds a request body has to arrive whole; longer gets 408")

    # A recording (``bria-mock proxy --record``, ``verify --record``) answers the requests it holds
    # before the fake's own operations do (see mock_server.playback).
    playback: str = _setting(
        "",
        "a recording folder whose answers are replayed to the requests it holds; others get the fake's own",
        default_text="none",
        metavar="DIR",
    )
    playback_strict: bool = _setting(
        False, "with playback: a request the recording does not hold gets 404 naming the nearest recorded one"
    )

    # Where state lives (see mock_server.state): this process's memory, or a Redis/Valkey server that
    # several processes (workers, hosts) share so that they act as one fake.
    state: str = _setting(
        "memory",
        "where jobs, results, uploads, rules, the journal, the webhook log, rate limits and the clock live: "
        "memory, or a Redis/Valkey URL that every process naming it shares",
        parse=parse_state,
        allowed=_STATE_FORM,
        metavar="URL",
    )
    # Off: the journal and the inspector show every exchange, and the line costs about a fifth of the
    # requests a second (docs/performance.md).
    access_log: bool = _setting(False, "print a line per request (uvicorn's access log)")
    workers: int = _setting(
        1,
        "server processes (bria-mock serve); with more than 1 and state memory, a private Valkey/Redis server "
        "is started for them",
        parse=parse_workers,
        allowed="a whole number, 1 or more",
    )

    def __post_init__(self) -> None:
        # The settings whose text has a form; checked here too so that Settings(...) in code is checked.
        try:
            per_minute(self.rate_limit)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"rate_limit={self.rate_limit!r}: expected {_RATE_LIMIT_FORM}") from None
        if self.failed_status not in FAILED_STATUSES:
            raise ValueError(f"failed_status={self.failed_status!r}: expected ERROR or FAILED")
        if self.state != "memory" and not self.state.lower().startswith(STATE_SCHEMES):
            raise ValueError(f"state={self.state!r}: expected {_STATE_FORM}")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers!r}: expected a whole number, 1 or more")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``BRIA_MOCK_*`` variables, then explicit overrides (``None`` is ignored).

        Raises ValueError for a ``BRIA_MOCK_*`` variable or an override that names no setting
        (with the closest one), and for a malformed value (with the allowed form).
        """
        environ = os.environ if environ is None else environ
        check_names(name.removeprefix(ENV_PREFIX).lower() for name in environ if _is_setting_variable(name))
        check_names(overrides)
        values = {
            setting.name: setting.read(environ[setting.env_name]) for setting in SETTINGS if setting.env_name in environ
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        check_names(changes)
        return dataclasses.replace(self, **changes)


_USER_PASSWORD = re.compile(r"^([a-z]+://[^:@/?#]*):[^@/?#]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&#]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (in the user part or a ``password=`` query field)."""
    masked = _USER_PASSWORD.sub(r"\1:***@", url, count=1)
    return _QUERY_PASSWORD.sub("***", masked)


def _is_setting_variable(name: str) -> bool:
    return name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS


def _definition(field: dataclasses.Field[Any]) -> Setting:
    details = dict(field.metadata[_META])
    parse, allowed = _PARSERS[str(field.type)]
    if details["choices"]:
        allowed = " or ".join(details["choices"])
    return Setting(
        name=field.name,
        kind=str(field.type),
        default=field.default,
        help=details["help"],
        allowed=details["allowed"] or allowed,
        flag=details["flag"] or "--" + field.name.replace("_", "-"),
        default_text=details["default_text"] or _plain(field.default),
        parse=details["parse"] or parse,
        choices=details["choices"],
        metavar=details["metavar"] or ("S" if field.name.endswith("seconds") else _METAVARS[str(field.type)]),
    )


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


SETTINGS: tuple[Setting, ...] = tuple(_definition(field) for field in dataclasses.fields(Settings))
SETTINGS_BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}


def check_names(names: Iterable[str]) -> None:
    """Raise ValueError for the first name that is no setting, suggesting the closest one."""
    for name in names:
        if name not in SETTINGS_BY_NAME:
            raise ValueError(unknown_setting(name))


def unknown_setting(name: str) -> str:
    """Why ``name`` is refused: the closest setting, or the whole list when none is close."""
    close = difflib.get_close_matches(name, SETTINGS_BY_NAME, n=1, cutoff=0.6)
    hint = (
        f"did you mean {close[0]} ({ENV_PREFIX}{close[0].upper()})?"
        if close
        else f"settings: {', '.join(SETTINGS_BY_NAME)}"
    )
    return f"{name} ({ENV_PREFIX}{name.upper()}) is not a bria-mock setting; {hint}"
