"""Token renewal: one at a time per (base URL, key), through a store, with no HTTP here.

:class:`TokenManager` is the whole algorithm: single flight within the process, the
store's lock across processes, refresh then fall back to the key, early refresh with
back-off, shared failures, and a private token when the store cannot be used. How a token
is fetched is the caller's :class:`Fetcher`; where it is kept is the store's entry.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from .stores import StoreUnavailable, derive
from .token import AccessToken, advisory_margin

if TYPE_CHECKING:
    from .stores import Stored, StoreEntry, TokenStore
    from .token import Clock

__all__ = ("Fetcher", "TokenManager", "manager_for")

log = logging.getLogger("requests_apivideo")


class Fetcher(Protocol):
    """Calls to the token endpoint, with one caller's settings (session, timeout)."""

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """What a failed token call raises (the caller's error types)."""

    @property
    def timeout(self) -> float:
        """Seconds a renewal may wait for another process that holds the store's lock."""

    @property
    def settings(self) -> object:
        """What besides the server decides this caller's token calls (session, timeout).

        A renewal that failed is shared only with waiters whose settings are equal.
        """

    def authenticate(self) -> AccessToken:
        """Exchange the API key for a new token."""

    def refresh(self, refresh_token: str) -> AccessToken:
        """Exchange a (single-use) refresh token for a new token."""


class TokenManager:
    """Hold the current token of one (base URL, key, store) and renew it one at a time.

    ``token`` is read without a lock by the request path: it is replaced whole, never
    changed. Everything else happens under ``lock``.
    """

    def __init__(self, entry: StoreEntry, clock: Clock) -> None:
        self.entry = entry
        self.clock = clock
        self.token: AccessToken | None = None
        self.lock = threading.Lock()
        #: The store generation of ``token`` (0: not from the store), and the highest
        #: generation seen: a record below it was rolled back and is not trusted.
        self.gen = self.seen = 0
        #: The highest generation this process renewed away from (it was stale or got a
        #: 401): never adopted again.
        self.replaced = 0
        #: ``token`` was fetched while the store could not be used: its refresh token is
        #: this process's own, never shared, so this process may present it.
        self.private = False
        #: The last token this process got from a token call (not adopted from the store):
        #: only a replay refused with it says that the path refuses (see auth).
        self.fetched: AccessToken | None = None
        self.outage = False
        #: Monotonic time before which no early refresh is tried again.
        self.retry_at = 0.0
        #: Renewals so far, and the error of the last one if it failed: threads that
        #: waited for a renewal take its outcome instead of repeating it.
        self.attempts = 0
        self.failure: Exception | None = None
        self.failed_with: object = None  # the settings of the fetcher that failed
        #: (method, path) pairs whose 401 led to a renewal, with the token renewed into,
        #: until a replay there succeeds: a 401 there on that token renews nothing (a path
        #: that refuses a just-renewed token refuses for another reason; see auth).
        self.refusals: dict[tuple[str, str], AccessToken] = {}

    # -- what the request path calls --------------------------------------------------

    def current(self, fetcher: Fetcher, refresh_margin: float) -> AccessToken:
        """Return the token to send now: the current one, refreshed early or renewed."""
        token = self.token
        if token is not None:
            margin = advisory_margin(token, refresh_margin)
            ttl = token.ttl(self.clock)
            if ttl > margin:
                return token
            if ttl > margin / 4:
                return self._refresh_early(fetcher, token, refresh_margin, ttl - margin / 4)
        return self.renew(fetcher, token, refresh_margin)

    def renew(
        self, fetcher: Fetcher, stale: AccessToken | None, refresh_margin: float
    ) -> AccessToken:
        """Replace ``stale`` (``None``: get a first token) unless another thread just did.

        Threads that waited while another renewed the same token share its outcome: the
        new token, or its error. Never two renewals of one token in a row.
        """
        attempts = self.attempts
        with self.lock:
            current = self.token
            if current is not None and not _same(current, stale):
                return current
            if self.attempts != attempts:  # a renewal ended while this thread waited
                if self.failure is None:
                    if current is not None:  # the server handed out the same token again
                        return current
                elif self.failed_with == fetcher.settings:  # else: try with this caller's
                    raise copy.copy(self.failure)
            return self._renew_locked(fetcher, current, refresh_margin, wait=fetcher.timeout)

    def invalidate(self) -> None:
        """Forget the token here and delete the store's record."""
        with self.lock:  # after a renewal in flight, not before it
            self.token = None
            self.gen = 0
            self.retry_at = 0.0
            self.refusals.clear()
            try:
                self.entry.clear()
            except StoreUnavailable as exc:
                self._store_failed(exc)

    # -- renewal ----------------------------------------------------------------------

    def _refresh_early(
        self, fetcher: Fetcher, token: AccessToken, refresh_margin: float, slack: float
    ) -> AccessToken:
        """Refresh a still-valid token if nobody else is; never wait, never raise.

        ``slack`` is the time left before the token enters the mandatory window, where a
        failure would reach the caller.
        """
        if self.clock.monotonic() < self.retry_at or not self.lock.acquire(blocking=False):
            return token
        try:
            if not _same(self.token, token):
                return self.token or token
            try:
                renewed = self._renew_locked(fetcher, token, refresh_margin, wait=0.0)
            except fetcher.errors as exc:
                backoff = max(1.0, slack / 2)
                self.retry_at = self.clock.monotonic() + backoff
                log.warning(
                    "early token refresh failed; the current token stays in use, "
                    "next try in %.0f s: %s",
                    backoff,
                    exc,
                )
                return token
            if renewed is token:  # another process holds the store's lock: later
                self.retry_at = self.clock.monotonic() + min(1.0, slack / 4)
            return renewed
        finally:
            self.lock.release()

    def _renew_locked(
        self, fetcher: Fetcher, stale: AccessToken | None, refresh_margin: float, wait: float
    ) -> AccessToken:
        """Run one renewal and record its outcome for the threads that waited."""
        self.failure = self.failed_with = None
        try:
            token = self._transaction(fetcher, stale, refresh_margin, wait)
        except fetcher.errors as exc:
            self.failure, self.failed_with = exc, fetcher.settings
            self.attempts += 1
            raise
        if token is not stale:  # else an early refresh found the store's lock taken
            self.attempts += 1
            self.retry_at = 0.0
        return token

    def _transaction(
        self, fetcher: Fetcher, stale: AccessToken | None, refresh_margin: float, wait: float
    ) -> AccessToken:
        """Renew through the store: adopt a newer record, or renew it under its lock.

        ``wait=0`` is an early refresh: if another process holds the lock, ``stale`` is
        returned (still valid) and that process's record is adopted later.
        """
        entry = self.entry
        if stale is not None and stale is self.token and self.gen:
            self.replaced = max(self.replaced, self.gen)
        try:
            adopted = self._adopt(self._read(), stale, refresh_margin)
            if adopted is not None:
                return adopted
            if not entry.lock(wait):
                adopted = self._adopt(self._read(), stale, refresh_margin)
                if adopted is not None or (wait == 0 and stale is not None):
                    return adopted or stale  # type: ignore[return-value]
                log.warning(
                    "the token store's lock was not free within %.1f s: "
                    "authenticating without it",
                    wait,
                )
                return self._private(fetcher, stale)
        except StoreUnavailable as exc:
            self._store_failed(exc)
        else:
            try:
                return self._renew_record(fetcher, stale, refresh_margin)
            finally:
                entry.unlock()
        # Outside the handler: a failed token call must not carry the store's error as its
        # context, whose traceback may show a record's tokens in its frames' locals.
        return self._private(fetcher, stale)

    def _renew_record(
        self, fetcher: Fetcher, stale: AccessToken | None, refresh_margin: float
    ) -> AccessToken:
        """Renew the stored record; hold the store's lock."""
        entry = self.entry
        failed = False
        try:
            read = self._read()
            adopted = self._adopt(read, stale, refresh_margin)
            if adopted is not None:
                return adopted
            record = read[0]
            trusted = record is not None and record.gen >= self.seen
            gen = max(self.seen, record.gen if record is not None else 0) + 1
            # Write-ahead: once marked, nobody presents this refresh token again, even if
            # this process dies before its answer arrives.
            spend = (
                record is not None
                and trusted
                and bool(record.refresh_token)
                and not record.spent
                and entry.mark_spent(record.gen)
            )
        except StoreUnavailable as exc:
            self._store_failed(exc)
            failed = True
        if failed:  # outside the handler (see _transaction)
            return self._private(fetcher, stale)
        token = None
        if spend and record is not None:
            token = self._try_refresh(fetcher, record.refresh_token)
        if token is None:
            token = self._authenticate(fetcher)
        try:
            committed = entry.commit(
                gen,
                token.access_token,
                token.refresh_token,
                token.expires_in,
                token.ttl(self.clock),
                self.clock,
            )
            if not committed:  # a holder whose lease ran out was overtaken: take theirs
                adopted = self._adopt(self._read(), stale, refresh_margin)
                if adopted is not None:
                    return adopted
        except StoreUnavailable as exc:
            # The commit may have been applied (a reply lost, a timeout after the write):
            # this refresh token may be the fleet's, so this process never presents it
            # on its own; its next renewal goes through the store or the key.
            self._store_failed(exc)
            return self._set(token, 0, private=False)
        self._store_back()
        return self._set(token, gen if committed else 0, private=not committed)

    def _private(self, fetcher: Fetcher, stale: AccessToken | None) -> AccessToken:
        """Get a token of this process's own, never presenting a shared refresh token."""
        token = None
        if stale is not None and self.private:
            token = self._try_refresh(fetcher, stale.refresh_token)
        if token is None:
            token = self._authenticate(fetcher)
        return self._set(token, 0, private=True)

    def _try_refresh(self, fetcher: Fetcher, refresh_token: str) -> AccessToken | None:
        try:
            token = fetcher.refresh(refresh_token)
        except fetcher.errors as exc:
            log.info("token refresh failed, authenticating with the API key: %s", exc)
            return None
        log.info("token refreshed, expires in %.0f s", token.expires_in)
        self.fetched = token
        return token

    def _authenticate(self, fetcher: Fetcher) -> AccessToken:
        token = fetcher.authenticate()
        log.info("authenticated with the API key, token expires in %.0f s", token.expires_in)
        self.fetched = token
        return token

    # -- records ----------------------------------------------------------------------

    def _read(self) -> tuple[Stored | None, float, float]:
        """Read the store's record, with the clocks' readings taken just before."""
        clock = self.clock
        sent, sent_wall = clock.monotonic(), clock.time()
        return self.entry.read(clock), sent, sent_wall

    def _adopt(
        self,
        read: tuple[Stored | None, float, float],
        stale: AccessToken | None,
        refresh_margin: float,
    ) -> AccessToken | None:
        """Take the stored token if it is another, newer one worth sending; else ``None``."""
        record, sent, sent_wall = read
        if record is None or record.gen < self.seen:
            return None  # absent, unreadable, or rolled back below what was seen
        self.seen = record.gen
        if stale is not None and record.access_token == stale.access_token:
            self.replaced = max(self.replaced, record.gen)
        if record.gen <= self.replaced:
            return None  # the very token being renewed, or one renewed away from
        if self.token is not None and record.gen == self.gen and not self.private:
            return None  # what this process holds already
        # Never more than the granted lifetime: a writer's clock may have run ahead.
        remaining = min(record.remaining, record.expires_in)
        token = AccessToken(
            access_token=record.access_token,
            refresh_token=record.refresh_token,
            token_type="Bearer",  # noqa: S106 - a scheme name, not a secret
            expires_in=record.expires_in,
            expires_at=sent + remaining,
            expires_at_wall=sent_wall + remaining,
        )
        if token.ttl(self.clock) <= advisory_margin(token, refresh_margin) / 4:
            return None  # about to expire: renew it instead
        self._store_back()
        return self._set(token, record.gen, private=False)

    def _set(self, token: AccessToken, gen: int, *, private: bool) -> AccessToken:
        self.gen, self.private = gen, private
        self.token = token
        return token

    def _store_failed(self, exc: StoreUnavailable) -> None:
        if not self.outage:
            self.outage = True
            log.warning("token store unavailable, using a token of this process's own: %s", exc)

    def _store_back(self) -> None:
        if self.outage:
            self.outage = False
            log.info("token store available again")

    def after_fork(self) -> None:
        """In a forked child: new locks, no inherited token, the store's entry reset.

        The parent's lock may be held by a thread that does not exist here, and its
        refresh token is the parent's (or the store's) to spend.
        """
        self.lock = threading.Lock()
        self.token = self.fetched = None
        self.gen = self.replaced = 0
        self.private = False
        self.retry_at = 0.0
        self.failure = self.failed_with = None
        self.entry.after_fork()


def _same(a: AccessToken | None, b: AccessToken | None) -> bool:
    """Return whether two tokens are the same token (by value)."""
    if a is None or b is None:
        return a is b
    return a.access_token == b.access_token


#: Managers of keys no live instance uses are kept for this many recent keys (so that
#: ``requests.get(url, auth=ApiVideoAuth(key))`` does not authenticate on every call),
#: then released.
RECENT = 64

_managers: weakref.WeakValueDictionary[tuple[str, str, int], TokenManager] = (
    weakref.WeakValueDictionary()
)
_recent: OrderedDict[tuple[str, str, int], TokenManager] = OrderedDict()
_registry_lock = threading.Lock()


def manager_for(store: TokenStore, base_url: str, api_key: str, clock: Clock) -> TokenManager:
    """Return the manager every instance for this store, base URL, key and clock shares.

    Keyed by a hash derived from the key, never the raw key; held weakly, plus the
    :data:`RECENT` most recently used.
    """
    name = entry_name(base_url, api_key)
    # The clock by identity: it may be unhashable, or equal to another one. The manager
    # holds it, so its id is not reused while the key is registered.
    key = (store.id, name, id(clock))
    with _registry_lock:
        manager = _managers.get(key)
        if manager is None:
            seal = derive(api_key, base_url, "seal")
            del api_key  # not in a traceback's locals if the store refuses the entry
            entry = store.entry(name, seal)
            manager = _managers[key] = TokenManager(entry, clock)
        _recent[key] = manager
        _recent.move_to_end(key)
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
        return manager


def entry_name(base_url: str, api_key: str) -> str:
    """Return the store entry name of a base URL and key: a SHA-256, never the key."""
    data = f"requests_apivideo/store/v1/name\0{base_url}\0{api_key}".encode()
    return hashlib.sha256(data).hexdigest()


def _reset_after_fork() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for manager in list(_managers.values()):
        manager.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)
