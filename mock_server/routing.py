"""Routes as data, and the one router that matches them.

A route names the endpoint that rules, rate limits and the journal know it by (``traffic``);
routes without one are the fake's own controls, which the traffic layer leaves alone. Static
paths are found by one dict lookup, so the router's cost does not grow with the operation table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.routing import compile_path

from mock_server.errors import BriaError, ImageNotFound, MethodNotAllowed
from mock_server.operations import OTHER

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Scope

Endpoint = Callable[["Request"], Awaitable["Response"]]


@dataclasses.dataclass(frozen=True)
class Route:
    """One method on one path pattern (``{name}`` segments become ``path_params``)."""

    method: str
    path: str
    endpoint: Endpoint
    traffic: str | None = None  # the endpoint name for rules and the journal; None: a control

    @property
    def is_static(self) -> bool:
        return "{" not in self.path


@dataclasses.dataclass(frozen=True)
class Match:
    """Where a request goes: its route and path parameters, or the error that answers it instead."""

    traffic: str | None
    route: Route | None = None
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    error: BriaError | None = None


class Router:
    """Matches a request to a route; a known path with another method is 405, anything else 404."""

    def __init__(self, routes: Iterable[Route], controls_prefix: str) -> None:
        self._static: dict[str, dict[str, Route]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Route], str | None]] = []
        self._controls_prefix = controls_prefix
        for route in routes:
            self._add(route)

    def _add(self, route: Route) -> None:
        if route.is_static:
            self._static.setdefault(route.path, {})[route.method] = route
            return
        regex = compile_path(route.path)[0]
        for pattern, methods, _ in self._patterns:
            if pattern.pattern == regex.pattern:
                methods[route.method] = route
                return
        self._patterns.append((regex, {route.method: route}, route.traffic))

    def match(self, scope: Scope) -> Match:
        path: str = scope["path"]
        methods = self._static.get(path)
        params: dict[str, str] = {}
        if methods is None:
            methods, params = self._match_pattern(path)
        if methods is None:
            traffic = None if path.startswith(self._controls_prefix) else OTHER
            return Match(traffic, error=ImageNotFound(f"no route {scope['method']} {path}"))
        method = scope["method"]
        route = methods.get("GET" if method == "HEAD" else method)  # HEAD is GET without the body (as Starlette's)
        traffic = next(iter(methods.values())).traffic
        if route is None:
            allowed = ", ".join(sorted(methods))
            error = MethodNotAllowed(f"{scope['method']} is not allowed on {path}", headers={"Allow": allowed})
            return Match(traffic, error=error)
        return Match(traffic, route, params)

    def _match_pattern(self, path: str) -> tuple[dict[str, Route] | None, dict[str, str]]:
        for pattern, methods, _ in self._patterns:
            found = pattern.match(path)
            if found:
                return methods, found.groupdict()
        return None, {}

    def routes(self) -> Sequence[Route]:
        """Every route, static first."""
        static = [route for methods in self._static.values() for route in methods.values()]
        return [*static, *(route for _, methods, _ in self._patterns for route in methods.values())]
