"""Calls to api.video's token endpoints, and how their answers become tokens or errors."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from . import __version__
from .exceptions import ApiVideoAuthError, InvalidApiKeyError
from .token import parse_token

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

    from .token import AccessToken, Clock

__all__ = ("TokenEndpoint", "token_session")

log = logging.getLogger(__name__)

HEADERS = {
    "Accept": "application/json",
    "User-Agent": f"requests-apivideo/{__version__} {requests.utils.default_user_agent()}",
}
#: The largest token endpoint answer read, in bytes (a real one is about 1 KiB).
MAX_ANSWER = 64 * 1024

_TOKEN_LIKE = re.compile(r"[\w.~+/=-]{20,}")

#: Statuses of a token call that are answered again after a back-off.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TokenRetry(Retry):
    """A bounded :class:`~urllib3.util.retry.Retry` for token calls.

    Retries connection failures and 429/500/502/503/504, honouring ``Retry-After`` (and
    api.video's ``X-RateLimit-Retry-After``) up to :attr:`MAX_RETRY_AFTER` seconds; a
    longer wait is not waited for: the answer is returned at once.
    """

    #: The longest ``Retry-After`` waited for, in seconds.
    MAX_RETRY_AFTER = 5.0

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """Return the wait the server asked for, from either header."""
        value = response.headers.get("Retry-After") or response.headers.get(
            "X-RateLimit-Retry-After"
        )
        if value is None:
            return None
        try:
            return self.parse_retry_after(value)
        except Exception:  # an unreadable header means: back off as usual
            return None

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: Any = None,
    ) -> TokenRetry:
        """Count one more try; give up at once on a ``Retry-After`` above the cap."""
        if response is not None:
            wait = self.get_retry_after(response)
            if wait is not None and wait > self.MAX_RETRY_AFTER:
                reason = ResponseError(f"Retry-After {wait:.0f} s is too long to wait")
                raise MaxRetryError(_pool, url, reason)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)


def token_session(base_url: str) -> requests.Session:
    """Return a new session for token calls to ``base_url``, with bounded retries mounted.

    ``/auth/api-key`` is asked again after an error status or a lost answer: a second
    token costs nothing. ``/auth/refresh`` only after a failed connection: its token is
    single-use and the server may have spent it; the caller falls back to the key anyway.
    """
    session = requests.Session()
    shared: HTTPAdapter | None = None
    for path, reads, statuses in (("/auth/api-key", 1, 2), ("/auth/refresh", 0, 0)):
        retry = TokenRetry(
            total=2,
            connect=2,
            read=reads,
            status=statuses,
            other=0,
            allowed_methods=frozenset({"POST"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=0.25,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        if shared is None:
            shared = adapter
        else:  # one pool for both paths: a failed refresh's API-key call reuses its connection
            adapter.poolmanager = shared.poolmanager
        session.mount(base_url + path, adapter)
    return session


def _no_auth(r: requests.PreparedRequest) -> requests.PreparedRequest:
    # Token calls must carry no Authorization of any kind, even when the caller's
    # session has an ``auth`` (perhaps this very ApiVideoAuth) or a netrc entry.
    return r


class TokenEndpoint:
    """POST to ``/auth/api-key`` and ``/auth/refresh`` and turn the answers into tokens."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float, clock: Clock) -> None:
        self.base_url = base_url
        self._api_key = api_key
        self.timeout = timeout
        self.clock = clock

    def authenticate(self, session: requests.Session) -> AccessToken:
        """Exchange the API key for a new token.

        :raises InvalidApiKeyError: the endpoint rejected the key (a 4xx).
        :raises ApiVideoAuthError: any other failure.
        """
        return self._post(session, "/auth/api-key", {"apiKey": self._api_key})

    def refresh(self, session: requests.Session, refresh_token: str) -> AccessToken:
        """Exchange a refresh token (single-use) for a new token.

        :raises ApiVideoAuthError: any failure, a rejected refresh token included.
        """
        return self._post(session, "/auth/refresh", {"refreshToken": refresh_token})

    def _post(self, session: requests.Session, path: str, payload: dict[str, str]) -> AccessToken:
        url = self.base_url + path
        sent_at, sent_at_wall = self.clock.monotonic(), self.clock.time()
        failure: str | None = None
        response: requests.Response | None = None
        try:
            response = session.post(
                url,
                json=payload,
                # None removes a default header the caller's session may have. The connection
                # is kept: over TLS on loopback a renewal then costs 2.4x a plain request, not
                # 7.3x (a revocation 4.7x, not 14x); benchmarks/tls_renewal.py (#9).
                headers={"Authorization": None, **HEADERS},  # type: ignore[dict-item]
                timeout=self.timeout,
                allow_redirects=False,  # a 307 would carry the key to wherever it points
                stream=True,  # read below, within a size and time limit
                auth=_no_auth,
            )
            body = _read(response, limit=MAX_ANSWER, deadline=time.monotonic() + self.timeout)
        except requests.HTTPError as exc:  # a raise_for_status hook on the caller's session
            response, body = exc.response, b""
            if response is None:
                failure = f"POST {url} failed: {exc}"
        except (requests.RequestException, OSError, HTTPError) as exc:
            failure = f"POST {url} failed: {self._scrub(str(exc), payload)}"
            _redact(getattr(exc, "request", None))
        finally:
            if response is not None:
                response.close()
                _redact(response.request)
        if failure is not None or response is None:  # raised here, outside the handler:
            raise ApiVideoAuthError(failure)  # no chained exception holds the body
        answer = _json(body)
        if response.status_code == 200:
            try:
                token = parse_token(answer, sent_at=sent_at, sent_at_wall=sent_at_wall)
            except ValueError as exc:
                failure = f"POST {url} answered 200 with a malformed token: {exc}"
            else:
                log.debug("token from %s, expires in %.0f s", path, token.expires_in)
                return token
            raise ApiVideoAuthError(failure, response=response)
        message = f"POST {url} answered {response.status_code}"
        title = answer.get("title") if isinstance(answer, dict) else None
        if isinstance(title, str) and title:
            message += f": {self._scrub(title, payload)}"
        status = response.status_code
        if path == "/auth/api-key" and 400 <= status < 500 and status not in (408, 429):
            message += " (is the key for this environment? sandbox keys need sandbox=True)"
            raise InvalidApiKeyError(message, response=response)
        raise ApiVideoAuthError(message, response=response)

    def _scrub(self, text: str, payload: dict[str, str]) -> str:
        """Return server-supplied text fit for a message: short, printable, no secret.

        Invisible characters go first (they could split a secret), the cut comes last (it
        could leave part of one).
        """
        text = "".join(c for c in text if c.isprintable())
        for secret in (self._api_key, *payload.values()):
            text = text.replace(secret, "[redacted]")
        return _TOKEN_LIKE.sub("[redacted]", text)[:300]  # any other credential-looking word


def _read(response: requests.Response, *, limit: int, deadline: float) -> bytes:
    """Read an answer of at most ``limit`` bytes before ``deadline``, or raise OSError.

    ``read1`` returns whatever has arrived, so a server that trickles its answer a byte at
    a time is cut off at the deadline (plus one read's ``timeout`` at most).
    """
    chunks: list[bytes] = []
    size = 0
    read1 = response.raw.read1
    while chunk := read1(8192, decode_content=True):
        size += len(chunk)
        if size > limit:
            raise OSError(f"the answer is larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise OSError("the answer took longer than the timeout to arrive")
        chunks.append(chunk)
    response._content = body = b"".join(chunks)  # so that .json() works for the caller
    return body


def _json(body: bytes) -> object:
    """Return the JSON value of ``body``, or ``None`` if it is not (readable) JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _redact(request: object) -> None:
    """Drop the key or refresh token from a token call kept on a response or an error."""
    if isinstance(request, requests.PreparedRequest):
        request.body = b"[redacted]"
