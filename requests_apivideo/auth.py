"""The requests authentication handler for api.video."""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import math
import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase
from requests.cookies import get_cookie_header
from requests.sessions import preferred_clock

from .endpoint import TokenEndpoint
from .exceptions import ApiVideoAuthError
from .store import shared_state
from .token import advisory_margin

if TYPE_CHECKING:
    from .token import AccessToken, Clock

__all__ = ("API_KEY_ENV", "DEFAULT_BASE_URL", "SANDBOX_BASE_URL", "ApiVideoAuth")

log = logging.getLogger(__name__)

#: The environment variable read when no API key is given.
API_KEY_ENV = "APIVIDEO_API_KEY"
#: api.video's production API.
DEFAULT_BASE_URL = "https://ws.api.video"
#: api.video's sandbox API.
SANDBOX_BASE_URL = "https://sandbox.api.video"

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ApiVideoAuth(AuthBase):
    """Attach an api.video access token to requests for the API, renewing it as needed.

    .. code-block:: python

        session = requests.Session()
        session.auth = ApiVideoAuth(api_key)        # or ApiVideoAuth() to read APIVIDEO_API_KEY
        session.get("https://ws.api.video/videos")

    The token is fetched on the first request to the API, refreshed shortly before it
    expires, and renewed once when a request comes back 401, which is then sent again
    with its body. Requests to any other origin pass through untouched. Instances for
    the same base URL and key share one token per process, and one renewal at a time.

    :param str api_key: the api.video API key. ``None`` reads ``APIVIDEO_API_KEY``.
    :param bool sandbox: use ``https://sandbox.api.video`` (for a sandbox key).
    :param str base_url: the API's base URL, for the emulator, a proxy or a private
        deployment. ``http://`` is accepted only for loopback hosts.
    :param str scheme: ``"bearer"`` (short-lived tokens, the default) or ``"basic"``
        (the key itself as HTTP Basic username on every request; no token calls).
    :param float refresh_margin: refresh the token when fewer than this many seconds
        of its lifetime are left (at most half the lifetime). ``0`` refreshes only at
        expiry.
    :param float timeout: seconds allowed for each connect and each read of a token call,
        and for the body of its answer; a renewal makes at most six such attempts.
    :param session: a :class:`requests.Session` for token calls (proxies, TLS settings,
        adapters), used as given. ``None``: a private session that retries transient
        failures.
    :param clock: where time comes from: an object with ``monotonic()`` and ``time()``
        (default: the :mod:`time` module). For tests.
    :raises ValueError: a missing key, a conflicting or insecure base URL, a bad option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        sandbox: bool = False,
        base_url: str | None = None,
        scheme: Literal["bearer", "basic"] = "bearer",
        refresh_margin: float = 60.0,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        clock: Clock | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV, "").strip()
            if not api_key:
                raise ValueError(f"no API key given and {API_KEY_ENV} is not set")
        elif not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
        elif not api_key.strip():
            raise ValueError("api_key is empty")
        if sandbox and base_url is not None:
            raise ValueError("give sandbox=True or base_url, not both")
        if scheme not in ("bearer", "basic"):
            raise ValueError(f"scheme must be 'bearer' or 'basic', not {scheme!r}")
        for name, value in (("refresh_margin", refresh_margin), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
                raise ValueError(f"{name} must be a finite number above 0, not {value!r}")
        if session is not None and not isinstance(session, requests.Session):
            raise TypeError(f"session must be a requests.Session, not {type(session).__name__}")

        self._api_key = api_key
        default = SANDBOX_BASE_URL if sandbox else DEFAULT_BASE_URL
        self.base_url = _check_base_url(default if base_url is None else base_url)
        self.scheme = scheme
        self.refresh_margin = float(refresh_margin)
        self.timeout = float(timeout)
        self.session = session
        self.clock: Clock = clock if clock is not None else time
        # The origin, how requests writes a URL of it, the paths that must pass untouched
        # and the URLs that take the slow path: all from the base URL alone (cached).
        self._origin, self._prefix, self._untouched, self._upload_path, self._special = _scope(
            self.base_url
        )
        # The response hook for the current token (it holds the token), the deadlines
        # (monotonic, wall) before which the token needs no refresh, and its header: one
        # tuple, swapped whole, read without a lock.
        self._fresh: tuple[_Attempt | None, float, float, str] = (None, 0.0, 0.0, "")
        self._basic: str | None = None  # the Basic header, made on first use
        self._state = shared_state(self.base_url, api_key)
        self._endpoint = TokenEndpoint(
            self.base_url, api_key, timeout=self.timeout, clock=self.clock
        )

    # -- public API -------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the credential to ``r`` if it is for the API; leave it untouched if not."""
        url = r.url or ""
        fast = url.startswith(self._prefix) and not url.startswith(self._special)
        if not fast and not self._wants_credentials(url):
            return r
        if self.scheme == "basic":
            basic = self._basic
            if basic is None:
                credentials = base64.b64encode(f"{self._api_key}:".encode()).decode("ascii")
                basic = self._basic = "Basic " + credentials
            r.headers["Authorization"] = basic
            return r
        hook, fresh_until, fresh_until_wall, header = self._fresh
        clock = self.clock
        if (
            hook is None
            or hook.token is not self._state.store.load()
            or clock.monotonic() >= fresh_until
            or clock.time() >= fresh_until_wall
        ):
            token = self._token()
            hook, header = _Attempt(self, token), "Bearer " + token.access_token
        r.headers["Authorization"] = header
        body = r.body
        if body is not None and not isinstance(body, _IN_MEMORY):  # a file: note where it starts
            hook = _Attempt(self, hook.token, body, _tell(body))
        r.hooks["response"].append(hook)
        return r

    def get_token(self) -> str:
        """Return a valid access token, fetching or refreshing it as needed.

        :raises ApiVideoAuthError: no token could be obtained.
        """
        return self._token().access_token

    def invalidate(self) -> None:
        """Forget the shared token: the next request authenticates again with the key."""
        with self._state.lock:  # after a renewal in flight, not before it
            self._state.store.save(None)
            self._state.retry_at = 0.0

    def __repr__(self) -> str:
        key = f"…{self._api_key[-4:]}" if len(self._api_key) >= 16 else "…"
        scheme = "" if self.scheme == "bearer" else f", scheme={self.scheme!r}"
        return f"ApiVideoAuth(base_url={self.base_url!r}, api_key={key!r}{scheme})"

    def __getstate__(self) -> dict[str, Any]:
        # The key, never a token nor a lock: refresh tokens are single-use, so two
        # processes must not share one. The copy authenticates on first use.
        state: dict[str, Any] = {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "scheme": self.scheme,
            "refresh_margin": self.refresh_margin,
            "timeout": self.timeout,
            "session": self.session,
        }
        if self.clock is not time:
            state["clock"] = self.clock
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # -- scope ------------------------------------------------------------------------

    def _wants_credentials(self, url: str) -> bool:
        """Return whether ``url`` is on the API's origin and not a token or upload call."""
        if url.startswith(self._prefix):
            rest = url[len(self._prefix) - 1 :]
        else:
            parts = urlsplit(url)
            try:
                origin = _origin(parts.scheme.lower(), parts.hostname or "", parts.port)
            except ValueError:
                return False
            if origin != self._origin:
                return False
            rest = parts.path + ("?" + parts.query if parts.query else "")
        path, _, query = rest.partition("#")[0].partition("?")
        if path in self._untouched:
            return False
        # A delegated upload is authenticated by its upload token, not by ours.
        return not (path == self._upload_path and "token" in _query_names(query))

    # -- token lifecycle --------------------------------------------------------------

    def _token(self) -> AccessToken:
        """Return the token to send now: the current one, refreshed early or renewed."""
        token = self._state.store.load()
        if token is not None:
            margin = advisory_margin(token, self.refresh_margin)
            ttl = token.ttl(self.clock)
            if ttl > margin:
                until, until_wall = token.expires_at - margin, token.expires_at_wall - margin
                self._fresh = (
                    _Attempt(self, token),
                    until,
                    until_wall,
                    "Bearer " + token.access_token,
                )
                return token
            if ttl > margin / 4:
                return self._refresh_early(token, ttl - margin / 4)
        return self._renew(stale=token)

    def _refresh_early(self, token: AccessToken, slack: float) -> AccessToken:
        """Refresh a still-valid token if no other thread is; never wait, never raise.

        ``slack`` is the time left before the token enters the mandatory window, where
        a failure would reach the caller.
        """
        state = self._state
        if self.clock.monotonic() < state.retry_at or not state.lock.acquire(blocking=False):
            return token
        try:
            current = state.store.load()
            if not _same(current, token):
                return current or token
            try:
                return self._renew_locked(token)
            except ApiVideoAuthError as exc:
                backoff = max(1.0, slack / 2)
                state.retry_at = self.clock.monotonic() + backoff
                log.warning(
                    "early token refresh failed; the current token stays in use, "
                    "next try in %.0f s: %s",
                    backoff,
                    exc,
                )
                return token
        finally:
            state.lock.release()

    def _renew(self, stale: AccessToken | None) -> AccessToken:
        """Renew ``stale`` (``None``: fetch a first token) unless another thread just did.

        Threads that waited while another renewed the same token share its outcome: the
        new token, or its error. Never two renewals of one token in a row.
        """
        state = self._state
        attempts = state.attempts
        with state.lock:
            current = state.store.load()
            if current is not None and not _same(current, stale):
                return current
            if state.attempts != attempts:  # a renewal ended while this thread waited
                failure = state.failure
                if failure is not None:
                    raise type(failure)(str(failure), response=failure.response)
                if current is not None:  # the server handed out the same token again
                    return current
            return self._renew_locked(current)

    def _renew_locked(self, current: AccessToken | None) -> AccessToken:
        """Refresh ``current``, or fall back to the API key; hold the state's lock."""
        state = self._state
        session = self.session or state.token_session(self.base_url)
        state.failure = None
        try:
            token = self._fetch(session, current)
        except ApiVideoAuthError as exc:
            state.failure = exc
            raise
        finally:
            state.attempts += 1
        state.store.save(token)
        state.retry_at = 0.0
        return token

    def _fetch(self, session: requests.Session, current: AccessToken | None) -> AccessToken:
        """Refresh ``current``; if there is none or that fails, authenticate with the key."""
        if current is not None:
            try:
                token = self._endpoint.refresh(session, current.refresh_token)
            except ApiVideoAuthError as exc:
                log.info("token refresh failed, authenticating with the API key: %s", exc)
            else:
                log.info("token refreshed, expires in %.0f s", token.expires_in)
                return token
        token = self._endpoint.authenticate(session)
        log.info("authenticated with the API key, token expires in %.0f s", token.expires_in)
        return token

    # -- 401 --------------------------------------------------------------------------

    def _handle_401(
        self, attempt: _Attempt, r: requests.Response, **kwargs: Any
    ) -> requests.Response:
        """Renew the token after a 401 and send the request once more with its body.

        Called as a response hook, also on each redirect hop of the request: it acts only
        on a 401 to a request that carried this attempt's token on the API's origin.
        """
        request = r.request
        sent = "Bearer " + attempt.token.access_token
        if request.headers.get("Authorization") != sent or not self._wants_credentials(
            request.url or ""
        ):
            # Not ours: a hop to another origin, someone else's header, or a request that
            # was replayed already (the replay put the new token on it and on its hops).
            return r
        try:
            token = self._renew(stale=attempt.token)
        except ApiVideoAuthError:
            r.close()
            raise
        if token.access_token == attempt.token.access_token:
            return r  # the server handed out the same token again: never loop
        log.debug("401 from %s %s: sending it again", request.method, urlsplit(request.url).path)
        if not attempt.rewind(request.body):
            log.warning(
                "not sending %s %s again after a 401: its body cannot be rewound "
                "(the token is renewed, so the caller's own retry will be accepted)",
                request.method,
                urlsplit(request.url).path,
            )
            return r
        r.content  # noqa: B018 - read the body so the connection goes back to the pool
        r.close()
        header = "Bearer " + token.access_token
        replay = request.copy()
        replay.headers["Authorization"] = header
        # Redirects after this response are followed from the original request.
        request.headers["Authorization"] = header
        if r.cookies:  # e.g. load-balancer stickiness: add them to what was sent
            sent_cookies = replay.headers.pop("Cookie", None)  # else the jar adds nothing
            fresh = get_cookie_header(r.cookies, replay)
            replay.headers["Cookie"] = _with_cookies(sent_cookies, fresh)
        started = preferred_clock()
        response: requests.Response = r.connection.send(replay, **kwargs)
        response.elapsed = timedelta(seconds=preferred_clock() - started)  # as Session.send
        response.history.append(r)
        response.request = replay
        return response


_IN_MEMORY = (bytes, str, bytearray, memoryview)


class _Attempt:
    """The response hook: the token a request was sent with, and where its file body began.

    Immutable, so one instance serves every request with an in-memory body while a token is
    fresh. One replay per request: the replay's new token is what its hops then carry.
    """

    __slots__ = ("auth", "body", "position", "token")

    def __init__(
        self,
        auth: ApiVideoAuth,
        token: AccessToken,
        body: object = None,
        position: int | None = None,
    ) -> None:
        self.auth = auth
        self.token = token
        self.body = body
        self.position = position

    def __call__(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        if r.status_code != 401:
            return r
        return self.auth._handle_401(self, r, **kwargs)

    def rewind(self, body: object) -> bool:
        """Make ``body`` (of the request that got the 401) ready to send again, if it can be.

        In-memory bodies are sent as they are; a file-like one only if it is the body whose
        start was recorded (a 303 redirect may have dropped it) and it seeks back there.
        """
        if body is None or isinstance(body, _IN_MEMORY):
            return True
        if body is not self.body or self.position is None:
            return False
        try:
            body.seek(self.position)  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError):  # closed, or not seekable after all
            return False
        return True

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled Response or PreparedRequest carries its hooks: never the auth (its
        # key) nor the token. The copy no longer replays.
        return (_spent_hook, ())


def _spent_hook() -> Any:
    return _pass_through


def _pass_through(r: requests.Response, **kwargs: Any) -> requests.Response:
    return r


def _tell(body: object) -> int | None:
    """Return where a file-like body starts, or ``None`` if it cannot be read again."""
    tell = getattr(body, "tell", None)
    if tell is None or not callable(getattr(body, "seek", None)):
        return None
    try:
        position = tell()
    except OSError:
        return None
    return position if isinstance(position, int) and position >= 0 else None


def _with_cookies(header: str | bytes | None, fresh: str | None) -> str:
    """Return the ``Cookie`` header ``header`` with the cookies of ``fresh`` put in."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    names = {pair.split("=", 1)[0].strip() for pair in (fresh or "").split(";")}
    kept = [p.strip() for p in (header or "").split(";") if p.split("=", 1)[0].strip() not in names]
    return "; ".join(p for p in (*kept, fresh) if p)


def _same(a: AccessToken | None, b: AccessToken | None) -> bool:
    """Return whether two loads of the store are the same token (by value, for any store)."""
    if a is None or b is None:
        return a is b
    return a.access_token == b.access_token


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return (scheme, host.lower(), port or _DEFAULT_PORTS.get(scheme, 0))


def _query_names(query: str) -> set[str]:
    return {part.partition("=")[0] for part in query.split("&")}


def _check_base_url(url: str) -> str:
    """Return ``url`` normalised (no trailing slash); refuse what would leak the key."""
    if not isinstance(url, str):
        raise TypeError(f"base_url must be a str, not {type(url).__name__}")
    return _normalise_base_url(url)


#: Distinct base URLs whose checks are remembered; a process rarely uses more than two.
_URL_CACHE_SIZE = 64


@functools.lru_cache(maxsize=_URL_CACHE_SIZE)
def _normalise_base_url(url: str) -> str:
    """Do the work of :func:`_check_base_url` (a pure function: cached; errors are not)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"base_url has an invalid port: {url!r}") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, not {url!r}")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError("base_url must not contain credentials, a query or a fragment")
    scheme = parts.scheme.lower()
    if scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"base_url {url!r} is plain http on a non-loopback host: the API key would "
            "travel in clear text; use https"
        )
    port_part = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    # Spelled as requests will send it (IDNA host, percent-encoded path), so that the
    # origin check, the token URLs and their adapters all match the real URLs.
    spelled = requests.Request("GET", f"{scheme}://{host}{port_part}{parts.path}").prepare().url
    return (spelled or "").rstrip("/")


@functools.lru_cache(maxsize=_URL_CACHE_SIZE)
def _scope(base_url: str) -> tuple[tuple[str, str, int], str, frozenset[str], str, tuple[str, str]]:
    """Return what ``__call__`` matches URLs against, for a normalised base URL.

    The origin; the prefix requests writes URLs of that origin with (other spellings, in
    upper case, with an explicit default port or user info, take the exact comparison in
    ``_wants_credentials``); the token paths, which pass untouched; the upload path; and
    the two URL prefixes that take that slow path.
    """
    parts = urlsplit(base_url)
    origin = _origin(parts.scheme, parts.hostname or "", parts.port)
    prefix = f"{parts.scheme}://{parts.netloc.lower()}/"
    untouched = frozenset(f"{parts.path}/auth/{name}" for name in ("api-key", "refresh"))
    root = prefix[:-1] + parts.path
    return origin, prefix, untouched, f"{parts.path}/upload", (root + "/auth/", root + "/upload")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
