"""Which service the contract suite talks to: the fake (default) or a live base URL with a token."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from mock_server.config import Settings
from mock_server.verify import BASE_URL_VARIABLE, FAKE_TARGET, TOKEN_VARIABLE, is_bria_mock

# Any token works on the fake; this one says where a request in its logs came from.
FAKE_TOKEN = "bria-mock-contract-suite"
BRIA_MOCK_LABEL = "a bria-mock, not Bria's service"


@dataclasses.dataclass(frozen=True)
class TargetChoice:
    """The target as chosen by options and environment, before any server is started."""

    base_url: str | None  # None: the fake, served for the run
    token: str | None
    source: str  # where the choice came from, for the report header
    bria_mock: bool = False  # the URL answers as a bria-mock, not as Bria's service

    @property
    def live(self) -> bool:
        return self.base_url is not None

    def identified(self) -> TargetChoice:
        """This choice, with whether a URL target is in fact a bria-mock (asked once, over HTTP)."""
        if self.base_url is None:
            return self
        return dataclasses.replace(self, bria_mock=is_bria_mock(self.base_url))

    def describe(self) -> str:
        """Where the suite runs and why, for the first line of the header and the report."""
        if self.base_url is None:
            return f"the fake, on a local port (from {self.source})"
        kind = BRIA_MOCK_LABEL if self.bria_mock else "live"
        return f"{self.base_url} ({kind}, from {self.source})"

    def missing_token_reason(self) -> str | None:
        """Why live tests cannot run, or None when they can."""
        if self.live and not self.token:
            return (
                f"live target {self.base_url} chosen ({self.source}) but no token: "
                f"pass --bria-token or set {TOKEN_VARIABLE}"
            )
        return None


def choose_target(option_url: str | None, option_token: str | None, environ: Mapping[str, str]) -> TargetChoice:
    """Options win over the environment; neither means the fake, and so does ``--bria-target fake``."""
    token = option_token or environ.get(TOKEN_VARIABLE) or None
    if option_url == FAKE_TARGET:
        return TargetChoice(None, FAKE_TOKEN, f"--bria-target {FAKE_TARGET}")
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
    bria_mock: bool = False  # a URL target that answers as a bria-mock

    @property
    def live(self) -> bool:
        return self.settings is None

    @property
    def label(self) -> str:
        if not self.live:
            return f"{self.base_url} (the fake, on a local port)"
        return f"{self.base_url} ({BRIA_MOCK_LABEL if self.bria_mock else 'live'})"

    def url(self, path: str) -> str:
        """An absolute URL on the target, e.g. ``url("/samples/subject.jpg")``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def polls_until_terminal(self) -> int | None:
        """On the fake, how many polls a job takes at most to end (its configured progression)."""
        if self.settings is None or self.settings.progress_seconds:
            return None
        return self.settings.progress_polls + 1
