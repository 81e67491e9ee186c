"""TokenManager without HTTP: a scripted fetcher and a store entry that can fail on cue.

The real stores are tested against real files and a real redis-server in their own
modules; this one checks the renewal algorithm's decisions, whatever the store.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest

from requests_apivideo.manager import TokenManager
from requests_apivideo.stores import Stored, StoreUnavailable
from requests_apivideo.stores.memory import _MemoryEntry
from requests_apivideo.testing import FakeClock
from requests_apivideo.token import AccessToken, Clock

from .helpers import WatchedLock


class Refused(Exception):
    pass


class Fetcher:
    """Hands out tok1, tok2, … and records which refresh tokens were presented."""

    errors: tuple[type[Exception], ...] = (Refused,)
    timeout = 2.0
    settings = None

    def __init__(self, clock: FakeClock, ttl: float = 3600.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self.counter = itertools.count(1)
        self.calls: list[str] = []
        self.presented: list[str] = []
        self.fail_refresh = self.fail_key = False

    def _token(self) -> AccessToken:
        n = next(self.counter)
        return AccessToken(
            f"tok{n}", f"rt{n}", "Bearer", self.ttl,
            self.clock.monotonic() + self.ttl, self.clock.time() + self.ttl,
        )

    def authenticate(self) -> AccessToken:
        self.calls.append("key")
        if self.fail_key:
            raise Refused("key refused")
        return self._token()

    def refresh(self, refresh_token: str) -> AccessToken:
        self.calls.append("refresh")
        self.presented.append(refresh_token)
        if self.fail_refresh:
            raise Refused("refresh refused")
        return self._token()


class Entry(_MemoryEntry):
    """The memory entry, with a lock that can be taken by 'another process' and outages."""

    __slots__ = ("busy", "down", "locked", "ops")

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()  # names of operations that raise StoreUnavailable
        self.busy = False
        self.locked = False
        self.ops: list[str] = []

    def _op(self, name: str) -> None:
        self.ops.append(name)
        if name in self.down or "all" in self.down:
            raise StoreUnavailable(f"store down at {name}")

    def read(self, clock: Clock) -> Stored | None:
        self._op("read")
        return super().read(clock)

    def lock(self, timeout: float) -> bool:
        self._op("lock")
        if self.busy:
            return False
        self.locked = True
        return True

    def unlock(self) -> None:
        self.ops.append("unlock")
        self.locked = False

    def mark_spent(self, gen: int) -> bool:
        self._op("mark_spent")
        return super().mark_spent(gen)

    def commit(self, gen: int, *args: Any) -> bool:
        self._op("commit")
        return super().commit(gen, *args)

    def clear(self) -> None:
        self._op("clear")
        super().clear()

    def put(self, gen: int, access: str, refresh: str, remaining: float, clock: FakeClock,
            spent: bool = False) -> None:
        """Write a record as another process would."""
        self._record = (gen, access, refresh, 3600.0, clock.monotonic() + remaining, spent)


@pytest.fixture
def entry() -> Entry:
    return Entry()


@pytest.fixture
def fetcher(clock: FakeClock) -> Fetcher:
    return Fetcher(clock)


@pytest.fixture
def manager(entry: Entry, clock: FakeClock) -> TokenManager:
    return TokenManager(entry, clock)


def test_a_stored_token_is_adopted_without_a_token_call(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    entry.put(3, "theirs", "rt-theirs", 1800, clock)
    token = manager.current(fetcher, 60)
    assert token.access_token == "theirs"
    assert token.ttl(clock) == 1800  # the store's remaining lifetime, not a new hour
    assert fetcher.calls == []
    assert "lock" not in entry.ops  # adopting needs no lock


def test_the_hot_path_reads_the_store_only_when_the_token_needs_it(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    manager.current(fetcher, 60)
    entry.ops.clear()
    for _ in range(100):
        manager.current(fetcher, 60)
    assert entry.ops == []


def test_a_renewal_marks_the_refresh_token_spent_before_presenting_it(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    first = manager.current(fetcher, 60)
    entry.ops.clear()
    renewed = manager.renew(fetcher, first, 60)
    assert fetcher.presented == ["rt1"]
    assert entry.ops == ["read", "lock", "read", "mark_spent", "commit", "unlock"]
    assert renewed.access_token == "tok2"
    record = entry.read(clock)
    assert record is not None
    assert (record.gen, record.access_token, record.spent) == (2, "tok2", False)


def test_a_spent_refresh_token_is_never_presented_again(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    # Another process marked rt9 spent and died before its answer arrived.
    entry.put(9, "tok-dead", "rt9", 1800, clock, spent=True)
    stale = manager.current(fetcher, 60)
    assert stale.access_token == "tok-dead"
    renewed = manager.renew(fetcher, stale, 60)  # e.g. after a 401
    assert fetcher.presented == []
    assert fetcher.calls == ["key"]
    record = entry.read(clock)
    assert record is not None and (record.gen, record.access_token) == (10, renewed.access_token)


def test_a_failed_refresh_falls_back_to_the_key_and_keeps_the_marker(
    manager: TokenManager, entry: Entry, fetcher: Fetcher
) -> None:
    first = manager.current(fetcher, 60)
    fetcher.fail_refresh = True
    renewed = manager.renew(fetcher, first, 60)
    assert fetcher.calls == ["key", "refresh", "key"]
    assert fetcher.presented == ["rt1"]
    assert renewed.access_token == "tok2"


def test_a_newer_record_written_by_another_process_is_adopted_after_a_401(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    first = manager.current(fetcher, 60)
    entry.put(2, "renewed-elsewhere", "rt-x", 3000, clock)
    assert manager.renew(fetcher, first, 60).access_token == "renewed-elsewhere"
    assert fetcher.calls == ["key"]


def test_a_rolled_back_record_is_not_trusted(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    entry.put(5, "gen5", "rt5", 3000, clock)
    token = manager.current(fetcher, 60)
    entry.put(3, "gen3-replayed", "rt3", 3000, clock)  # a failover to an older replica
    renewed = manager.renew(fetcher, token, 60)
    assert fetcher.presented == []  # rt3 may be spent: never presented
    assert fetcher.calls == ["key"]
    record = entry.read(clock)
    assert record is not None and record.gen == 6 and record.access_token == renewed.access_token


def test_a_lost_commit_race_adopts_the_winner(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    first = manager.current(fetcher, 60)

    original = fetcher.refresh

    def refresh_while_another_process_wins(refresh_token: str) -> AccessToken:
        entry.put(7, "winner", "rt-w", 3000, clock)  # our lease ran out meanwhile
        return original(refresh_token)

    fetcher.refresh = refresh_while_another_process_wins  # type: ignore[method-assign]
    assert manager.renew(fetcher, first, 60).access_token == "winner"
    record = entry.read(clock)
    assert record is not None and record.access_token == "winner"


@pytest.mark.parametrize("where", ["read", "lock", "mark_spent", "commit", "all"])
def test_a_store_failure_never_fails_the_request_and_never_presents_the_shared_token(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock,
    where: str, caplog: pytest.LogCaptureFixture,
) -> None:
    entry.put(4, "shared", "rt-shared", 3000, clock)
    token = manager.current(fetcher, 60)
    entry.down.add(where)
    with caplog.at_level(logging.WARNING, logger="requests_apivideo"):
        renewed = manager.renew(fetcher, token, 60)
        renewed_again = manager.renew(fetcher, renewed, 60)
    assert renewed.access_token != "shared"
    assert not entry.locked  # never left holding the lock
    if where == "commit":  # marked spent while the store was up: presented, once
        assert fetcher.presented == ["rt-shared"]
    else:
        assert "rt-shared" not in fetcher.presented
    warnings = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(warnings) == 1  # one per outage, not one per renewal
    if where not in ("commit", "read", "all"):
        # The record it renewed away from is not adopted again, and a private token's
        # refresh token is this process's own: it may present it.
        assert fetcher.presented == [renewed.refresh_token]
    assert renewed_again.access_token != renewed.access_token
    assert "shared" not in caplog.text and "rt-shared" not in caplog.text


def test_the_store_is_rejoined_when_it_is_back(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    token = manager.current(fetcher, 60)
    entry.down.add("all")
    private = manager.renew(fetcher, token, 60)
    entry.down.clear()
    entry.put(8, "fleet", "rt8", 3000, clock)  # the fleet renewed meanwhile
    assert manager.renew(fetcher, private, 60).access_token == "fleet"
    assert not manager.outage


def test_a_lock_held_elsewhere_past_the_timeout_gives_a_token_of_its_own(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    entry.put(2, "held", "rt2", 3000, clock)
    token = manager.current(fetcher, 60)
    entry.busy = True  # a renewal elsewhere that outlasts the timeout
    renewed = manager.renew(fetcher, token, 60)
    assert fetcher.calls == ["key"] and fetcher.presented == []
    assert renewed.access_token != "held"


def test_an_early_refresh_does_not_wait_for_a_lock_held_elsewhere(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    token = manager.current(fetcher, 60)
    clock.advance(3600 - 50)  # in the early window
    entry.busy = True
    assert manager.current(fetcher, 60) is token
    assert fetcher.calls == ["key"]
    entry.busy = False
    entry.put(2, "renewed-elsewhere", "rt2", 3600, clock)
    clock.advance(1)  # past the short back-off: the next try adopts, no token call
    assert manager.current(fetcher, 60).access_token == "renewed-elsewhere"
    assert fetcher.calls == ["key"]


def test_a_mandatory_renewal_waiting_on_an_early_one_that_found_the_lock_taken_still_renews(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    token = manager.current(fetcher, 60)
    clock.advance(3600 - 50)
    entry.busy = True
    assert manager.current(fetcher, 60) is token  # early try: lock taken elsewhere
    entry.busy = False
    clock.advance(45)  # 5 s left: mandatory
    assert manager.current(fetcher, 60) is not token


def test_invalidate_deletes_the_fleets_record(
    manager: TokenManager, entry: Entry, fetcher: Fetcher, clock: FakeClock
) -> None:
    manager.current(fetcher, 60)
    manager.invalidate()
    assert entry.read(clock) is None
    assert manager.current(fetcher, 60).access_token == "tok2"
    assert fetcher.calls == ["key", "key"]


def test_invalidate_with_the_store_down_still_forgets_the_token(
    manager: TokenManager, entry: Entry, fetcher: Fetcher
) -> None:
    manager.current(fetcher, 60)
    entry.down.add("all")
    manager.invalidate()
    assert manager.token is None


def test_threads_that_waited_share_one_renewal_and_its_failure(
    manager: TokenManager, entry: Entry, fetcher: Fetcher
) -> None:
    token = manager.current(fetcher, 60)
    fetcher.fail_refresh = fetcher.fail_key = True
    release = threading.Event()
    original = fetcher.refresh

    def slow_refresh(refresh_token: str) -> AccessToken:
        release.wait(30)
        return original(refresh_token)

    fetcher.refresh = slow_refresh  # type: ignore[method-assign]
    lock = manager.lock = WatchedLock(manager.lock)  # type: ignore[assignment]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            manager.renew(fetcher, token, 60)
        except Refused as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    assert lock.wait_until_asked(8)  # one renews, seven wait for it
    release.set()
    for t in threads:
        t.join(30)
    assert len(errors) == 8
    assert fetcher.calls.count("refresh") == 1 and fetcher.calls.count("key") == 2
