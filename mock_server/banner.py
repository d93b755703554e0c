"""What ``bria-mock serve`` says once it listens: where the API, the samples, the controls and the
OpenAPI document are, and which tokens it accepts (uvicorn's own banner names only the address)."""

from __future__ import annotations

import socket

import uvicorn

from mock_server.config import Settings, mask_password
from mock_server.operations import OPERATIONS, STATUS_PATH

# Shown as an address to open: a wildcard interface is reached through loopback on this machine.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints :func:`banner` once it is listening (and so knows its port)."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(banner(self.settings, base_url(str(host), int(port))), flush=True)


def base_url(host: str, port: int) -> str:
    """The address a person on this machine opens for a listening ``host`` and ``port``."""
    shown = "127.0.0.1" if host in _WILDCARDS else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def banner(settings: Settings, url: str, *, state: str | None = None) -> str:
    """The lines that tell a newcomer where everything is, which token rule is in force and where state lives.

    ``state`` says where state lives when the setting alone does not (a private server started for the workers).
    """
    first, *others = OPERATIONS
    named = ", ".join(op.name for op in others[:3])
    lines = [
        f"bria-mock is serving on {url} (Ctrl-C stops it)",
        f"  API:      {first.method} {url}{first.path}",
        f"            ... and {len(others)} more operations ({named}, ...: see /openapi.json)",
        f"            GET  {url}{STATUS_PATH}{{request_id}}",
        f"  samples:  {url}/samples/subject.jpg (and subject.png, subject.webp, background.jpg, ...)",
        f"  controls: {url}/bria-mock/ (rules, reset, journal, clock, rate-limit, state); {_admin_rule(settings)}",
        f"  OpenAPI:  {url}/openapi.json",
        f"  inspector: {url}/bria-mock/ui (what the fake saw and made, in a browser)",
        f"  tokens:   {_token_rule(settings)}",
        f"  workers:  {settings.workers} process{'es' if settings.workers > 1 else ''} on this port",
        f"  state:    {state or _state_place(settings)}",
    ]
    if settings.public_url:
        lines.append(f"  URLs handed out start with {settings.public_url}")
    return "\n".join(lines)


def _token_rule(settings: Settings) -> str:
    if not settings.tokens:
        return "any non-empty api_token header is accepted"
    count = len(settings.tokens)
    return (
        f"only the {count} api_token value{'s' if count > 1 else ''} given (--token / BRIA_MOCK_TOKENS) "
        "are accepted; trigger tokens such as bria-mock-503 always work"
    )


def _admin_rule(settings: Settings) -> str:
    if settings.admin_token:
        return "they need the header X-Bria-Mock-Admin-Token"
    return "they answer callers on this machine only"


def _state_place(settings: Settings) -> str:
    if settings.state == "memory":
        return "memory (this process's own: a restart loses it)"
    return f"{mask_password(settings.state)} (shared by every process that names it)"
