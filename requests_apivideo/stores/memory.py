"""The in-memory store: this process only (the default)."""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import Stored

if TYPE_CHECKING:
    from ..token import Clock

__all__ = ("MemoryTokenStore",)

# name -> entry, for the whole process: every MemoryTokenStore is the same place. Held
# weakly: an entry lives as long as a manager (so an ApiVideoAuth) uses it.
_entries: weakref.WeakValueDictionary[str, _MemoryEntry] = weakref.WeakValueDictionary()
_entries_lock = threading.Lock()


def _reset_after_fork() -> None:
    # Another thread may have held the lock at fork(): it does not exist in the child.
    global _entries_lock
    _entries_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_after_fork)


class MemoryTokenStore:
    """Keep tokens in this process's memory; forked and spawned children start empty."""

    id = "memory:"

    def entry(self, name: str, secret: bytes) -> _MemoryEntry:
        """Return the entry called ``name``."""
        with _entries_lock:
            entry = _entries.get(name)
            if entry is None:
                entry = _entries[name] = _MemoryEntry()
            return entry

    def __repr__(self) -> str:
        return "MemoryTokenStore()"

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemoryTokenStore, ())


class _MemoryEntry:
    """One record in memory; its lifetime is kept on the monotonic clock.

    The manager's own thread lock already serialises renewals in this process, which is
    all the lock this store needs.
    """

    __slots__ = ("__weakref__", "_record")

    def __init__(self) -> None:
        # (gen, access, refresh, expires_in, expires_at on clock.monotonic(), spent)
        self._record: tuple[int, str, str, float, float, bool] | None = None

    def read(self, clock: Clock) -> Stored | None:
        """Return the record, or ``None``."""
        record = self._record
        if record is None:
            return None
        gen, access, refresh, expires_in, expires_at, spent = record
        return Stored(gen, access, refresh, expires_in, expires_at - clock.monotonic(), spent)

    def lock(self, timeout: float) -> bool:
        """Return ``True``: the manager's thread lock is this store's lock."""
        return True

    def unlock(self) -> None:
        """Do nothing (see :meth:`lock`)."""

    def mark_spent(self, gen: int) -> bool:
        """Mark record ``gen`` as spent if it is the stored one and unmarked."""
        record = self._record
        if record is None or record[0] != gen or record[5]:
            return False
        self._record = (*record[:5], True)
        return True

    def commit(
        self,
        gen: int,
        access_token: str,
        refresh_token: str,
        expires_in: float,
        remaining: float,
        clock: Clock,
    ) -> bool:
        """Store generation ``gen`` if the stored one is lower."""
        record = self._record
        if record is not None and record[0] >= gen:
            return False
        expires_at = clock.monotonic() + remaining
        self._record = (gen, access_token, refresh_token, expires_in, expires_at, False)
        return True

    def clear(self) -> None:
        """Forget the record."""
        self._record = None

    def after_fork(self) -> None:
        """Forget the parent's token: its refresh token is the parent's to spend."""
        self._record = None
