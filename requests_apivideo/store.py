"""Where token state lives: a small store interface and the per-process registry."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import requests

    from .exceptions import ApiVideoAuthError
    from .token import AccessToken

__all__ = ("MemoryTokenStore", "SharedState", "TokenStore", "shared_state")


class TokenStore(Protocol):
    """Hold the current token of one (base URL, API key) pair.

    ``load`` is called on every request, without a lock, so it must be cheap and must
    return a complete token or ``None``, never a half-written one. Renewals are
    serialised by :class:`SharedState`'s lock before ``save`` is called.
    """

    def load(self) -> AccessToken | None:
        """Return the current token, or ``None`` if there is none."""

    def save(self, token: AccessToken | None) -> None:
        """Replace the current token (``None`` forgets it)."""


class MemoryTokenStore:
    """Keep the token in this process's memory (one attribute swap: atomic)."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: AccessToken | None = None

    def load(self) -> AccessToken | None:
        """Return the current token, or ``None`` if there is none."""
        return self._token

    def save(self, token: AccessToken | None) -> None:
        """Replace the current token (``None`` forgets it)."""
        self._token = token


class SharedState:
    """What every :class:`~requests_apivideo.ApiVideoAuth` for one base URL and key shares.

    The token store, the lock that allows one renewal at a time, the time before which
    no early refresh is tried again after one failed, and the private session used for
    token calls (so per-call instances reuse its connections).
    """

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.retry_at = 0.0
        #: Renewals started so far, and the error of the last one if it failed: threads
        #: that waited for a renewal take its outcome instead of repeating it.
        self.attempts = 0
        self.failure: ApiVideoAuthError | None = None
        #: (method, path) pairs whose 401 led to a renewal, with the token renewed into,
        #: until a replay there succeeds: a 401 there on that token renews nothing (a path
        #: that refuses a just-renewed token refuses for another reason; see _handle_401).
        self.refusals: dict[tuple[str, str], AccessToken] = {}
        self._session: requests.Session | None = None

    def token_session(self, base_url: str) -> requests.Session:
        """Return the private session for token calls, creating it on first use."""
        if self._session is None:
            from .endpoint import token_session

            self._session = token_session(base_url)
        return self._session

    def _after_fork(self) -> None:
        # The parent's lock may be held by a thread that does not exist here, its pooled
        # connections are the parent's sockets, and its refresh token is single-use:
        # the child starts afresh and authenticates on its own.
        self.lock = threading.Lock()
        self.retry_at = 0.0
        self.failure = None
        self._session = None
        if isinstance(self.store, MemoryTokenStore):
            self.store.save(None)


_registry: dict[str, SharedState] = {}
_registry_lock = threading.Lock()


def shared_state(base_url: str, api_key: str) -> SharedState:
    """Return the state shared by all instances for this base URL and key.

    The registry is keyed by a SHA-256 of the two, never by the raw key.
    """
    digest = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()
    with _registry_lock:
        state = _registry.get(digest)
        if state is None:
            state = _registry[digest] = SharedState(MemoryTokenStore())
        return state


def _reset_after_fork() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for state in _registry.values():
        state._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)
