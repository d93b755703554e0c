"""Vendor-named errors, Bria's error envelope, and the one place any exception becomes an answer.

Every failure the fake answers with is a :class:`BriaError`; :func:`error_answer` renders it (and
anything else raised while serving: a crash is recorded in the :class:`CrashLog` and answered as a
500 in the same envelope). Handlers, the traffic layer and the router all answer errors through it.
"""

from __future__ import annotations

import collections
import http
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from starlette.requests import ClientDisconnect

from mock_server.responses import JSONResponse

# Bria's own status code: not in the IANA registry, so http.HTTPStatus does not know it.
DOWNLOAD_FAILED = 460
_REASONS = {DOWNLOAD_FAILED: "Failed to download image"}
MAX_DETAILS = 500
MAX_CRASHES = 100  # kept for the pytest plugin; each holds its traceback
logger = logging.getLogger("mock_server")


def reason_phrase(status_code: int) -> str:
    """The standard reason phrase for a status code (460: Bria's "Failed to download image")."""
    if status_code in _REASONS:
        return _REASONS[status_code]
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def error_object(status_code: int, details: str) -> dict[str, Any]:
    """The ``error`` member of the envelope (and of a status body in ERROR)."""
    return {"code": status_code, "message": reason_phrase(status_code), "details": details}


def envelope(status_code: int, details: str, request_id: str) -> dict[str, Any]:
    """Bria's error body: ``{"error": {"code", "message", "details"}, "request_id"}``."""
    return {"error": error_object(status_code, details), "request_id": request_id}


class BriaError(Exception):
    """Base of every error the fake answers with; the app's exception handler renders it.

    ``details`` is the human-readable explanation that ends up in ``error.details``;
    it names the offending field where there is one.
    """

    status_code: ClassVar[int] = 500

    def __init__(self, details: str, *, headers: Mapping[str, str] | None = None) -> None:
        if len(details) > MAX_DETAILS:  # details may echo the input: never echo a megabyte back
            details = details[: MAX_DETAILS - 1] + "…"
        super().__init__(details)
        self.details = details
        self.headers = dict(headers or {})
        self.replacement_body: Any = None  # a fault rule's own body for this answer

    def body(self, request_id: str) -> Any:
        """The JSON body to send; the envelope unless a subclass (or a rule's ``body``) says otherwise."""
        if self.replacement_body is not None:
            return self.replacement_body
        return envelope(self.status_code, self.details, request_id)

    def as_object(self) -> dict[str, Any]:
        """The envelope's ``error`` member: also what a status body in ERROR or UNKNOWN carries."""
        return error_object(self.status_code, self.details)


class BadRequest(BriaError):
    """400: missing or invalid parameters."""

    status_code = 400


class Unauthorized(BriaError):
    """401: missing or invalid ``api_token``."""

    status_code = 401


class Forbidden(BriaError):
    """403: the token is valid but not entitled (billing, plan or quota); also the fake's own controls
    refusing a caller (another machine without an admin token, a foreign Host or Origin)."""

    status_code = 403


class ImageNotFound(BriaError):
    """404: the image could not be found at the provided URL, or the route does not exist."""

    status_code = 404


class MethodNotAllowed(BriaError):
    """405: the route exists but not for this method."""

    status_code = 405


class RequestTimeout(BriaError):
    """408: the request body did not arrive whole in time (``body_timeout_seconds``): the fake's own guard."""

    status_code = 408


class PayloadTooLarge(BriaError):
    """413: the request body is over the configured limit."""

    status_code = 413


class UnsupportedMediaType(BriaError):
    """415: the image's file type or colour mode is not supported, or it cannot be decoded."""

    status_code = 415


class ModerationFailed(BriaError):
    """422: a content-moderation check failed; ``details`` names which one."""

    status_code = 422


class TooManyRequests(BriaError):
    """429: request limit exceeded."""

    status_code = 429


class DownloadFailed(BriaError):
    """460: Bria's code for an image URL that could not be downloaded."""

    status_code = DOWNLOAD_FAILED


class ServerError(BriaError):
    """5XX: an internal error; the status code is chosen per instance (500, 502, 503, 504)."""

    def __init__(self, details: str, *, status_code: int = 500, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(details, headers=headers)
        self.status_code = status_code  # type: ignore[misc]  # instance override of the class default


class JobNotFound(BriaError):
    """404 of the status service.

    Deviation from the envelope, as the status service documents: its 404 body is
    ``{"status": "NOT_FOUND"}``.
    """

    status_code = 404

    def body(self, request_id: str) -> Any:
        return {"status": "NOT_FOUND"}


def internal_error(exc: BaseException) -> ServerError:
    """The 500 a bug in the fake answers with: the envelope, naming the exception's type only."""
    return ServerError(f"bria-mock internal error: {type(exc).__name__}")


_BY_CODE: dict[int, type[BriaError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        ImageNotFound,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        ModerationFailed,
        TooManyRequests,
        DownloadFailed,
    )
}


def error_for_code(status_code: int, details: str) -> BriaError:
    """The error that answers with ``status_code`` (a job's ending, a fault rule's error)."""
    cls = _BY_CODE.get(status_code)
    return cls(details) if cls else ServerError(details, status_code=status_code)


class CrashLog:
    """Exceptions raised while serving (bugs in the fake), oldest first, each recorded once.

    The pytest plugin re-raises them in the test that caused them instead of leaving a bare 500.
    """

    def __init__(self, keep: int = MAX_CRASHES) -> None:
        self._crashes: collections.deque[BaseException] = collections.deque(maxlen=keep)

    def record(self, exc: BaseException, where: str) -> None:
        """Log a crash with its traceback and keep it (once, however many layers see it)."""
        if any(known is exc for known in self._crashes):
            return
        logger.error("bria-mock crashed %s", where, exc_info=exc)
        self._crashes.append(exc)

    def clear(self) -> None:
        self._crashes.clear()

    def __iter__(self) -> Iterator[BaseException]:
        return iter(list(self._crashes))

    def __len__(self) -> int:
        return len(self._crashes)

    def __getitem__(self, index: int) -> BaseException:
        return self._crashes[index]


def is_crash(exc: BaseException) -> bool:
    """Whether an exception is a bug in the fake (not an answer it meant to give, nor a client leaving)."""
    return not isinstance(exc, BriaError | ClientDisconnect)


def error_answer(exc: BaseException, request_id: str, crashes: CrashLog, where: str) -> JSONResponse:
    """The one place an exception becomes an answer: a ``BriaError`` in its envelope (or its own
    body), a client that left mid-body as 400, anything else a recorded crash answered as 500."""
    if isinstance(exc, BriaError):
        error = exc
    elif isinstance(exc, ClientDisconnect):  # the client left mid-body: nobody to answer, no bug
        error = BadRequest("body: the client disconnected")
    else:
        crashes.record(exc, where)
        error = internal_error(exc)
    return JSONResponse(error.body(request_id), status_code=error.status_code, headers=error.headers)
