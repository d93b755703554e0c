"""The per-request context: what the traffic layer learns of a request, handed down to its handler.

One typed object, reached through :func:`context_of`, instead of string keys that several
modules write into ``scope["state"]``. The body is read once (by the traffic layer, under the
size limit) and parsed at most once, when a rule or the handler first needs it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from mock_server.bodies import parse_json_or_error
from mock_server.errors import BadRequest
from mock_server.ids import new_request_id

if TYPE_CHECKING:
    from starlette.types import Scope

    from mock_server.rules import Rule

_KEY = "bria_mock"  # the one key in scope["state"]
_UNPARSED: Any = object()


@dataclasses.dataclass(eq=False)
class RequestContext:
    """One request's facts: its id, its body (raw and parsed), the job rule that shapes its job and
    the header rules that act on its webhook."""

    request_id: str = dataclasses.field(default_factory=new_request_id)
    raw: bytes = b""
    job_rule: dict[str, Any] | None = None  # a ``job`` action that fired for this request
    webhook_rules: tuple[Rule, ...] = ()  # its header's rules on webhooks: they act on its job's delivery
    _json: Any = dataclasses.field(default=_UNPARSED, repr=False)  # the parsed body, or the BadRequest why not

    def parsed(self, value: Any) -> None:
        """Hand over a parse done elsewhere (off the event loop, for a large body)."""
        self._json = value

    def json(self) -> Any:
        """The body's JSON value; raises the 400 saying why when the body is not JSON."""
        if self._json is _UNPARSED:
            self._json = parse_json_or_error(self.raw)
        if isinstance(self._json, BadRequest):
            raise self._json
        return self._json

    def json_or_none(self) -> Any:
        """The body's JSON value, or None when it is not JSON (for rules, which match bodies)."""
        try:
            return self.json()
        except BadRequest:
            return None


def context_of(source: HTTPConnection | Scope) -> RequestContext:
    """The context of a request (made on first use: routes outside the traffic layer get one too)."""
    # (type(), not isinstance(): HTTPConnection is a Mapping, and an ABC check costs on every request)
    scope: Scope = source if type(source) is dict else source.scope  # type: ignore[union-attr]
    state = scope.setdefault("state", {})
    context = state.get(_KEY)
    if context is None:
        context = state[_KEY] = RequestContext()
    return context  # type: ignore[no-any-return]
