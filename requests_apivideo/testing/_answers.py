"""api.video's answers, whatever carries them: problems, token calls, 401s (no I/O here)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._state import TokenState

__all__ = [
    "DROP",
    "NOT_FOUND",
    "Answer",
    "Fault",
    "Request",
    "json_answer",
    "problem",
    "token_call",
    "unauthorized",
]

_DOCS = "https://docs.api.video/reference/"


@dataclass(frozen=True)
class Fault:
    """Describe one injected answer to a token call.

    ``status=0`` closes the connection without an answer. ``body=None`` sends an RFC 7807 problem
    for ``status``, except that ``status=200`` sends the normal answer (a slow token call).
    ``headers`` are added to the answer; ``delay`` is how long the server waits before answering.
    """

    status: int = 503
    body: bytes | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.status != 0 and not 200 <= self.status <= 599:
            raise ValueError(f"Fault status must be 0 or 200-599, not {self.status}")
        if not self.delay >= 0:
            raise ValueError(f"Fault delay must be >= 0, not {self.delay}")


@dataclass(frozen=True)
class Request:
    """One request as an emulator received it: the body is its first MiB, measured whole."""

    method: str
    target: str  # the path with its query, as sent
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # names compare case-insensitively
    body: bytes
    size: int
    sha256: str
    base_url: str  # of the emulator that received it, for links in answers


@dataclass(frozen=True)
class Answer:
    """One answer: status, headers and body; ``status=0`` drops the connection unanswered."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


DROP = Answer(0)

NOT_FOUND: dict[str, Any] = {
    "type": _DOCS + "resource-not-found",
    "title": "The requested resource was not found.",
    "status": 404,
}

_UNAUTHORIZED = {
    "missing-authorization-header": 'The "Authorization" header is missing.',
    "invalid-api-key": "The API key is invalid.",
    "invalid-access-token": "The access token is invalid or expired.",
}


def problem(
    status: int, kind: str | None = None, title: str | None = None, **extra: str
) -> dict[str, Any]:
    """Build an RFC 7807 problem body shaped like api.video's."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    if status == 429 and kind is None:
        kind, title = "too-many-requests", "Too many requests."
    return {
        "type": _DOCS + kind if kind else "about:blank",
        "title": title,
        **extra,
        "status": status,
    }


def json_answer(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
    """Answer ``payload`` as JSON; an error is an RFC 7807 ``application/problem+json``."""
    content_type = "application/problem+json" if status >= 400 else "application/json"
    return Answer(
        status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})}
    )


def token_call(
    state: TokenState, refresh: bool, body: bytes, wait: Callable[[float], bool]
) -> Answer:
    """Answer ``/auth/api-key`` or ``/auth/refresh``, or the next injected fault.

    ``wait(seconds)`` waits out a fault's delay; it returns True if the emulator is stopping,
    and then the call is dropped unanswered.
    """
    fault = state.token_call(refresh)
    headers = dict(fault.headers) if fault else {}
    if fault is not None and fault.delay and wait(fault.delay):
        return DROP
    if fault is not None and fault.status == 0:
        return DROP
    if fault is not None and fault.body is not None:
        data = fault.body.encode() if isinstance(fault.body, str) else fault.body
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return Answer(fault.status, data, headers)
    if fault is not None and fault.status != 200:
        return json_answer(fault.status, problem(fault.status), headers)
    try:
        credential = json.loads(body).get("refreshToken" if refresh else "apiKey")
    except (ValueError, AttributeError):
        credential = None
    answer = state.exchange(refresh, credential)
    if answer is not None:
        return json_answer(200, answer, headers)
    status = state.invalid_key_status
    rejected = problem(
        status,
        "authentication-invalid-user-credentials",
        "The user credentials were incorrect.",
        name="",
    )
    return json_answer(status, rejected, headers)


def unauthorized(kind: str, cookie: str | None = None) -> Answer:
    """Answer 401 for a protected endpoint, as ``TokenState.authorize`` found (``kind``)."""
    body = problem(401, "authentication-" + kind, "Unauthorized", detail=_UNAUTHORIZED[kind])
    return json_answer(401, body, {"Set-Cookie": cookie} if cookie else {})
