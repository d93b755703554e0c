"""Which service the contract suite talks to: the fake (default) or a live base URL with a token."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from mock_server.config import Settings
from mock_server.verify import BASE_URL_VARIABLE, TOKEN_VARIABLE

# Any token works on the fake; this one says where a request in its logs came from.
FAKE_TOKEN = "bria-mock-contract-suite"


@dataclasses.dataclass(frozen=True)
class TargetChoice:
    """The target as chosen by options and environment, before any server is started."""

    base_url: str | None  # None: the fake, served for the run
    token: str | None
    source: str  # where the choice came from, for the report header

    @property
    def live(self) -> bool:
        return self.base_url is not None

    def missing_token_reason(self) -> str | None:
        """Why live tests cannot run, or None when they can."""
        if self.live and not self.token:
            return (
                f"live target {self.base_url} chosen ({self.source}) but no token: "
                f"pass --bria-token or set {TOKEN_VARIABLE}"
            )
        return None


def choose_target(option_url: str | None, option_token: str | None, environ: Mapping[str, str]) -> TargetChoice:
    """Options win over the environment; neither means the fake."""
    token = option_token or environ.get(TOKEN_VARIABLE) or None
    if option_url:
        return TargetChoice(option_url.rstrip("/"), token, "--bria-target")
    if environ.get(BASE_URL_VARIABLE):
        return TargetChoice(environ[BASE_URL_VARIABLE].rstrip("/"), token, BASE_URL_VARIABLE)
    return TargetChoice(None, FAKE_TOKEN, "default")


@dataclasses.dataclass(frozen=True)
class Target:
    """A running target: where it is, the token to send, and, for the fake, its settings."""

    base_url: str
    token: str
    settings: Settings | None = None  # the fake's settings; None for a live service

    @property
    def live(self) -> bool:
        return self.settings is None

    @property
    def label(self) -> str:
        return f"{self.base_url} ({'live' if self.live else 'the fake, in-process'})"

    def url(self, path: str) -> str:
        """An absolute URL on the target, e.g. ``url("/samples/subject.jpg")``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def polls_until_terminal(self) -> int | None:
        """On the fake, how many polls a job takes at most to end (its configured progression)."""
        if self.settings is None or self.settings.progress_seconds:
            return None
        return self.settings.progress_polls + 1
