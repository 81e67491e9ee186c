"""FileTokenStore: records, permissions, symlinks, faults, and real processes sharing it.

Functions the children run are at module level so that a spawned child can import them.
Every wait has a timeout; processes coordinate with Events, never with sleeps.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import pickle
import queue
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from requests_apivideo import FileTokenStore
from requests_apivideo.stores import StoreUnavailable, open_store
from requests_apivideo.stores import file as filestore

from .helpers import fields, join_or_kill, start_context

NAME = "ab" * 16
SECRET = bytes(range(32))
OTHER_SECRET = bytes(32)
JOIN_TIMEOUT = 60.0  # spawned children import the library first
ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parent.parent
METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]
fork_ok = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def entry_in(directory: Path | str, secret: bytes = SECRET, name: str = NAME) -> Any:
    return FileTokenStore(directory).entry(name, secret)


def commit(entry: Any, gen: int) -> bool:
    ok: bool = entry.commit(gen, f"access-{gen}", f"refresh-{gen}", 3600.0, 3600.0, time)
    return ok


def locked_commit(entry: Any, gen: int) -> bool:
    assert entry.lock(10)
    try:
        return commit(entry, gen)
    finally:
        entry.unlock()


def gen_of(entry: Any) -> int | None:
    stored = entry.read(time)
    return None if stored is None else stored.gen


def signed(fields: dict[str, Any], secret: bytes = SECRET, name: str = NAME) -> bytes:
    """The record format, computed independently of the module."""
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(secret, name.encode() + b"\0" + body, hashlib.sha256).hexdigest()
    return json.dumps({**fields, "mac": mac}, sort_keys=True, separators=(",", ":")).encode()


def plant(path: Path, raw: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    os.write(fd, raw)
    os.close(fd)


def good() -> dict[str, Any]:
    return {
        "v": 1,
        "gen": 5,
        "access_token": "a",
        "refresh_token": "r",
        "expires_in": 3600,
        "exp": time.time() + 3600,
        "spent": False,
    }


def leftovers(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def entry(store_dir: Path) -> Any:
    return entry_in(store_dir)


# Records


def test_a_record_round_trips_and_its_lifetime_runs_on_the_given_clock(
    entry: Any, clock: Any
) -> None:
    assert entry.read(clock) is None
    assert entry.lock(0)
    assert entry.commit(1, "acc", "ref", 3600.0, 100.0, clock)
    entry.unlock()
    clock.advance(30)
    stored = entry.read(clock)
    assert fields(stored) == (1, "acc", "ref", 3600.0, 70.0, False)


def test_the_format_is_the_documented_one(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    plant(store_dir / f"{NAME}.json", signed(good()))
    assert fields(entry.read(time))[:4] == (5, "a", "r", 3600.0)


def test_commit_writes_only_a_higher_generation(entry: Any) -> None:
    assert entry.lock(0)
    assert commit(entry, 2)
    assert not commit(entry, 2)
    assert not commit(entry, 1)
    assert gen_of(entry) == 2
    assert commit(entry, 7)
    entry.unlock()
    assert entry.read(time).access_token == "access-7"


def test_mark_spent_marks_only_the_stored_unspent_generation(entry: Any) -> None:
    assert entry.lock(0)
    assert not entry.mark_spent(1)  # absent
    assert commit(entry, 1)
    assert not entry.mark_spent(2)
    assert entry.mark_spent(1)
    assert not entry.mark_spent(1)  # already marked: its refresh token must not be presented
    assert entry.read(time).spent
    assert commit(entry, 2)
    entry.unlock()
    assert not entry.read(time).spent


def test_clear_deletes_the_record_and_keeps_the_lock_file(entry: Any, store_dir: Path) -> None:
    assert locked_commit(entry, 3)
    entry.clear()
    entry.clear()
    assert entry.read(time) is None
    assert (store_dir / f"{NAME}.lock").exists()
    assert locked_commit(entry, 1)  # absent counts as generation 0


def test_writes_without_the_lock_take_it_and_wait_a_bounded_time(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filestore, "WRITE_LOCK_TIMEOUT", 0.05)
    holder, other = entry_in(store_dir), entry_in(store_dir)
    assert commit(other, 1)  # nobody holds it: taken and released
    assert holder.lock(0)
    assert not other.lock(0)
    with pytest.raises(StoreUnavailable):
        commit(other, 2)
    with pytest.raises(StoreUnavailable):
        other.mark_spent(1)
    holder.unlock()
    assert other.mark_spent(1)
    assert commit(other, 2)


def test_an_entry_dropped_while_locked_releases_the_lock(store_dir: Path) -> None:
    dropped, other = entry_in(store_dir), entry_in(store_dir)
    assert dropped.lock(0)
    del dropped
    gc.collect()
    assert other.lock(0)
    other.unlock()


def test_two_threads_on_one_entry_exclude_each_other(entry: Any) -> None:
    # One open lock file per entry: flock alone would let a second thread "take" it again.
    got: list[bool] = []
    assert entry.lock(0)
    thread = threading.Thread(target=lambda: got.append(entry.lock(0)))
    thread.start()
    thread.join(10)
    assert got == [False]
    entry.unlock()
    thread = threading.Thread(target=lambda: got.append(entry.lock(0)))
    thread.start()
    thread.join(10)
    assert got == [False, True]
    entry.unlock()


def test_threads_sharing_one_entry_lose_no_update(entry: Any) -> None:
    def work() -> None:
        for _ in range(25):
            assert entry.lock(30)
            try:
                assert commit(entry, (gen_of(entry) or 0) + 1)
            finally:
                entry.unlock()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert gen_of(entry) == 100


def test_entry_names_are_hex_only(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    for bad in ("../x", "AB", "", "ab/cd", "a" * 129):
        with pytest.raises(ValueError):
            store.entry(bad, SECRET)


def test_the_store_pickles_as_its_directory_only(store_dir: Path, monkeypatch: Any) -> None:
    store = FileTokenStore(store_dir)
    assert store.id == "file:" + str(store_dir)
    assert store.__reduce__() == (FileTokenStore, (str(store_dir),))
    assert pickle.loads(pickle.dumps(store)).id == store.id
    monkeypatch.setenv("XDG_CACHE_HOME", str(store_dir.parent / "cache"))
    assert FileTokenStore().__reduce__() == (FileTokenStore, (None,))
    entry = store.entry(NAME, SECRET)
    with pytest.raises(TypeError):
        pickle.dumps(entry)  # an entry holds the secret: it never travels
    assert SECRET.hex() not in repr(entry) and "ab" * 16 not in repr(entry)


def test_store_urls_open_file_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_store(f"file:{tmp_path}/a").id == f"file:{tmp_path}/a"
    assert open_store(f"file://{tmp_path}/b").id == f"file:{tmp_path}/b"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert open_store("file:").id == f"file:{tmp_path}/xdg/requests-apivideo"


# Corrupt, foreign and tampered records read as absent and are replaced


def _cases() -> dict[str, Callable[[], bytes]]:
    return {
        "garbage": lambda: b"\x00\xffnot json",
        "empty": lambda: b"",
        "truncated": lambda: signed(good())[:40],
        "oversize": lambda: signed(good()) + b" " * filestore.MAX_RECORD,
        "foreign key": lambda: signed(good(), secret=OTHER_SECRET),
        "another entry's record": lambda: signed(good(), name="cd" * 16),
        "tampered": lambda: signed(good()).replace(b'"gen":5', b'"gen":9'),
        "unknown version": lambda: signed({**good(), "v": 2}),
        "no mac": lambda: json.dumps(good()).encode(),
        "extra field": lambda: signed({**good(), "x": 1}),
        "generation 0": lambda: signed({**good(), "gen": 0}),
        "boolean generation": lambda: signed({**good(), "gen": True}),
        "token not a string": lambda: signed({**good(), "access_token": 5}),
        "infinite expiry": lambda: signed({**good(), "exp": float("inf")}),
        "not an object": lambda: b"[1, 2, 3]",
        "deeply nested": lambda: b"[" * 100_000,
        "bad utf-8": lambda: b'{"mac": "\xff\xfe"}',
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_a_bad_record_reads_as_absent_and_the_next_commit_replaces_it(
    store_dir: Path, case: str
) -> None:
    entry = entry_in(store_dir)
    plant(store_dir / f"{NAME}.json", _cases()[case]())
    assert entry.read(time) is None
    assert entry.lock(0)
    assert not entry.mark_spent(5)
    assert commit(entry, 1)
    entry.unlock()
    assert gen_of(entry) == 1


def test_a_record_copied_from_another_entry_or_key_reads_as_absent(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    for other in (
        entry_in(store_dir, name="cd" * 16),
        entry_in(store_dir, OTHER_SECRET, "cd" * 16),
    ):
        assert locked_commit(other, 4)
        shutil.copy(store_dir / f"{'cd' * 16}.json", store_dir / f"{NAME}.json")
        assert gen_of(other) == 4 and entry.read(time) is None
        other.clear()
    foreign = entry_in(store_dir, OTHER_SECRET)  # the same name under another key
    assert locked_commit(foreign, 4)
    assert entry.read(time) is None
    assert locked_commit(entry, 1) and gen_of(entry) == 1


def test_a_commit_syncs_the_file_then_renames_then_syncs_the_directory(
    entry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(*args: Any, **kwargs: Any) -> None:
        calls.append("replace")
        real_replace(*args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    assert locked_commit(entry, 1)
    assert calls == ["fsync file", "replace", "fsync dir"]


def test_a_record_with_loose_mode_or_another_owner_reads_as_absent(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    record = store_dir / f"{NAME}.json"
    plant(record, signed(good()), mode=0o644)
    assert entry.read(time) is None
    if ROOT:
        plant(record, signed(good()))
        os.chown(record, 65534, 65534)
        assert entry.read(time) is None
    assert locked_commit(entry, 1)
    assert os.stat(record).st_uid == os.geteuid() and gen_of(entry) == 1


def test_a_fifo_at_the_record_path_neither_blocks_nor_sticks(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    fifo = store_dir / f"{NAME}.json"
    os.mkfifo(fifo, 0o600)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(entry.read(time)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # open() blocked waiting for a writer: let it go, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("reading a FIFO at the record path blocked")
    assert got == [None]
    assert locked_commit(entry, 1)
    assert gen_of(entry) == 1


def test_a_directory_at_the_record_path_makes_the_store_unavailable(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    (store_dir / f"{NAME}.json").mkdir()
    assert entry.read(time) is None
    assert entry.lock(0)
    with pytest.raises(StoreUnavailable):
        commit(entry, 1)
    entry.unlock()
    assert leftovers(store_dir) == []


# Directory and file permissions


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o277])
def test_directories_are_created_0700_and_files_0600_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        entry = entry_in(tmp_path / "a" / "b" / "store")
        assert locked_commit(entry, 1)
    finally:
        os.umask(old)
    for directory in ("a", "a/b", "a/b/store"):
        mode = os.stat(tmp_path / directory).st_mode & 0o777
        assert mode & 0o077 == 0 and (umask & 0o700 or mode == 0o700)
    for name in (f"{NAME}.json", f"{NAME}.lock"):
        assert os.stat(tmp_path / "a/b/store" / name).st_mode & 0o777 == 0o600


def test_an_existing_directory_only_we_can_write_to_is_accepted(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    assert locked_commit(entry_in(tmp_path), 1)
    assert tmp_path.stat().st_mode & 0o777 == 0o755  # left as it was


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777, 0o720, 0o702])
def test_a_named_directory_others_can_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    tmp_path.chmod(mode)
    with pytest.raises(ValueError, match="writable by others"):
        FileTokenStore(tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not ROOT, reason="needs root to chown")
def test_a_named_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    os.chown(tmp_path, 65534, 65534)
    with pytest.raises(ValueError, match="owned"):
        FileTokenStore(tmp_path)


def test_a_named_directory_that_is_a_symlink_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_bytes(b"x")
    for path in ("link", "file", "file/sub"):
        with pytest.raises(ValueError, match="not a directory"):
            FileTokenStore(tmp_path / path)
    assert os.listdir(tmp_path / "real") == []


def test_a_named_directory_is_checked_again_at_every_operation(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    store_dir.chmod(0o777)
    for operation in (lambda: entry.read(time), lambda: entry.lock(0), lambda: commit(entry, 2)):
        with pytest.raises(StoreUnavailable, match="writable by others"):
            operation()
    store_dir.chmod(0o700)
    assert gen_of(entry) == 1 and locked_commit(entry, 2)


def test_the_default_directory_is_in_the_user_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = FileTokenStore()
    assert store.directory == str(tmp_path / "xdg" / "requests-apivideo")
    assert store.id == "file:" + store.directory
    assert (tmp_path / "xdg").stat().st_mode & 0o777 == 0o700
    assert Path(store.directory).stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert FileTokenStore().directory == str(tmp_path / "home/.cache/requests-apivideo")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert filestore._default_directory() == str(tmp_path / "home/Library/Caches/requests-apivideo")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert filestore._default_directory() == str(tmp_path / "local" / "requests-apivideo")


def test_the_default_directory_writable_by_others_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = tmp_path / "requests-apivideo"
    directory.mkdir(mode=0o700)
    directory.chmod(0o777)
    with caplog.at_level(logging.WARNING, "requests_apivideo"):
        entry = FileTokenStore().entry(NAME, SECRET)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert "writable by others" in caplog.text
    directory.chmod(0o770)  # and again later, at the next operation
    assert locked_commit(entry, 1)
    assert directory.stat().st_mode & 0o777 == 0o700


def test_the_default_directory_as_a_symlink_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "target").mkdir(mode=0o700)
    (tmp_path / "requests-apivideo").symlink_to(tmp_path / "target")
    entry = FileTokenStore().entry(NAME, SECRET)  # no error at construction: "file:" is a default
    for operation in (lambda: entry.read(time), lambda: entry.lock(0), lambda: commit(entry, 1)):
        with pytest.raises(StoreUnavailable):
            operation()
    assert os.listdir(tmp_path / "target") == []


def test_it_refuses_windows_and_imports_there() -> None:
    code = """
        import sys
        import requests_apivideo
        sys.modules.pop("requests_apivideo.stores.file", None)
        sys.platform, sys.modules["fcntl"] = "win32", None
        from requests_apivideo.stores.file import FileTokenStore
        try:
            FileTokenStore("/nowhere")
        except NotImplementedError as exc:
            print("refused:", exc)
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=JOIN_TIMEOUT,
        check=True,
        env=child_env(),
    ).stdout
    assert out.startswith("refused: FileTokenStore needs POSIX")


# Symlinks planted at every path: never followed, targets unchanged


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "precious"
    path.write_bytes(b"precious")
    path.chmod(0o600)
    return path


def unchanged(target: Path) -> bool:
    return target.read_bytes() == b"precious" and target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_record_path_is_never_followed(
    store_dir: Path, target: Path, dangling: bool
) -> None:
    entry = entry_in(store_dir)
    aim = target.with_name("absent") if dangling else target
    (store_dir / f"{NAME}.json").symlink_to(aim)
    with pytest.raises(StoreUnavailable):
        entry.read(time)
    assert entry.lock(0)
    for write in (lambda: commit(entry, 1), lambda: entry.mark_spent(1)):
        with pytest.raises(StoreUnavailable):
            write()
    entry.unlock()
    assert unchanged(target) and not target.with_name("absent").exists()
    assert leftovers(store_dir) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_lock_path_is_never_followed(
    store_dir: Path, target: Path, dangling: bool
) -> None:
    entry = entry_in(store_dir)
    aim = target.with_name("absent") if dangling else target
    (store_dir / f"{NAME}.lock").symlink_to(aim)
    with pytest.raises(StoreUnavailable):
        entry.lock(0)
    with pytest.raises(StoreUnavailable):
        commit(entry, 1)
    assert unchanged(target) and not target.with_name("absent").exists()


def test_a_symlink_at_the_temp_path_is_never_followed(
    store_dir: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Temp names are random; make this one predictable to plant a symlink at it.
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    monkeypatch.setattr("requests_apivideo.stores.file.secrets.token_hex", lambda n: "0" * 2 * n)
    temp = store_dir / f".{NAME}.{'0' * 16}.tmp"
    temp.symlink_to(target)
    assert entry.lock(0)
    with pytest.raises(StoreUnavailable):
        entry.mark_spent(1)  # O_EXCL: refuses the existing name
    assert unchanged(target) and temp.is_symlink()
    assert commit(entry, 2)  # a commit first sweeps leftovers of this entry (links, not targets)
    entry.unlock()
    assert unchanged(target) and not temp.is_symlink() and gen_of(entry) == 2


def test_the_directory_swapped_for_a_symlink_is_never_followed(
    store_dir: Path, tmp_path: Path
) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    store_dir.rename(tmp_path / "moved")
    store_dir.symlink_to(elsewhere)
    operations = [
        lambda: entry.read(time),
        lambda: entry.lock(0),
        lambda: commit(entry, 2),
        lambda: entry.mark_spent(1),
        entry.clear,
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable):
            operation()
    assert os.listdir(elsewhere) == []
    assert store_dir.is_symlink()


def test_a_deleted_directory_is_recreated_and_a_lock_on_the_old_one_no_longer_counts(
    store_dir: Path,
) -> None:
    holder, other = entry_in(store_dir), entry_in(store_dir)
    assert locked_commit(holder, 1)
    assert holder.lock(0)
    shutil.rmtree(store_dir)
    assert other.read(time) is None
    assert store_dir.stat().st_mode & 0o777 == 0o700  # recreated
    assert other.lock(0)  # a new lock file: the old lock protects nothing now
    with pytest.raises(StoreUnavailable):
        commit(holder, 2)  # so its holder may no longer write
    assert commit(other, 1)
    other.unlock()
    holder.unlock()
    assert locked_commit(holder, 2)


# Disk faults


def test_a_full_disk_leaves_the_old_record_and_no_temp_file(tmpfs: Path) -> None:
    store_dir = tmpfs / "store"
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    filler = os.open(tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        while True:
            os.write(filler, b"\0" * 4096)
    os.close(filler)
    assert entry.lock(0)
    with pytest.raises(StoreUnavailable, match="No space left") as caught:
        commit(entry, 2)
    with pytest.raises(StoreUnavailable):
        entry.mark_spent(1)
    entry.unlock()
    assert "refresh-" not in str(caught.value) and "access-" not in str(caught.value)
    assert gen_of(entry) == 1 and not entry.read(time).spent
    assert leftovers(store_dir) == []
    (tmpfs / "filler").unlink()
    assert locked_commit(entry, 2)


def test_a_read_only_filesystem_is_unavailable_for_writes_and_readable(tmpfs: Path) -> None:
    store_dir = tmpfs / "store"
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    done = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True)
    if done.returncode:
        pytest.skip("cannot remount read-only")
    entry = entry_in(store_dir)  # constructing on a read-only disk is fine
    assert gen_of(entry) == 1
    for operation in (lambda: entry.lock(0), lambda: commit(entry, 2), entry.clear):
        with pytest.raises(StoreUnavailable, match="Read-only"):
            operation()
    with pytest.raises(StoreUnavailable):
        entry_in(tmpfs / "missing").read(time)  # cannot be created


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_a_directory_we_cannot_write_is_unavailable_not_fatal(store_dir: Path) -> None:
    # Root ignores chmod: the child runs without CAP_DAC_OVERRIDE, so a 0500 directory
    # really refuses its writes (EACCES), as it would for any other user.
    store_dir.mkdir(mode=0o500)
    code = f"""
        import time
        from requests_apivideo import FileTokenStore
        from requests_apivideo.stores import StoreUnavailable
        entry = FileTokenStore({str(store_dir)!r}).entry({NAME!r}, bytes(32))
        print(entry.read(time))
        for operation in (lambda: entry.lock(0), entry.clear):
            try:
                operation()
            except StoreUnavailable as exc:
                print("unavailable:", exc)
    """
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    done = subprocess.run(
        [*drop, sys.executable, "-c", textwrap.dedent(code)],
        text=True,
        capture_output=True,
        timeout=JOIN_TIMEOUT,
        env=child_env(),
    )
    if "setpriv:" in done.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    denied = f"unavailable: file token store {store_dir}: Permission denied"
    assert done.stdout.splitlines() == ["None", denied]
    assert os.listdir(store_dir) == []


@pytest.mark.parametrize("call", ["read", "fsync", "replace"])
def test_an_io_error_is_unavailable_and_leaves_the_old_record(
    entry: Any, store_dir: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    # Simulated at the os call boundary: no EIO device here.
    assert locked_commit(entry, 1)

    def eio(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(os, call, eio)
        with pytest.raises(StoreUnavailable, match="Input/output error"):
            entry.read(time) if call == "read" else locked_commit(entry, 2)
    assert entry.lock(0)  # released on the way out
    entry.unlock()
    assert gen_of(entry) == 1 and leftovers(store_dir) == []


# Real processes


def _count_up(directory: str, rounds: int, go: Any, results: Any) -> None:
    try:
        entry = entry_in(directory)
        assert go.wait(JOIN_TIMEOUT)
        ok = 0
        for _ in range(rounds):
            assert entry.lock(JOIN_TIMEOUT)
            try:
                ok += commit(entry, (gen_of(entry) or 0) + 1)
            finally:
                entry.unlock()
        results.put(ok)
    except BaseException as exc:
        results.put(repr(exc))


@pytest.mark.parametrize("method", METHODS)
def test_the_lock_excludes_processes_and_no_update_is_lost(store_dir: Path, method: str) -> None:
    processes, rounds = 4, 25
    FileTokenStore(store_dir)
    context = start_context(method)
    go, results = context.Event(), context.Queue()
    children = [
        context.Process(target=_count_up, args=(str(store_dir), rounds, go, results))
        for _ in range(processes)
    ]
    try:
        for child in children:
            child.start()
        go.set()
        reports = [results.get(timeout=JOIN_TIMEOUT) for _ in children]
    except queue.Empty:
        pytest.fail("a child did not report")
    finally:
        join_or_kill(children, JOIN_TIMEOUT)
        results.close()
        results.join_thread()
    assert reports == [rounds] * processes
    assert gen_of(entry_in(store_dir)) == processes * rounds


def _hold_and_hang(directory: str, mark: bool, ready: Any, never: Any) -> None:
    entry = entry_in(directory)
    if entry.lock(10) and (not mark or entry.mark_spent(1)):
        ready.set()
    never.wait(JOIN_TIMEOUT)


@pytest.mark.parametrize("mark", [True, False], ids=["after-marking", "before-marking"])
@pytest.mark.parametrize("method", METHODS)
def test_a_holder_killed_frees_the_lock_at_once_and_its_mark_stays(
    store_dir: Path, method: str, mark: bool
) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    context = start_context(method)
    ready, never = context.Event(), context.Event()
    child = context.Process(target=_hold_and_hang, args=(str(store_dir), mark, ready, never))
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT), "the child did not take the lock"
        assert not entry.lock(0)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(JOIN_TIMEOUT)
        assert child.exitcode == -signal.SIGKILL
    finally:
        join_or_kill([child], JOIN_TIMEOUT)
    assert entry.lock(0)  # the kernel released it with the process
    assert entry.read(time).spent is mark
    assert entry.mark_spent(1) is not mark  # a marked token is never presented again
    entry.unlock()


def _write_and_hang(directory: str, when: str, ready: Any, never: Any) -> None:
    real = os.replace

    def paused(*args: Any, **kwargs: Any) -> None:
        if when == "after":
            real(*args, **kwargs)
        ready.set()
        never.wait(JOIN_TIMEOUT)

    os.replace = paused
    locked_commit(entry_in(directory), 2)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("method", METHODS)
def test_a_writer_killed_around_the_rename_leaves_a_whole_record(
    store_dir: Path, method: str, when: str
) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    context = start_context(method)
    ready, never = context.Event(), context.Event()
    child = context.Process(target=_write_and_hang, args=(str(store_dir), when, ready, never))
    child.start()
    try:
        assert ready.wait(JOIN_TIMEOUT), "the child did not reach the rename"
        child.kill()
        child.join(JOIN_TIMEOUT)
    finally:
        join_or_kill([child], JOIN_TIMEOUT)
    assert gen_of(entry) == (1 if when == "before" else 2)
    assert len(leftovers(store_dir)) == (1 if when == "before" else 0)  # written, not renamed
    assert locked_commit(entry, 3)
    assert leftovers(store_dir) == [] and gen_of(entry) == 3


def _commit_forever(directory: str, started: Any) -> None:
    entry = entry_in(directory)
    gen = 1
    while True:
        gen += 1
        locked_commit(entry, gen)
        started.set()


@fork_ok
def test_writers_killed_at_arbitrary_moments_never_tear_the_record(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    context = start_context(METHODS[0])
    for _ in range(5):
        started = context.Event()
        child = context.Process(target=_commit_forever, args=(str(store_dir), started))
        child.start()
        try:
            assert started.wait(JOIN_TIMEOUT)
            child.kill()
        finally:
            join_or_kill([child], JOIN_TIMEOUT)
        stored = entry.read(time)
        assert stored is not None and stored.access_token == f"access-{stored.gen}"
    assert locked_commit(entry, 10**6) and leftovers(store_dir) == []


def _in_forked_child(entry: Any, results: Any, released: Any) -> None:
    try:
        first = entry.lock(0)  # the parent's thread holds it: neither shared nor hung
        results.put(first)
        assert released.wait(JOIN_TIMEOUT)
        results.put(entry.lock(JOIN_TIMEOUT) and commit(entry, 2))
        entry.unlock()
    except BaseException as exc:
        results.put(repr(exc))


@fork_ok
@pytest.mark.skipif("fork" not in METHODS, reason="no fork on this platform")
def test_an_entry_collected_after_its_module_is_torn_down_says_nothing(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At interpreter exit a module's globals can be gone before the objects that use them
    # (a twin's entry): collecting one then must not print "Exception ignored in __del__".
    entry = entry_in(store_dir)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(filestore, "os", None)
    del entry
    gc.collect()
    monkeypatch.undo()
    assert unraisable == []


def test_fork_while_another_thread_holds_the_entry_lock(store_dir: Path) -> None:
    entry = entry_in(store_dir)
    assert locked_commit(entry, 1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        assert entry.lock(10)
        held.set()
        release.wait(JOIN_TIMEOUT)
        entry.unlock()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    context = multiprocessing.get_context("fork")
    results, released = context.Queue(), context.Event()
    child = context.Process(target=_in_forked_child, args=(entry, results, released))
    try:
        child.start()
        first = results.get(timeout=JOIN_TIMEOUT)
        release.set()
        holder.join(JOIN_TIMEOUT)
        released.set()
        second = results.get(timeout=JOIN_TIMEOUT)
    except queue.Empty:
        pytest.fail("the forked child hung")
    finally:
        release.set()
        join_or_kill([child], JOIN_TIMEOUT)
        results.close()
        results.join_thread()
    assert (first, second) == (False, True)
    assert gen_of(entry) == 2
    assert entry.lock(0)  # the parent's lock was not broken by the child either
    entry.unlock()
