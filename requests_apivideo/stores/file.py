"""The file store: the processes of one machine share a token through a directory.

Each entry is two files in a directory only its owner can write to: ``<name>.json``, the
record, signed with the entry's secret and replaced atomically (temp file, fsync, rename,
fsync of the directory), and ``<name>.lock``, locked with :func:`fcntl.flock` and never
deleted. Paths are opened relative to the directory's descriptor, never through a symlink.
Every I/O failure is a :class:`~requests_apivideo.stores.StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import Stored, StoreUnavailable

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from ..token import Clock

__all__ = ("FileTokenStore",)

log = logging.getLogger(__name__)

_POSIX = sys.platform != "win32" and os.open in os.supports_dir_fd
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at a path must not block open()
#: Records larger than this are not read (a token record is about 2 KiB).
MAX_RECORD = 16 * 1024
#: How long commit() and mark_spent() wait for the lock when called without it.
WRITE_LOCK_TIMEOUT = 1.0
_FIELDS = frozenset(("v", "gen", "access_token", "refresh_token", "expires_in", "exp", "spent"))
_NAME = re.compile(r"[0-9a-f]{1,128}")


class _Refused(StoreUnavailable):
    """The directory is unsafe: a symlink, not a directory, another user's, writable by others."""


def _default_directory() -> str:
    """Return ``requests-apivideo`` in the per-user cache directory of this platform."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):  # the XDG spec: a relative path is ignored
            base = os.path.expanduser("~/.cache")
    return os.path.join(base, "requests-apivideo")


def _makedirs(path: str) -> None:
    """Create ``path`` and its missing parents, each 0700."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        _makedirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


class FileTokenStore:
    """Keep tokens in a directory shared by the processes of one machine (POSIX only).

    :param directory: where the files go; created 0700 (with its parents) if missing.
        ``None`` (the default) is ``requests-apivideo`` in the per-user cache directory
        (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS).
    :raises ValueError: ``directory`` is a symlink, not a directory, not owned by this
        user, or writable by others (0755 is fine). The default directory is never refused
        here: if others can write to it and it is ours it is set back to 0700, otherwise
        every operation raises ``StoreUnavailable`` and tokens stay private to each process.
    :raises NotImplementedError: on Windows (no ``flock``, ``O_NOFOLLOW`` or ``dir_fd``).
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        if not _POSIX:
            raise NotImplementedError(
                "FileTokenStore needs POSIX (flock, O_NOFOLLOW, dir_fd); on this system "
                "use store='memory:' or a Redis store"
            )
        self._named = directory is not None
        path = _default_directory() if directory is None else os.fsdecode(directory)
        self.directory = os.path.abspath(os.path.expanduser(path))
        self.id = "file:" + self.directory
        try:
            with self._dir():
                pass
        except _Refused as exc:
            if self._named:
                raise ValueError(str(exc)) from None
        except StoreUnavailable:
            pass  # a fault (read-only disk, ...), not a refusal: each operation retries

    def entry(self, name: str, secret: bytes) -> _FileEntry:
        """Return the entry called ``name`` (hex), signed with ``secret``."""
        if not _NAME.fullmatch(name):
            raise ValueError("an entry name is 1 to 128 lowercase hex digits")
        return _FileEntry(self, name, secret)

    @contextlib.contextmanager
    def _dir(self) -> Iterator[int]:
        """Yield the checked directory's descriptor; an ``OSError`` becomes StoreUnavailable."""
        try:
            fd = self._open_dir()
            try:
                yield fd
            finally:
                os.close(fd)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            raise StoreUnavailable(f"file token store {self.directory}: {reason}") from None

    def _open_dir(self) -> int:
        """Open the directory (created if missing) without following a symlink, and check it."""
        flags = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(self.directory, flags)
        except FileNotFoundError:
            _makedirs(self.directory)
            fd = os.open(self.directory, flags)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise _Refused(f"{self.directory} is a symlink or not a directory") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                raise _Refused(f"{self.directory} is not a directory owned by this user")
            if st.st_mode & 0o022:
                if self._named:
                    raise _Refused(f"{self.directory} is writable by others")
                os.fchmod(fd, 0o700)  # the default directory is ours: take it back
                log.warning("token store %s was writable by others: set to 0700", self.directory)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def __repr__(self) -> str:
        return f"FileTokenStore({self.directory!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileTokenStore, (self.directory if self._named else None,))


class _FileEntry:
    """One entry: ``<name>.json`` and ``<name>.lock`` in the store's directory.

    Its lock is a thread lock (for this process's threads) plus ``flock`` on the lock file
    (for processes), held from :meth:`lock` to :meth:`unlock`; the lock file is open only
    meanwhile. Writes made without the lock take it for themselves.
    """

    def __init__(self, store: FileTokenStore, name: str, secret: bytes) -> None:
        self._store = store
        self._name = name
        self._secret = secret
        self._record = name + ".json"
        self._lockname = name + ".lock"
        self._thread_lock = threading.Lock()
        self._owner: int | None = None  # the thread holding the lock
        self._fd: int | None = None  # the lock file, while locked
        self._pid = os.getpid()
        _entries.add(self)

    def __del__(self, _getpid: Callable[[], int] = os.getpid) -> None:
        # os.getpid bound here: at interpreter exit this module's globals may be gone first.
        if getattr(self, "_pid", None) == _getpid():  # never release a parent's lock
            self._close_lock_file()

    def __repr__(self) -> str:
        return f"<FileTokenStore entry {self._name[:12]} in {self._store.directory}>"

    def read(self, clock: Clock) -> Stored | None:
        """Return the record, or ``None`` if there is none that is ours and intact."""
        with self._store._dir() as dfd:
            data = self._load(dfd)
        if data is None:
            return None
        remaining = data["exp"] - clock.time()
        access, refresh, spent = data["access_token"], data["refresh_token"], data["spent"]
        return Stored(data["gen"], access, refresh, float(data["expires_in"]), remaining, spent)

    def lock(self, timeout: float) -> bool:
        """Take the lock, polling up to ``timeout`` seconds (0: try once)."""
        self._check_fork()
        timeout = max(timeout, 0.0)
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(True, timeout):
            return False
        try:
            with self._store._dir() as dfd:
                if self._flock(dfd, deadline):
                    self._owner = threading.get_ident()
                    return True
        except BaseException:
            self._close_lock_file()
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def unlock(self) -> None:
        """Release the lock if held; never raises."""
        if self._owner is not None:
            self._owner = None
            self._close_lock_file()
            self._thread_lock.release()

    def mark_spent(self, gen: int) -> bool:
        """Mark record ``gen`` spent, if it is the stored one and not marked yet."""
        with self._locked() as dfd:
            data = self._load(dfd)
            if data is None or data["gen"] != gen or data["spent"]:
                return False
            self._write(dfd, {**data, "spent": True})
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
        """Store generation ``gen`` if the stored one (0 if none is readable) is lower."""
        with self._locked() as dfd:
            data = self._load(dfd)
            if data is not None and data["gen"] >= gen:
                return False
            self._sweep(dfd)
            exp = clock.time() + remaining
            tokens = {"access_token": access_token, "refresh_token": refresh_token}
            self._write(dfd, {"v": 1, "gen": gen, **tokens, "expires_in": expires_in,
                              "exp": exp, "spent": False})  # fmt: skip
            return True

    def clear(self) -> None:
        """Delete the record."""
        with self._store._dir() as dfd, contextlib.suppress(FileNotFoundError):
            os.unlink(self._record, dir_fd=dfd)
            os.fsync(dfd)

    def after_fork(self) -> None:
        """Forget the parent's lock without releasing it (a flock is shared across fork)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._owner = None
        self._thread_lock = threading.Lock()
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self.after_fork()

    def _flock(self, dfd: int, deadline: float) -> bool:
        """Poll for the flock until ``deadline``; ``True`` once held on the linked lock file."""
        delay = 0.002
        while True:
            if self._fd is None:
                self._fd = self._open_lock_file(dfd)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                if self._linked(dfd):
                    return True
                self._close_lock_file()  # the file was replaced (directory recreated)
            left = deadline - time.monotonic()
            if left <= 0:
                self._close_lock_file()
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)

    def _open_lock_file(self, dfd: int) -> int:
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK
        fd = os.open(self._lockname, flags, 0o600, dir_fd=dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise StoreUnavailable(f"{self!r}: the lock file is not this user's file")
            if stat.S_IMODE(st.st_mode) != 0o600:
                os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _close_lock_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)  # even if a child still shares the description
            with contextlib.suppress(OSError):
                os.close(fd)

    def _linked(self, dfd: int) -> bool:
        """Tell whether the locked file is still the one at the lock path."""
        try:
            held = os.fstat(self._fd) if self._fd is not None else None
            there = os.stat(self._lockname, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return False
        return held is not None and (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """Yield the directory's descriptor under the lock (taken here if this thread lacks it)."""
        self._check_fork()
        mine = self._owner == threading.get_ident()
        if not mine and not self.lock(WRITE_LOCK_TIMEOUT):
            raise StoreUnavailable(f"{self!r}: the lock is busy")
        try:
            with self._store._dir() as dfd:
                if not self._linked(dfd):
                    raise StoreUnavailable(f"{self!r}: the lock file was replaced")
                yield dfd
        finally:
            if not mine:
                self.unlock()

    def _load(self, dfd: int) -> dict[str, Any] | None:
        """Return the record if it is a small regular 0600 file of ours, and intact."""
        try:
            fd = os.open(self._record, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK, dir_fd=dfd)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            mode, uid = stat.S_IMODE(st.st_mode), st.st_uid
            if not stat.S_ISREG(st.st_mode) or uid != os.geteuid() or mode != 0o600:
                return None
            raw = b""
            while len(raw) <= MAX_RECORD and (chunk := os.read(fd, MAX_RECORD + 1 - len(raw))):
                raw += chunk
        finally:
            os.close(fd)
        return self._parse(raw) if len(raw) <= MAX_RECORD else None

    def _parse(self, raw: bytes) -> dict[str, Any] | None:
        """Return the record if its MAC (over the content and the name) checks out."""
        try:
            data = json.loads(raw)
            mac = data.pop("mac")
            if set(data) != _FIELDS or not hmac.compare_digest(mac, self._mac(data)):
                return None
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            return None
        ints, numbers = (data["v"], data["gen"]), (data["expires_in"], data["exp"])
        valid = (
            all(type(n) is int for n in ints) and data["v"] == 1 and data["gen"] > 0
            and all(type(n) in (int, float) for n in numbers) and type(data["spent"]) is bool
            and isinstance(data["access_token"], str) and isinstance(data["refresh_token"], str)
        )  # fmt: skip
        return data if valid else None

    def _mac(self, data: dict[str, Any]) -> str:
        message = self._name.encode() + b"\0" + _canonical(data)
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _write(self, dfd: int, data: dict[str, Any]) -> None:
        """Replace the record atomically: O_EXCL temp file, fsync, rename, fsync the directory."""
        raw = _canonical({**data, "mac": self._mac(data)})
        if len(raw) > MAX_RECORD:
            raise StoreUnavailable(f"{self!r}: the record would be too large")
        temp = f".{self._name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        fd = os.open(temp, flags, 0o600, dir_fd=dfd)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                view = memoryview(raw)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._record, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dfd)
            raise
        os.fsync(dfd)

    def _sweep(self, dfd: int) -> None:
        """Remove temp files of this entry left by writers killed mid-write (we hold the lock)."""
        prefix = f".{self._name}."
        with contextlib.suppress(OSError):
            for leftover in os.listdir(dfd):
                if leftover.startswith(prefix) and leftover.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(leftover, dir_fd=dfd)


# Every live entry, so a forked child drops its parent's lock at once (the manager may too).
_entries: weakref.WeakSet[_FileEntry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    with contextlib.suppress(Exception):
        for entry in list(_entries):
            entry.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
