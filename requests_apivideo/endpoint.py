"""Calls to api.video's token endpoints, and how their answers become tokens or errors."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from . import __version__
from .exceptions import ApiVideoAuthError, InvalidApiKeyError
from .token import parse_token

if TYPE_CHECKING:
    from urllib3.connectionpool import ConnectionPool

    from .token import AccessToken, Clock

__all__ = ("TokenEndpoint", "token_session")

log = logging.getLogger(__name__)

HEADERS = {
    "Accept": "application/json",
    "User-Agent": f"requests-apivideo/{__version__} {requests.utils.default_user_agent()}",
}
#: The largest token endpoint answer read, in bytes (a real one is about 1 KiB).
MAX_ANSWER = 64 * 1024

#: What replaces a credential in a message or a kept body.
REDACTED = "[redacted]"

#: A word in a server's text that could be a credential we do not know: 20 or more
#: characters of a bearer token's alphabet. Only server text is searched for these (our own
#: texts keep their long host names and reason codes). Compiled on first use (by re's
#: cache), not at import.
_TOKEN_LIKE = r"[\w.~+/=-]{20,}"  # noqa: S105  (a pattern, not a password)

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


class Secret:
    """A credential held so that no repr, and so no traceback's locals, shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret('[redacted]')"


class TokenEndpoint:
    """POST to ``/auth/api-key`` and ``/auth/refresh`` and turn the answers into tokens.

    No frame of a token call keeps a credential in a plain local variable, and an error's
    ``.response`` is scrubbed of them: tracebacks, crash reports and pickles of the error
    hold no secret.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float, clock: Clock) -> None:
        self.base_url = base_url
        self._api_key = Secret(api_key)
        self.timeout = timeout
        self.clock = clock
        parts = urlsplit(base_url)
        # Plain http is loopback only: a proxy, from the environment or the caller's
        # session, would see the key in clear text (and would reach its own loopback).
        host = parts.hostname or ""
        self._proxies: dict[str, str | None] | None = (
            {key: None for key in ("http", "all", f"http://{host}", f"all://{host}")}
            if parts.scheme == "http"
            else None
        )

    def authenticate(self, session: requests.Session) -> AccessToken:
        """Exchange the API key for a new token.

        :raises InvalidApiKeyError: the endpoint rejected the key (400, 401 or 403).
        :raises ApiVideoAuthError: any other failure.
        """
        return self._post(session, "/auth/api-key", "apiKey", self._api_key)

    def refresh(self, session: requests.Session, refresh_token: str) -> AccessToken:
        """Exchange a refresh token (single-use) for a new token.

        :raises ApiVideoAuthError: any failure, a rejected refresh token included.
        """
        secret = Secret(refresh_token)
        del refresh_token  # from here on, no frame holds it in clear
        return self._post(session, "/auth/refresh", "refreshToken", secret)

    def _post(self, session: requests.Session, path: str, name: str, secret: Secret) -> AccessToken:
        url = self.base_url + path
        sent_at, sent_at_wall = self.clock.monotonic(), self.clock.time()
        response, failure = self._send(session, url, name, secret)
        if response is None:  # raised here, outside any handler: no chained exception
            raise ApiVideoAuthError(failure)
        outcome = self._answer(response, path, secret, sent_at, sent_at_wall)
        if isinstance(outcome, ApiVideoAuthError):
            raise outcome
        return outcome

    def _send(
        self, session: requests.Session, url: str, name: str, secret: Secret
    ) -> tuple[requests.Response | None, str]:
        """POST ``{name: secret}`` and read the answer; return it, or why there is none."""
        response: requests.Response | None = None
        try:
            if not _free_connection(session, url, self._proxies, self.timeout):
                return None, (
                    f"POST {url} failed: no free connection in the session's pool within "
                    f"{self.timeout:g} s (pool_block=True, every connection in use)"
                )
            response = session.post(
                url,
                json={name: secret.value},
                # None removes a default header the caller's session may have. The connection
                # is kept: over TLS on loopback a renewal then costs 2.4x a plain request, not
                # 7.3x (a revocation 4.7x, not 14x); benchmarks/tls_renewal.py (#9).
                headers={"Authorization": None, **HEADERS},  # type: ignore[dict-item]
                timeout=self.timeout,
                allow_redirects=False,  # a 307 would carry the key to wherever it points
                stream=True,  # read below, within a size and time limit
                auth=_no_auth,
                proxies=self._proxies,  # type: ignore[arg-type]  # None: no proxy for that key
            )
            if not isinstance(response, requests.Response):
                kind = type(response).__name__
                response = None
                return None, f"POST {url} failed: the session returned a {kind}, not a Response"
            _read(response, limit=MAX_ANSWER, deadline=time.monotonic() + self.timeout)
        except requests.HTTPError as exc:  # a raise_for_status hook on the caller's session
            response = exc.response
            if response is None:
                return None, f"POST {url} failed: {self._scrub(str(exc), secret)}"
            try:
                _read(response, limit=MAX_ANSWER, deadline=time.monotonic() + self.timeout)
            except Exception:  # the status alone will do
                response._content = b""
        except Exception as exc:  # whatever the transport or a session of the caller's raised
            _redact(getattr(exc, "request", None))
            text = (
                str(exc)
                if isinstance(exc, (requests.RequestException, OSError))
                else (f"{type(exc).__name__}: {exc}")
            )
            return None, f"POST {url} failed: {self._scrub(text, secret)}"
        finally:
            if response is not None:
                with contextlib.suppress(Exception):
                    response.close()
                _redact(response.request)
        return response, ""

    def _answer(
        self,
        response: requests.Response,
        path: str,
        secret: Secret,
        sent_at: float,
        sent_at_wall: float,
    ) -> AccessToken | ApiVideoAuthError:
        """Return the token in ``response``, or the error it means, its body scrubbed."""
        url = self.base_url + path
        answer = _json(response.content or b"")
        status = response.status_code
        if status == 200:
            try:
                token = parse_token(answer, sent_at=sent_at, sent_at_wall=sent_at_wall)
            except ValueError as exc:
                failure = f"POST {url} answered 200 with a malformed token: {exc}"
            else:
                log.debug("token from %s, expires in %.0f s", path, token.expires_in)
                return token
            self._scrub_body(response, answer, secret)
            return ApiVideoAuthError(failure, response=response)
        message = f"POST {url} answered {status}"
        title = answer.get("title") if isinstance(answer, dict) else None
        if isinstance(title, str) and title:
            message += f": {self._scrub_server_text(' '.join(title.split()), secret)[:300]}"
        self._scrub_body(response, answer, secret)
        if status in (404, 405):
            message += " (no token endpoint at this base URL: give the API's root, not a path)"
            return ApiVideoAuthError(message, response=response)
        if path == "/auth/api-key" and status in (400, 401, 403):
            message += " (is the key for this environment? sandbox keys need sandbox=True)"
            return InvalidApiKeyError(message, response=response)
        return ApiVideoAuthError(message, response=response)

    # -- scrubbing ----------------------------------------------------------------------

    def _scrub(self, text: str, secret: Secret, *more: str) -> str:
        """Return ``text`` with the credentials we know replaced, in one pass.

        For text of our own making (transport errors name hosts, TLS reasons, classes):
        nothing else is touched. One pass, so a short key cannot redact its own marker.
        """
        known = sorted({s for s in (self._api_key.value, secret.value, *more) if s}, key=len)
        pattern = "|".join(re.escape(s) for s in reversed(known))
        return re.sub(pattern, REDACTED, text) if pattern else text

    def _scrub_server_text(self, text: str, secret: Secret, *more: str) -> str:
        """Return server-supplied text with known credentials and token-shaped words replaced.

        Invisible characters go first (they could split a secret).
        """
        text = "".join(c for c in text if c.isprintable() or c in "\n\t")
        return re.sub(_TOKEN_LIKE, REDACTED, self._scrub(text, secret, *more))

    def _scrub_body(self, response: requests.Response, answer: object, secret: Secret) -> None:
        """Replace the body kept on an error's ``response`` by a copy without credentials.

        A JSON answer stays JSON (its strings are scrubbed); the tokens a malformed 200
        carried are among the credentials replaced.
        """
        fields = answer if isinstance(answer, dict) else {}
        values = [fields.get(name) for name in ("access_token", "refresh_token")]
        issued = [value for value in values if isinstance(value, str)]

        def clean(value: object) -> object:
            if isinstance(value, str):
                return self._scrub_server_text(value, secret, *issued)
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {clean(k): clean(v) for k, v in value.items()}
            return value

        try:
            if answer is None:
                raise ValueError("not JSON")
            body = json.dumps(clean(answer)).encode()
        except (ValueError, RecursionError):
            text = (response.content or b"").decode("utf-8", "replace")
            body = self._scrub_server_text(text, secret, *issued).encode()
        response._content = body
        response.encoding = "utf-8"


def _free_connection(
    session: requests.Session, url: str, proxies: dict[str, str | None] | None, timeout: float
) -> bool:
    """Wait up to ``timeout`` for the session's pool for ``url`` to have a free connection.

    Only a pool made with ``pool_block=True`` can make a request wait for a connection, and
    it waits without a bound: a token call, which holds the renewal lock, must not. Another
    thread can still take the connection freed in between; it is then busy with a request
    of its own, bounded by that request's timeouts. Return ``False`` if none came free.
    """
    adapter = session.get_adapter(url)
    if not isinstance(adapter, HTTPAdapter) or not getattr(adapter, "_pool_block", False):
        return True
    try:
        settings = session.merge_environment_settings(
            url,
            dict(proxies or {}),  # type: ignore[arg-type]  # None: no proxy for that key
            True,
            None,
            None,
        )
        pool = adapter.get_connection_with_tls_context(
            requests.Request("POST", url).prepare(),
            settings["verify"],
            proxies=settings["proxies"],
            cert=settings["cert"],
        )
        waiting = pool.pool
    except Exception:  # an adapter of its own kind: let the call itself tell
        return True
    deadline = time.monotonic() + timeout
    while waiting is not None and waiting.empty():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _read(response: requests.Response, *, limit: int, deadline: float) -> bytes:
    """Read an answer of at most ``limit`` bytes before ``deadline``, or raise OSError.

    ``read1`` returns whatever has arrived, so a server that trickles its answer a byte at
    a time is cut off at the deadline (plus one read's ``timeout`` at most). Answers that
    are not urllib3's (a WSGI adapter, a test double) are read as requests reads them, and
    one that a hook of the caller's session has read already is taken as it is.
    """
    if response._content is not False:  # read already
        body = response._content or b""
        if len(body) > limit:
            raise OSError(f"the answer is larger than {limit} bytes")
        return body
    raw = response.raw
    chunks: list[bytes] = []
    size = 0
    if isinstance(raw, BaseHTTPResponse):
        pieces: Iterator[bytes] = iter(lambda: raw.read1(8192, decode_content=True), b"")
    else:
        pieces = response.iter_content(8192)
    for chunk in pieces:
        size += len(chunk)
        if size > limit:
            raise OSError(f"the answer is larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise OSError("the answer took longer than the timeout to arrive")
        chunks.append(chunk)
    response._content = body = b"".join(chunks)  # so that .json() works for the caller
    response._content_consumed = True
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
