"""The requests authentication handler for api.video."""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import logging
import os
import sys
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase
from requests.cookies import get_cookie_header
from requests.sessions import preferred_clock

from .exceptions import ApiVideoAuthError
from .token import MAX_LIFETIME, advisory_margin

if TYPE_CHECKING:
    from .endpoint import TokenEndpoint
    from .manager import TokenManager
    from .stores import TokenStore
    from .token import AccessToken, Clock

__all__ = ("API_KEY_ENV", "DEFAULT_BASE_URL", "SANDBOX_BASE_URL", "STORE_ENV", "ApiVideoAuth")

log = logging.getLogger(__name__)

#: The environment variable read when no API key is given.
API_KEY_ENV = "APIVIDEO_API_KEY"
#: The environment variable read when no store is given: a store URL (unset: memory).
STORE_ENV = "APIVIDEO_TOKEN_STORE"
#: api.video's production API.
DEFAULT_BASE_URL = "https://ws.api.video"
#: api.video's sandbox API.
SANDBOX_BASE_URL = "https://sandbox.api.video"

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: The largest ``timeout`` accepted, in seconds: longer is a mistake (and overflows).
MAX_TIMEOUT = 600.0
#: The largest ``refresh_margin`` accepted, in seconds: a token lives at most this long.
MAX_REFRESH_MARGIN = MAX_LIFETIME
#: How many (method, path) pairs that refused a just-renewed token are remembered.
MAX_REFUSALS = 128


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
    :param store: where the token lives, shared by every instance with the same base URL
        and key that uses the same store: ``"memory:"`` (this process), ``"file:"`` or
        ``"file:/dir"`` (this machine), a ``redis://``, ``rediss://`` or ``unix://`` URL
        (a fleet), or a :class:`~requests_apivideo.FileTokenStore` or
        :class:`~requests_apivideo.RedisTokenStore`. ``None`` reads
        ``$APIVIDEO_TOKEN_STORE``, else ``"memory:"``.
    :param clock: where time comes from: an object with ``monotonic()`` and ``time()``
        (default: the :mod:`time` module). For tests.
    :raises ValueError: a missing key, a conflicting or insecure base URL, a bad option,
        an unknown store URL.
    """

    # Settings, then the state a core builds from them (see _build); an instance that is not
    # a core reads them from its core (see _copy).
    base_url: str
    scheme: str
    refresh_margin: float
    timeout: float
    session: requests.Session | None
    store: TokenStore
    clock: Clock
    _api_key: str
    _core: ApiVideoAuth
    _origin: tuple[str, str, int]
    _prefix: str
    _untouched: frozenset[str]
    _upload_path: str
    _special: tuple[str, str]
    _basic: str | None
    _manager: TokenManager
    _fresh: tuple[_Attempt | None, float, float, str]
    _calls: _Calls

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
        store: TokenStore | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        # The same argument objects as the last construction that found or made a twin (a
        # loop's ``requests.get(url, auth=ApiVideoAuth(key))``): that twin, with no look-up.
        # By identity, so of one value and type each; the key as the twin keeps it (a key
        # given with whitespace, or None for the environment's, never matches), and the
        # value of $APIVIDEO_TOKEN_STORE read before the store was chosen (for no store given).
        last = _last
        if last is not None:
            args = last.args
            if (
                api_key is args[0]
                and base_url is args[1]
                and store is args[2]
                and sandbox is args[3]
                and scheme is args[4]
                and refresh_margin is args[5]
                and timeout is args[6]
                and clock is args[7]
                and session is None
                and self.__class__ is ApiVideoAuth
                and not last.dropped
                and os.environ is _ENVIRON
                and (store is not None or _ENV_DATA.get(_ENV_STORE_NAME) is args[8])
            ):
                last.used = True  # a second chance when the oldest are dropped
                state = self.__dict__  # a copy of it (see _copy), with nothing else
                if state:  # __init__ called again on a live instance: swapped whole
                    object.__setattr__(self, "__dict__", {"_core": last.twin})
                else:
                    state["_core"] = last.twin
                return
            del args  # another construction's arguments: not in a traceback's locals
        del last
        key = api_key.strip() if api_key.__class__ is str else ""
        if not key:
            key = _check_key(api_key)  # the environment's key, or the error to raise
        del api_key
        env = _NOT_READ  # the variable as read for no store given, for the last-arguments path
        if store is None and os.environ is _ENVIRON:
            env = _ENV_DATA.get(_ENV_STORE_NAME)
        args = (base_url, store, sandbox, scheme, refresh_margin, timeout, clock, env)
        if store is None:
            store = _env_store()
        # Instances made with arguments seen recently are copies of one twin, never handed
        # out: they share its checked settings, manager, token calls and hooks (so their first
        # request takes the fast path), until a setting of theirs is changed (__setattr__).
        # Not for a subclass (its __init__ and methods are its own), a caller's session or
        # store object (no twin keeps one alive).
        seen: tuple[object, ...] | None = None
        if self.__class__ is ApiVideoAuth and session is None and store.__class__ is str:
            # The key and the store URL (which may hold a password) by their hashes only,
            # compared on a hit; the clock by identity (the twin holds it, so its id is not
            # reused); the numbers' types too (True == 1).
            seen = (
                hash(key),
                hash(store),
                sandbox,
                base_url,
                scheme,
                refresh_margin,
                type(refresh_margin),
                timeout,
                type(timeout),
                id(clock),
            )
            if store != "memory:" and store[:5].lower() == "file:":
                seen = _file_seen(seen, store)
            try:
                kept = _settings.get(seen) if seen is not None else None
            except Exception:  # an unhashable argument: the checks below say what is wrong
                kept = seen = None
            if kept is not None and kept.store == store and kept.twin._api_key == key:
                kept.used = True  # a second chance when the oldest are dropped
                _remember(kept, seen, args)
                self._copy(kept)
                return
        # The state is built in a core of its own, which this instance holds once it is whole:
        # until then an instance whose __init__ is called again keeps working as it was.
        # The key goes straight into the core, whose repr hides it: from here on no local
        # variable of this frame holds it (a traceback's locals show no key).
        encodable = key.isascii()
        core = object.__new__(ApiVideoAuth)
        core.__dict__["_api_key"] = key
        del key
        if not encodable:  # api.video's keys are ASCII; another one would fail deeper down
            raise ValueError("the API key must be ASCII text, as api.video's keys are")
        core._build(sandbox, base_url, scheme, refresh_margin, timeout, session, store, clock)
        if seen is not None:
            kept = _new_twin(seen, core, store)
            _remember(kept, seen, args)
            self._copy(kept)
        else:  # what this instance holds of its own (a subclass's attributes), and its core
            own = {n: v for n, v in self.__dict__.items() if n not in core.__dict__}
            object.__setattr__(self, "__dict__", {**own, "_core": core})

    def _build(
        self,
        sandbox: bool,
        base_url: str | None,
        scheme: str,
        refresh_margin: float,
        timeout: float,
        session: requests.Session | None,
        store: TokenStore | str,
        clock: Clock | None,
    ) -> None:
        """Check the settings and fill this new core (its key set already) with its state."""
        if sandbox and base_url is not None:
            raise ValueError("give sandbox=True or base_url, not both")
        if scheme not in ("bearer", "basic"):
            raise ValueError(f"scheme must be 'bearer' or 'basic', not {scheme!r}")
        for name, value, most in (
            ("refresh_margin", refresh_margin, MAX_REFRESH_MARGIN),
            ("timeout", timeout, MAX_TIMEOUT),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            low = "above 0" if name == "timeout" else "0 or more"
            if not (0 <= value <= most) or (name == "timeout" and value == 0):
                raise ValueError(f"{name} must be {low} and at most {most:g} s, not {value!r}")
        _check_session(session)

        default = SANDBOX_BASE_URL if sandbox else DEFAULT_BASE_URL
        state = self.__dict__
        state["base_url"] = _check_base_url(default if base_url is None else base_url)
        state["scheme"] = scheme
        state["refresh_margin"] = float(refresh_margin)
        state["timeout"] = float(timeout)
        state["session"] = session
        state["clock"] = clock if clock is not None else time
        # The origin, how requests writes a URL of it, the paths that must pass untouched
        # and the URLs that take the slow path: all from the base URL alone (cached).
        scope = _scope(state["base_url"])
        state["_origin"], state["_prefix"], state["_untouched"] = scope[:3]
        state["_upload_path"], state["_special"] = scope[3:]
        state["_basic"] = _basic_header(self._api_key) if scheme == "basic" else None
        del state  # no dict of the core (its key) in a traceback's locals if a store fails
        from .manager import manager_for  # on the first construction, not at import (#9)
        from .stores import open_store

        self.__dict__["store"] = open_store(store)
        self._manager = manager_for(self.store, self.base_url, self._api_key, self.clock)
        self._fresh = _UNKNOWN
        self._calls = _Calls(self)
        self._core = self

    def _copy(self, kept: _Kept) -> None:
        """Make this instance a copy of the twin ``kept`` holds (see :meth:`__init__`).

        Every instance holds a core, as ``_core``, and only the attributes a user sets on
        it: what it does, its core does, with the core's settings, manager, token calls,
        hooks and cached header; what it lacks is read from the core (:meth:`__getattr__`).
        A copy's core is a twin, shared; another instance's is its own. A core's settings
        never change: a change of a setting, or ``__init__`` called again, builds a new core,
        which the instance then holds, so that a request in flight uses one core throughout.
        """
        object.__setattr__(self, "__dict__", {"_core": kept.twin})

    if not TYPE_CHECKING:  # for type checkers, an instance has only what it declares

        def __getattr__(self, name: str) -> Any:
            # Only what this instance's dict lacks: its core's (see _copy).
            core = self.__dict__.get("_core", self)
            if core is self or hasattr(type(self), name):  # a core, or a subclass's property:
                return object.__getattribute__(self, name)  # the error of the lookup itself
            return getattr(core, name)

    # -- public API -------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Attach the credential to ``r`` if it is for the API; leave it untouched if not."""
        core = self._core  # a copy's twin: its state, hooks and header
        url = r.url or ""
        fast = url.startswith(core._prefix) and not url.startswith(core._special)
        if not fast and not core._wants_credentials(url):
            return r
        if core.scheme == "basic":
            basic = core._basic
            if basic is None:  # the scheme was set after construction
                basic = core._basic = _basic_header(core._api_key)
            r.headers["Authorization"] = basic
            return r
        hook, fresh_until, fresh_until_wall, header = core._fresh
        clock = core.clock
        if (
            hook is None
            or hook.token is not core._manager.token
            or clock.monotonic() >= fresh_until
            or clock.time() >= fresh_until_wall
        ):
            del header  # no token in this frame's locals if the renewal raises
            hook, header = core._current()
        r.headers["Authorization"] = header
        body = r.body
        if body is not None and not isinstance(body, _IN_MEMORY):  # a file: note where it starts
            hook = _Attempt(core, hook.token, body, _tell(body))
        r.hooks["response"].append(hook)
        return r

    def get_token(self) -> str:
        """Return a valid access token, fetching or refreshing it as needed.

        :raises ApiVideoAuthError: no token could be obtained.
        """
        return self._core._token().access_token

    def invalidate(self) -> None:
        """Forget the shared token (in the store too): the next request authenticates again."""
        self._core._manager.invalidate()

    def __repr__(self) -> str:
        core = self._core
        key = f"…{core._api_key[-4:]}" if len(core._api_key) >= 16 else "…"
        scheme = "" if core.scheme == "bearer" else f", scheme={core.scheme!r}"
        return f"ApiVideoAuth(base_url={core.base_url!r}, api_key={key!r}{scheme})"

    def __getstate__(self) -> dict[str, Any]:
        # The key, never a token nor a lock: refresh tokens are single-use, so two
        # processes must not share one. The copy authenticates on first use.
        core = self._core
        state: dict[str, Any] = {
            "api_key": core._api_key,
            "base_url": core.base_url,
            "scheme": core.scheme,
            "refresh_margin": core.refresh_margin,
            "timeout": core.timeout,
            "session": core.session,
            "store": core.store,
        }
        if core.clock is not time:
            state["clock"] = core.clock
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
        """Return the token to send now."""
        return self._current()[0].token

    def _current(self) -> tuple[_Attempt, str]:
        """Return the hook and header of the token to send now (cached while fresh)."""
        return self._cache(self._manager.current(self._calls, self.refresh_margin))

    def _renew(self, stale: AccessToken | None) -> AccessToken:
        """Renew ``stale`` unless another thread or process already replaced it."""
        token = self._manager.renew(self._calls, stale, self.refresh_margin)
        self._cache(token)
        return token

    def _cache(self, token: AccessToken) -> tuple[_Attempt, str]:
        """Return the hook and header for ``token``; keep them for the fast path while fresh."""
        hook, header = _Attempt(self, token), _bearer(token)
        margin = advisory_margin(token, self.refresh_margin)
        if token.ttl(self.clock) > margin:
            until, until_wall = token.expires_at - margin, token.expires_at_wall - margin
            self._fresh = (hook, until, until_wall, header)
        return hook, header

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SETTINGS or "_core" not in self.__dict__:
            object.__setattr__(self, name, value)  # not a setting, or a core being built
            return
        # A setting changed: checked as at construction, in a new core built with the other
        # settings of the current one, which this instance then holds (see _copy). Its token
        # calls and hooks are its own from now on (no longer a twin's). A change made by
        # another thread meanwhile is not lost: the new core is built again on top of it.
        if name == "store" and value is None:
            value = _env_store()
        elif name == "base_url":
            value = _check_base_url(value)  # None too: there is no default to fall back on
        while True:
            current = self._core
            settings = {n: current.__dict__[n] for n in _SETTINGS}
            settings[name] = value
            core = object.__new__(ApiVideoAuth)
            core.__dict__["_api_key"] = current._api_key
            core._build(sandbox=False, **settings)
            with _settings_lock:
                if self.__dict__.get("_core") is current:
                    object.__setattr__(self, "_core", core)
                    return

    def __delattr__(self, name: str) -> None:
        if name in _SETTINGS:  # every setting always has a value
            raise AttributeError(f"the setting {name!r} cannot be deleted, only set")
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        core = self.__dict__.get("_core", self)
        return sorted({*super().__dir__(), *core.__dict__})

    # -- 401 --------------------------------------------------------------------------

    def _handle_401(
        self, attempt: _Attempt, r: requests.Response, **kwargs: Any
    ) -> requests.Response:
        """Renew the token after a 401 and send the request once more with its body.

        Called as a response hook, also on each redirect hop of the request: it acts only
        on a 401 to a request that carried this attempt's token on the API's origin. What
        cannot be sent again (a body that cannot be rewound, an adapter whose responses do
        not say how) is returned as the 401, with a warning and the token renewed, so that
        the caller's own retry is accepted. A path that refuses the token a 401 of its own
        had renewed refuses for another reason: its next 401s on that token renew nothing.
        """
        request = r.request
        if request.headers.get("Authorization") != _bearer(
            attempt.token
        ) or not self._wants_credentials(request.url or ""):
            # Not ours: a hop to another origin, someone else's header, or a request that
            # was replayed already (the replay put the new token on it and on its hops).
            return r
        where = (request.method or "", urlsplit(request.url or "").path)
        refusals = self._manager.refusals
        if _same(refusals.get(where), attempt.token):
            log.debug("401 from %s %s on the token a 401 there was renewed into: returned", *where)
            return r
        _release(r)  # before renewing: a token call may need the connection it holds
        token = self._renew(stale=attempt.token)
        # Until a replay says otherwise, a 401 here on the new token means the path refuses
        # it: noted before the replay, so that other threads' 401s on it renew nothing.
        _note_refusal(refusals, where, token)
        if _same(token, attempt.token):  # the server handed out the same token again
            return r
        if not attempt.rewind(request.body):
            _forget_refusal(refusals, where, token)  # no replay, no evidence either way
            log.warning(
                "not sending %s %s again after a 401: its body cannot be rewound "
                "(the token is renewed, so the caller's own retry will be accepted)",
                *where,
            )
            return r
        send = getattr(getattr(r, "connection", None), "send", None)
        if not callable(send):
            _forget_refusal(refusals, where, token)
            log.warning(
                "not sending %s %s again after a 401: its adapter's response has no "
                ".connection to send it with (the token is renewed, so the caller's own "
                "retry will be accepted)",
                *where,
            )
            return r
        log.debug("401 from %s %s: sending it again", *where)
        # The 401 keeps the request as it was sent, with the token it carried. The replay is
        # the request itself, now with the new token: requests follows any redirect after
        # it from this very object.
        r.request = request.copy()
        request.headers["Authorization"] = _bearer(token)
        if r.cookies:  # e.g. load-balancer stickiness: add them to what was sent
            sent_cookies = request.headers.pop("Cookie", None)  # else the jar adds nothing
            cookies = _with_cookies(sent_cookies, get_cookie_header(r.cookies, request))
            if cookies:
                request.headers["Cookie"] = cookies
        started = preferred_clock()
        try:
            response = send(request, **kwargs)
        except requests.RequestException:
            _forget_refusal(refusals, where, token)  # the replay never answered: no evidence
            raise
        except Exception as exc:  # an adapter of its own kind: still a RequestException
            _forget_refusal(refusals, where, token)
            raise requests.RequestException(
                f"sending {where[0]} {where[1]} again after a 401 failed: "
                f"{type(exc).__name__}: {exc}",
                request=request,
            ) from exc
        if not isinstance(response, requests.Response):
            _forget_refusal(refusals, where, token)
            raise requests.RequestException(
                f"sending {where[0]} {where[1]} again after a 401 failed: the adapter "
                f"returned a {type(response).__name__}, not a Response",
                request=request,
            )
        response.elapsed = timedelta(seconds=preferred_clock() - started)  # as Session.send
        response.history.append(r)
        response.request = request
        if response.status_code == 401 and _same(token, self._manager.fetched):
            # Refused again with a token just fetched: the note stands (noted once more, as
            # another thread may have dropped it).
            _note_refusal(refusals, where, token)
        else:
            # The path takes the new token; or it refused one adopted from the store, which
            # may have died with the one it replaced: no evidence against the path.
            _forget_refusal(refusals, where, token)
        if response.is_redirect:
            self._keep_token_home(response)
        return response

    def _keep_token_home(self, r: requests.Response) -> None:
        """Keep our token off a redirect that leaves the API's origin.

        requests drops ``Authorization`` when a redirect changes host, but keeps it on an
        http to https upgrade of the same host (another origin), and it knows nothing of the
        paths that pass untouched. It builds the next hop from the request it sent, which
        is ``r.request``: take the header off that one, after keeping a copy of it as it
        was sent on ``r``.
        """
        request = r.request
        location = r.headers.get("location")
        if (
            not location
            or "Authorization" not in request.headers
            or not self._wants_credentials(request.url or "")
        ):
            return
        try:
            if self._wants_credentials(urljoin(request.url or "", location)):
                return
        except ValueError:  # a Location that cannot be parsed leaves with no token
            pass
        r.request = request.copy()
        del request.headers["Authorization"]


_IN_MEMORY = (bytes, str, bytearray, memoryview)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Calls:
    """The token calls of one instance, with its session and timeout (a ``Fetcher``)."""

    __slots__ = ("_endpoint", "auth")

    errors: tuple[type[Exception], ...] = (ApiVideoAuthError,)

    def __init__(self, auth: ApiVideoAuth) -> None:
        self.auth = auth
        self._endpoint: TokenEndpoint | None = None

    @property
    def endpoint(self) -> TokenEndpoint:
        # Made on the first token call: an instance that finds a shared token makes none.
        if self._endpoint is None:
            from .endpoint import TokenEndpoint  # on the first token call, not at import (#9)

            auth = self.auth
            self._endpoint = TokenEndpoint(
                auth.base_url, auth._api_key, timeout=auth.timeout, clock=auth.clock
            )
        return self._endpoint

    @property
    def timeout(self) -> float:
        return self.auth.timeout

    @property
    def settings(self) -> object:
        # Per-call instances with the defaults are alike: they share a failure.
        return (self.auth.session, self.auth.timeout)

    def authenticate(self) -> AccessToken:
        return self.endpoint.authenticate(self._session())

    def refresh(self, refresh_token: str) -> AccessToken:
        return self.endpoint.refresh(self._session(), refresh_token)

    def _session(self) -> requests.Session:
        if self.auth.session is not None:
            return self.auth.session
        return _private_session(self.auth.base_url)


#: base URL -> the private session for token calls (bounded retries mounted), shared by
#: every key of that base URL so that per-call instances reuse it. The most recently used
#: first; the others are closed (a test suite starts an emulator on a new port per test).
_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()
#: How many base URLs keep a private session (and its kept connections).
MAX_SESSIONS = 8


def _private_session(base_url: str) -> requests.Session:
    evicted: list[requests.Session] = []
    with _sessions_lock:
        session = _sessions.pop(base_url, None)
        if session is None:
            from .endpoint import token_session

            session = token_session(base_url)
        _sessions[base_url] = session  # last: the most recently used
        while len(_sessions) > MAX_SESSIONS:
            evicted.append(_sessions.pop(next(iter(_sessions))))
    for old in evicted:  # a call still using one opens a new connection, as after a drop
        old.close()
    return session


#: Sessions a forked child inherited: kept, unused, so that collecting them does not
#: close (or warn about) sockets that are the parent's.
_inherited: list[requests.Session] = []


def _forget_sessions() -> None:
    # A forked child must not use the parent's pooled sockets (nor a lock held there).
    global _sessions_lock, _settings_lock
    _sessions_lock = threading.Lock()
    _settings_lock = threading.Lock()
    _inherited.extend(_sessions.values())
    _sessions.clear()


def _load_before_fork() -> None:
    # The modules loaded on first use are loaded before a fork: a child forked while
    # another thread imports one would inherit its import lock and hang on it. The Redis
    # store's only if a thread may be importing it (it pulls in the redis package).
    from . import endpoint, manager  # noqa: F401
    from .stores import file, memory  # noqa: F401

    if "redis" in sys.modules or "requests_apivideo.stores.redis" in sys.modules:
        with contextlib.suppress(ImportError):  # a redis package it refuses
            from .stores import redis

            redis._import_redis()  # what its first store loads: redis, cryptography


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(before=_load_before_fork, after_in_child=_forget_sessions)


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
        status = r.status_code
        if status == 401:
            return self.auth._handle_401(self, r, **kwargs)
        if status in _REDIRECTS:
            self.auth._keep_token_home(r)
        return r

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


def _bearer(token: AccessToken) -> str:
    return "Bearer " + token.access_token


def _release(r: requests.Response) -> None:
    """Read the rest of ``r``'s body and give its connection back to the pool.

    A body that cannot be read or decoded is drained undecoded, as requests does before it
    follows a redirect, and kept as empty; the connection is then closed. Either way its
    pool slot is free for a token call.
    """
    try:
        r.content  # noqa: B018
    except Exception:  # ContentDecodingError, a connection lost mid-body, a consumed stream
        with contextlib.suppress(Exception):
            r.raw.read(decode_content=False)
        r._content = b""
    finally:
        with contextlib.suppress(Exception):
            r.close()


def _note_refusal(
    refusals: dict[tuple[str, str], AccessToken], where: tuple[str, str], token: AccessToken
) -> None:
    """Remember that ``where`` (method, path) refused ``token``, forgetting the oldest."""
    refusals[where] = token
    if len(refusals) > MAX_REFUSALS:
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread
            del refusals[next(iter(refusals))]


def _forget_refusal(
    refusals: dict[tuple[str, str], AccessToken], where: tuple[str, str], token: AccessToken
) -> None:
    """Drop the note that ``where`` refuses ``token`` (not a newer note of another thread)."""
    if _same(refusals.get(where), token):
        refusals.pop(where, None)


def _tell(body: object) -> int | None:
    """Return where a file-like body starts, or ``None`` if it cannot be read again."""
    tell = getattr(body, "tell", None)
    if tell is None or not callable(getattr(body, "seek", None)):
        return None
    try:
        position = tell()
    except (OSError, ValueError):  # not seekable, or closed
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


def _check_key(api_key: object) -> str:
    """Return the key to use: ``api_key``, or ``$APIVIDEO_API_KEY``, stripped of whitespace.

    A key read from a file keeps its trailing newline; api.video keys contain no spaces.
    """
    if api_key is None:
        value = _getenv(API_KEY_ENV)
        if value is None:
            raise ValueError(f"no API key given and {API_KEY_ENV} is not set")
        if not value.strip():
            raise ValueError(f"no API key given and {API_KEY_ENV} is empty")
        return value.strip()
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
    key = api_key.strip()
    if not key:
        raise ValueError("api_key is empty")
    return key


def _env_store() -> str:
    """Return the store URL ``$APIVIDEO_TOKEN_STORE`` names (unset or empty: ``"memory:"``)."""
    value = _getenv(STORE_ENV)
    return (value.strip() or "memory:") if value else "memory:"


#: ``os.environ`` as this module found it, and the dict behind it with the names this
#: module reads, encoded as it encodes them (no names: a Python whose ``os.environ`` is
#: built otherwise, or one replaced at import, is always asked). See :func:`_getenv`.
_ENVIRON = os.environ
_ENV_DATA: dict[Any, Any] = {}
_ENV_NAMES: dict[str, Any] = {}
if type(_ENVIRON) is os._Environ and isinstance(getattr(_ENVIRON, "_data", None), dict):
    _ENV_DATA = getattr(_ENVIRON, "_data")  # noqa: B009 (private: mypy knows no _data)
    _ENV_NAMES = {
        name: _ENVIRON.encodekey(name)
        for name in (API_KEY_ENV, STORE_ENV, "XDG_CACHE_HOME", "HOME")
    }
#: The encoded name of ``$APIVIDEO_TOKEN_STORE``, which the last-arguments path of
#: construction reads (``None``: no names, and ``_last`` stays ``None``).
_ENV_STORE_NAME = _ENV_NAMES.get(STORE_ENV)
#: Never a value of the environment: ``os.environ`` was replaced when it was to be read.
_NOT_READ = object()


def _getenv(name: str) -> str | None:
    """Return ``os.environ.get(name)`` for one of the names in :data:`_ENV_NAMES`.

    Read at every construction, and most often unset: ``os.environ`` raises and catches a
    ``KeyError`` inside to say so, a third of what a construction costs (#9). The dict it
    keeps its values in says it with no exception. An ``os.environ`` replaced since (by a
    test's ``mock.patch``) is asked itself; changes made through it or ``os.putenv`` are
    seen exactly as ``os.environ.get`` sees them.
    """
    if os.environ is not _ENVIRON or not _ENV_NAMES:
        return os.environ.get(name)
    raw = _ENV_DATA.get(_ENV_NAMES[name])
    return None if raw is None else _ENVIRON.decodevalue(raw)


def _check_session(session: object) -> None:
    """Refuse a ``session`` that token calls cannot use."""
    if session is None:
        return
    if not isinstance(session, requests.Session):
        raise TypeError(f"session must be a requests.Session, not {type(session).__name__}")
    executor = getattr(session, "executor", None)
    if executor is not None and _is_executor(executor):
        # requests-futures' FuturesSession: its requests return futures, not responses.
        raise TypeError(
            f"session is a {type(session).__name__}, whose requests return futures: token "
            "calls need one that returns responses, such as a plain requests.Session"
        )


def _is_executor(value: object) -> bool:
    import concurrent.futures  # only for a session that has an executor at all

    return isinstance(value, concurrent.futures.Executor)


#: What an instance holds before its first request: no hook, no header, fresh until never.
#: ``_fresh`` is one tuple (hook, fresh until on the monotonic clock, fresh until on the
#: wall clock, header), swapped whole and read without a lock; the hook holds the token.
_UNKNOWN: tuple[_Attempt | None, float, float, str] = (None, 0.0, 0.0, "")

#: How many recent sets of constructor arguments keep a twin: the settings checked for them,
#: their manager (so their token) and their hooks, so that ``requests.get(url,
#: auth=ApiVideoAuth(key))`` per call constructs in about 2 µs and sends at once. The
#: oldest set is dropped first, unless it was used since it was last passed over (a second
#: chance): a busy key keeps its token among one-off keys. A look-up takes no lock.
RECENT_SETTINGS = 64
_settings: dict[tuple[object, ...], _Kept] = {}
#: The public settings: changing one on an instance detaches it from its twin.
_SETTINGS = frozenset(
    ("base_url", "scheme", "refresh_margin", "timeout", "session", "store", "clock")
)
_settings_lock = threading.Lock()  # for changes; a look-up takes no lock


def _file_seen(seen: tuple[object, ...], store: str) -> tuple[object, ...] | None:
    """Return ``seen`` for a ``file:`` store: with where its directory comes from.

    ``None`` (no twin) for a ``file:`` store with a directory of its own: that directory is
    checked at every construction, as its state may have changed.
    """
    if len(store) > 5:
        return None
    return (*seen, _getenv("XDG_CACHE_HOME"), _getenv("HOME"))


def _new_twin(seen: tuple[object, ...], twin: ApiVideoAuth, store: object) -> _Kept:
    """Keep the new core ``twin`` for the instances made alike, and return it kept."""
    global _last
    kept = _Kept(twin, store)
    with _settings_lock:
        replaced = _settings.pop(seen, None)  # a twin made again for arguments seen before
        if replaced is not None:
            replaced.dropped = True
        _settings[seen] = kept
        # The oldest go first, but one used since it was last passed over goes to the end
        # instead (once): a busy key keeps its twin, so its token, among one-off keys.
        chances = len(_settings)  # bounded, whatever other threads mark used meanwhile
        while len(_settings) > RECENT_SETTINGS:
            oldest = next(iter(_settings))
            passed = _settings.pop(oldest)
            if passed.used and chances > 0:
                chances -= 1
                passed.used = False
                _settings[oldest] = passed
            else:
                passed.dropped = True
        if _last is not None and _last.dropped:
            _last = None  # nor its key kept
    return kept


def _remember(kept: _Kept, seen: tuple[object, ...] | None, args: tuple[object, ...]) -> None:
    """Make ``kept`` the twin of the last-arguments path, for the argument objects ``args``.

    Not for a ``file:`` store's twin, which the environment's directories also decide.
    """
    global _last
    if seen is not None and len(seen) == _PLAIN_SEEN and _ENV_STORE_NAME and not kept.dropped:
        kept.args = (kept.twin._api_key, *args)  # the key first, as the twin keeps it
        _last = kept
        # Dropped meanwhile by another thread, which may have looked at _last before this
        # set it (it marks first, then looks): then it is this thread's to let go.
        if kept.dropped and _last is kept:
            _last = None


class _Kept:
    """A twin in :data:`_settings`: the store URL it was made for, and whether it was used.

    ``used``: copies were made of it since it was last passed over.
    """

    __slots__ = ("args", "dropped", "store", "twin", "used")

    def __init__(self, twin: ApiVideoAuth, store: object) -> None:
        self.twin = twin
        self.store = store
        self.used = False
        self.dropped = False  # no longer in _settings: never the last-arguments twin
        #: The key as it keeps it and the argument objects it was last found for (in the
        #: order of the last-arguments check in ApiVideoAuth.__init__).
        self.args: tuple[object, ...] = ()


#: The twin the last construction found or made, for its argument objects (``None``: none).
_last: _Kept | None = None
#: The length of a twin's key with no ``file:`` store's directories.
_PLAIN_SEEN = 10


def _basic_header(api_key: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode("ascii")


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
