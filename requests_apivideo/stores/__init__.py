"""Where tokens live: the store protocol, the in-memory store and ``store=`` resolution.

A *store* (what ``ApiVideoAuth(store=...)`` takes) holds one *entry* per (base URL, API
key). :class:`~requests_apivideo.manager.TokenManager` drives an entry through the small
protocol below; it never looks at what kind of store it has. Nothing here imports requests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..token import Clock

__all__ = (
    "StoreEntry",
    "StoreUnavailable",
    "Stored",
    "TokenStore",
    "derive",
    "open_store",
)



class StoreUnavailable(Exception):
    """The store cannot be used right now (down, slow, full, read-only, refused).

    Raised by entries for any I/O failure; the manager then goes on with a token of its
    own. Its message must hold no secret (entries name the store, never a value).
    """


class Stored:
    """One token record as a store holds it.

    ``remaining`` is the lifetime left when the record was read, by the store's own clock
    (the machine's wall clock for files, Redis's ``TIME`` for Redis), so machines whose
    clocks disagree still agree on it. ``spent`` is the write-ahead marker: set before the
    refresh token is presented, so nobody presents it again. (A plain class: a NamedTuple
    costs more import time than the rest of this module, #9.)
    """

    __slots__ = ("access_token", "expires_in", "gen", "refresh_token", "remaining", "spent")

    def __init__(
        self,
        gen: int,
        access_token: str,
        refresh_token: str,
        expires_in: float,
        remaining: float,
        spent: bool,
    ) -> None:
        self.gen = gen
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.expires_in = expires_in
        self.remaining = remaining
        self.spent = spent

    def __repr__(self) -> str:  # the tokens never: tracebacks show locals
        return (
            f"Stored(gen={self.gen}, expires_in={self.expires_in}, "
            f"remaining={self.remaining:.1f}, spent={self.spent})"
        )


@runtime_checkable
class StoreEntry(Protocol):
    """The record of one (base URL, API key) in a store, and the lock that guards it.

    Every method may raise :class:`StoreUnavailable`; none may raise anything else for a
    store problem, and none may block longer than the store's own bound. A corrupt,
    truncated, tampered, foreign or unknown-version record reads as absent (``None``).
    """

    def read(self, clock: Clock) -> Stored | None:
        """Return the record, or ``None`` if there is none (or none that is readable)."""

    def lock(self, timeout: float) -> bool:
        """Take the entry's lock for the whole fleet; ``False`` if not had within ``timeout``.

        ``timeout=0`` tries once. The lock may expire (a lease) if its holder dies; a
        holder that outlives it is fenced by :meth:`commit`.
        """

    def unlock(self) -> None:
        """Release the lock if this process still holds it; never raises."""

    def mark_spent(self, gen: int) -> bool:
        """Mark record ``gen``'s refresh token as about to be presented.

        Under the lock. ``True`` if the stored record is ``gen`` and was not marked yet;
        ``False`` otherwise (then the refresh token must not be presented).
        """

    def commit(
        self,
        gen: int,
        access_token: str,
        refresh_token: str,
        expires_in: float,
        remaining: float,
        clock: Clock,
    ) -> bool:
        """Store a new token as generation ``gen``, unmarked, if the stored gen is lower.

        An absent or unreadable record counts as generation 0. ``False``: a record of
        generation ``gen`` or higher is there already (someone else renewed; adopt theirs).
        """

    def clear(self) -> None:
        """Delete the record (``invalidate()``)."""

    def after_fork(self) -> None:
        """In a forked child: drop locks, descriptors and connections of the parent."""


@runtime_checkable
class TokenStore(Protocol):
    """A place for token records: memory, a directory, a Redis server.

    ``id`` names the place (e.g. ``"file:/home/me/.cache/requests-apivideo"``): instances
    with the same ``id``, base URL and key in one process share one manager. A store must
    pickle as its configuration only (no lock, descriptor, client or socket).
    """

    id: str

    def entry(self, name: str, secret: bytes) -> StoreEntry:
        """Return the entry called ``name`` (hex); ``secret`` (32 bytes) seals or signs it."""


def derive(api_key: str, base_url: str, purpose: str) -> bytes:
    """Return 32 bytes derived from the API key by HKDF-SHA256 (RFC 5869) for ``purpose``.

    Sealing and signing keys use ``purpose="seal"``: they do not reveal the key, and a
    value sealed for one base URL does not open for another. (Entry names are a plain
    SHA-256 of the base URL and key, cheaper for the per-instance registry look-up.)
    """
    prk = hmac.new(b"requests_apivideo/store/v1", api_key.encode(), hashlib.sha256).digest()
    info = f"{purpose}\0{base_url}".encode()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _memory() -> TokenStore:
    """Return the process's memory store (one object: every memory store is the same place)."""
    global _MEMORY
    if _MEMORY is None:
        from .memory import MemoryTokenStore

        _MEMORY = MemoryTokenStore()
    return _MEMORY


_MEMORY: TokenStore | None = None


def open_store(spec: TokenStore | str) -> TokenStore:
    """Return the store for ``ApiVideoAuth(store=spec)`` (``None`` is resolved there).

    Strings:
    ``"memory:"``, ``"file:"``, ``"file:/dir"``, ``"file:///dir"``, ``"redis://…"``,
    ``"rediss://…"``, ``"unix://…"``.

    :raises ValueError: an unknown store URL.
    :raises ImportError: a Redis URL without the ``requests-apivideo[redis]`` extra.
    """
    if not isinstance(spec, str):
        if isinstance(spec, TokenStore):
            return spec
        raise TypeError(f"store must be a str or a token store, not {type(spec).__name__}")
    scheme = spec.partition(":")[0].lower()
    if spec == "memory:" or spec.strip().lower() == "memory:":
        return _memory()
    if scheme == "file" and ":" in spec:
        from .file import FileTokenStore

        rest = spec.partition(":")[2]
        if rest.startswith("//"):
            host, _, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                host = host.rpartition("@")[2]  # never a password in a message
                raise ValueError(f"a file: store must be on this machine, not {host!r}")
            rest = "/" + path
        if rest and not os.path.isabs(os.path.expanduser(rest)):
            # Relative to the working directory: processes started elsewhere would not
            # share it, and tokens would land wherever a process runs.
            raise ValueError(f"a file: store needs an absolute directory, not {rest!r}")
        return FileTokenStore(rest or None)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisTokenStore

        return RedisTokenStore(spec)
    shown = scheme + ":" if ":" in spec else spec  # the rest of a URL may hold a password
    raise ValueError(
        f"unknown token store {shown!r}: use 'memory:', 'file:', 'file:/dir' or a "
        "redis://, rediss:// or unix:// URL"
    )
