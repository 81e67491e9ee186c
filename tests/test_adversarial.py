"""An adversarial review of the fleet design: each test here proved a bug (now fixed).

Real files, a real redis-server (tests/redis_server.py), real processes and a loopback TCP
proxy in front of Redis that can swallow replies or refuse connections (a network fault
that hits one machine and not the others).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, FakeClock

from .helpers import WatchedLock
from .redis_server import RedisServer

pytestmark = pytest.mark.integration
WAIT = 60.0


@pytest.fixture
def fake(key: str) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key]) as server:
        yield server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class Proxy:
    """A TCP proxy on 127.0.0.1 to ``port``: passes, loses one reply, or refuses.

    ``"lose-reply"`` forwards what clients send and throws the server's next reply away,
    then passes again: the server did the work, the client never learns it (a reply that
    came after the client's socket timeout). ``"refuse"`` closes every connection, old and
    new (a link down from this machine only).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "pass"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse":
            self._close_all()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port))
            except OSError:  # the server is down: so is the link
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if replies and self.mode == "lose-reply":
                    self.mode = "pass"
                    continue
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    p = Proxy(redis_server.port)
    yield p
    p.close()


def wait_until(condition: Any, timeout: float = WAIT) -> None:
    """Wait (bounded) for something a server does on its own time."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("timed out")


# -- 1. a commit whose reply was lost ---------------------------------------------------


def test_a_commit_whose_reply_was_lost_never_leads_to_a_second_presentation(
    fake: FakeApiVideo, key: str, proxy: Proxy, redis_server: RedisServer
) -> None:
    """A commit that timed out may have been applied: its refresh token is the fleet's.

    Machine A's commit reaches Redis but its reply is lost. A must not treat the token as
    its own (private): if it later renews while it cannot reach Redis, it must not present
    that refresh token, which machine B, reading the record, presents too.
    """
    redis = pytest.importorskip("redis")
    rec = redis.Redis.from_url(redis_server.url)
    token_calls = requests.Session()  # A's session for token calls: then a reply is lost
    token_calls.hooks["response"].append(
        lambda r, **kw: proxy.set_mode("lose-reply") if r.url.endswith("/auth/refresh") else None
    )
    a = ApiVideoAuth(key, base_url=fake.url, store=proxy.url, session=token_calls)
    first = a._manager.current(a._calls, a.refresh_margin)  # gen 1, through the proxy
    a._renew(first)  # as after a 401: mark spent, refresh, then the commit's reply is lost
    name = a._manager.entry._rec  # type: ignore[attr-defined]
    wait_until(lambda: rec.hget(name, "gen") == b"2")  # Redis did apply the commit

    proxy.set_mode("refuse")  # now A cannot reach Redis at all; B can
    fake.expire_all()
    with requests.get(fake.url + "/videos", auth=a, timeout=30) as response:
        assert response.status_code == 200
    b = ApiVideoAuth(key, base_url=fake.url, store=redis_server.url)
    with requests.get(fake.url + "/videos", auth=b, timeout=30) as response:
        assert response.status_code == 200
    assert fake.refresh_reuses == 0
    token_calls.close()
    rec.close()


# -- 2. a dead token adopted after a 401 ------------------------------------------------


def _renew_off_cycle(url: str, key: str, store: str) -> None:
    """Another process renews the shared token early (as after a 401 of its own)."""
    auth = ApiVideoAuth(key, base_url=url, store=store)
    auth._renew(auth._token())


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_a_dead_token_adopted_after_a_401_does_not_make_the_path_refuse_for_good(
    fake: FakeApiVideo, key: str, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A process on T1 gets a 401; the store holds T2, renewed elsewhere before the event.

    The 401 adopts T2 (no token call), and the replay with T2 is refused too: T2 died in
    the same revocation. That says nothing about the path, so the next request there must
    renew T2, not be handed back its 401 until T2 expires (an hour of 401s on the path).
    """
    if kind == "file":
        store = f"file:{tmp_path / 'tokens'}"
    else:
        store = request.getfixturevalue("redis_server").url
    with requests.Session() as session:
        session.auth = ApiVideoAuth(key, base_url=fake.url, store=store)
        assert session.get(fake.url + "/videos").status_code == 200  # T1, gen 1
        other = multiprocessing.get_context("spawn").Process(
            target=_renew_off_cycle, args=(fake.url, key, store)
        )
        other.start()
        other.join(WAIT)
        assert other.exitcode == 0
        assert fake.refresh_calls == 1  # T2 is in the store; this process still sends T1
        fake.revoke_all()  # T1 and T2 die
        statuses = [session.get(fake.url + "/videos").status_code for _ in range(5)]
    # The first request can only replay once, with the T2 it adopted: it may get its 401.
    assert statuses[1:] == [200] * 4, statuses
    assert fake.refresh_reuses == 0


def _post_refused(url: str, key: str, store: str, n: int, out: Any) -> None:
    """Send ``n`` requests to an endpoint that refuses every bearer token (a 401 each)."""
    try:
        with requests.Session() as session:
            session.auth = ApiVideoAuth(key, base_url=url, store=store)
            out.put([session.post(url + "/upload", data=b"x").status_code for _ in range(n)])
    except BaseException as exc:
        out.put(repr(exc))


def test_a_fleet_on_an_endpoint_that_always_answers_401_renews_at_most_twice_per_process(
    fake: FakeApiVideo, key: str, tmp_path: Path
) -> None:
    """The bound kept by the fix above: a token adopted and refused costs one more renewal."""
    store, processes, n = f"file:{tmp_path / 'tokens'}", 3, 10
    ApiVideoAuth(key, base_url=fake.url, store=store).get_token()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    workers = [
        context.Process(target=_post_refused, args=(fake.url, key, store, n, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=WAIT) for _ in workers]
    for worker in workers:
        worker.join(WAIT)
    assert reports == [[401] * n] * processes
    assert fake.token_calls <= 1 + 2 * processes  # not one per request
    assert fake.refresh_reuses == 0


# -- 3. fork while a thread registers a new key on the memory store ---------------------


def _new_key_in_forked_child(url: str, key: str, out: Any) -> None:
    try:
        out.put(ApiVideoAuth(key, base_url=url, store="memory:").get_token() != "")
    except BaseException as exc:
        out.put(repr(exc))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_fork_while_a_thread_holds_the_memory_stores_lock_does_not_hang_the_child(
    fake: FakeApiVideo, key: str
) -> None:
    """A thread building an ApiVideoAuth for a new key holds the memory store's lock."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from requests_apivideo.stores import memory

    held, release = threading.Event(), threading.Event()

    def register() -> None:
        with memory._entries_lock:  # where MemoryTokenStore.entry() is at fork()
            held.set()
            release.wait(WAIT)

    holder = threading.Thread(target=register)
    holder.start()
    assert held.wait(WAIT)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_new_key_in_forked_child, args=(fake.url, key, out))
    try:
        child.start()
        child.join(10)  # a hang, not a slow child: it needs one token call
        hung = child.is_alive()
    finally:
        release.set()
        holder.join(WAIT)
        child.kill()
        child.join(WAIT)
    assert not hung, "the forked child hung on the memory store's lock"
    assert out.get(timeout=WAIT) is True


# -- 4. a record that claims more lifetime than its token has -----------------------------


def test_a_record_written_by_a_clock_that_ran_ahead_is_not_trusted_past_its_lifetime(
    key: str, tmp_path: Path
) -> None:
    """A file record's expiry is on the writer's wall clock; that clock then steps back.

    (NTP correcting a clock that ran a day ahead.) Readers must not believe that the token
    lives longer than the lifetime it was granted: they would send it expired, for a 401.
    """
    store = f"file:{tmp_path / 'tokens'}"
    reader_clock, writer_clock = FakeClock(), FakeClock()
    writer_clock.wall += 86400  # a day ahead
    with FakeApiVideo(api_keys=[key], clock=reader_clock.monotonic) as fake:
        writer = ApiVideoAuth(key, base_url=fake.url, store=store, clock=writer_clock)
        writer.get_token()
        reader = ApiVideoAuth(key, base_url=fake.url, store=store, clock=reader_clock)
        reader.get_token()  # adopted from the record
        reader_clock.advance(3601)  # the token's hour is over
        with requests.get(fake.url + "/videos", auth=reader, timeout=30) as response:
            assert response.status_code == 200
        assert fake.unauthorized == 0  # renewed before it was sent, not after a 401


# -- 5. clocks that are not hashable ------------------------------------------------------


@dataclass
class OffsetClock:
    """A clock a test might write: a dataclass (so unhashable, and equal to its copies)."""

    offset: float = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset


def test_an_unhashable_clock_is_accepted_and_equal_clocks_share_nothing(
    fake: FakeApiVideo, key: str
) -> None:
    first, second = OffsetClock(), OffsetClock()
    assert first == second
    a = ApiVideoAuth(key, base_url=fake.url, clock=first)
    b = ApiVideoAuth(key, base_url=fake.url, clock=second)
    assert a.get_token() and b.get_token()
    assert b._manager.clock is second  # its own clock, not an equal one


# -- 6. store URLs -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:tokens", "file:./tokens", "file:../x"])
def test_a_file_store_url_with_a_relative_path_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative to the working directory: a cron job and a service would not share it, and
    tokens would land wherever the process runs (a checkout, say)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="absolute"):
        ApiVideoAuth("key_0123456789abcdef", store=url)
    assert list(tmp_path.iterdir()) == []


def test_a_file_store_url_may_start_with_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    auth = ApiVideoAuth("key_0123456789abcdef", store="file:~/tokens")
    assert auth.store.id == f"file:{tmp_path}/tokens"


# -- 7. instances with different timeouts share one renewal -------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="a thread waits on the manager's lock for the whole renewal of another instance, "
    "whose own (longer) timeout bounds its wait on the store's lock: a documented limit "
    "(README, 'When the store is down'), kept so that a change of it is seen",
)
def test_an_instance_waits_on_the_store_lock_at_most_its_own_timeout(
    fake: FakeApiVideo, key: str, tmp_path: Path
) -> None:
    """Another process holds the file store's lock (hung). Instance A (timeout 600 s) waits for
    it; instance B (timeout 0.5 s, same key) must not wait 600 s behind A."""
    from requests_apivideo.manager import entry_name
    from requests_apivideo.stores import derive

    store = f"file:{tmp_path / 'tokens'}"
    a = ApiVideoAuth(key, base_url=fake.url, store=store, timeout=600)
    b = ApiVideoAuth(key, base_url=fake.url, store=store, timeout=0.5)
    assert a._manager is b._manager
    # The hung process: another open file description on the lock file, as flock sees it.
    hung = a.store.entry(entry_name(a.base_url, key), derive(key, a.base_url, "seal"))
    assert hung.lock(0)
    lock = a._manager.lock = WatchedLock(a._manager.lock)  # type: ignore[assignment]
    got: dict[str, str] = {}
    threads = {
        name: threading.Thread(target=lambda n=name, auth=auth: got.update({n: auth.get_token()}))
        for name, auth in (("a", a), ("b", b))
    }
    try:
        threads["a"].start()
        assert lock.wait_until_asked(1)  # A renews, and waits for the store's lock
        threads["b"].start()
        assert lock.wait_until_asked(2)  # B waits for A
        threads["b"].join(5)  # a hang, not a slow call: B's bound is 0.5 s and a key call
        b_waited_on = threads["b"].is_alive()
    finally:
        hung.unlock()  # the hung process dies: A, then B, go on
        for thread in threads.values():
            thread.join(WAIT)
    assert not b_waited_on, "B waited on the store's lock longer than its own timeout"


# -- 8. instances with different sessions share one renewal -------------------------------


class BlockedAdapter(requests.adapters.HTTPAdapter):
    """Token calls through it wait for ``release``, then fail to connect (a broken proxy)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self.release.wait(WAIT)
        raise requests.ConnectionError("this session's proxy is down", request=request)


def test_a_renewal_that_failed_with_another_instances_session_is_not_shared(
    fake: FakeApiVideo, key: str
) -> None:
    """B's token calls go through a session that cannot reach the API; A's through its own.

    A's request waited for B's renewal; B's failure is about B's settings, so A renews
    with its own (instances share the token, and each uses its own settings for its calls).
    """
    broken = requests.Session()
    adapter = BlockedAdapter()
    broken.mount(fake.url, adapter)
    a = ApiVideoAuth(key, base_url=fake.url)
    b = ApiVideoAuth(key, base_url=fake.url, session=broken)
    assert a._manager is b._manager
    a.get_token()
    fake.expire_all()  # both get a 401 and renew the same token
    lock = a._manager.lock = WatchedLock(a._manager.lock)  # type: ignore[assignment]
    outcomes: dict[str, object] = {}

    def send(name: str, auth: ApiVideoAuth) -> None:
        try:
            with requests.get(fake.url + "/videos", auth=auth, timeout=30) as response:
                outcomes[name] = response.status_code
        except requests.RequestException as exc:
            outcomes[name] = type(exc).__name__

    threads = [threading.Thread(target=send, args=("b", b))]
    threads[0].start()
    assert lock.wait_until_asked(1)  # B renews through its broken session
    threads.append(threading.Thread(target=send, args=("a", a)))
    threads[1].start()
    assert lock.wait_until_asked(2)  # A waits for B's renewal
    adapter.release.set()
    for thread in threads:
        thread.join(WAIT)
    broken.close()
    assert outcomes == {"b": "ApiVideoAuthError", "a": 200}


# -- 9. secrets in the traceback of an error that followed a store fault ------------------


def _shown_locals(exc: BaseException) -> Iterator[str]:
    """Yield the repr of every local of every frame a traceback display shows (with chains)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:  # not this test's own frame
                yield from map(repr, tb.tb_frame.f_locals.values())
            tb = tb.tb_next
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__


def test_an_error_after_a_full_disk_shows_no_token_in_its_traceback_locals(
    fake: FakeApiVideo, key: str, tmpfs: Path
) -> None:
    """The disk fills up (the spend marker cannot be written), then the key is refused."""
    import os

    from requests_apivideo import InvalidApiKeyError

    auth = ApiVideoAuth(key, base_url=fake.url, store=f"file:{tmpfs / 'tokens'}")
    token = auth._token()  # committed: gen 1
    filler = os.open(tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        while True:
            os.write(filler, b"\0" * 4096)
    os.close(filler)
    fake.api_keys.clear()  # the key is refused now
    with pytest.raises(InvalidApiKeyError) as caught:
        auth._renew(token)  # as after a 401: mark spent (ENOSPC), then the key
    shown = "\n".join(_shown_locals(caught.value))
    secrets = {"access token": token.access_token, "refresh token": token.refresh_token, "key": key}
    assert [name for name, value in secrets.items() if value in shown] == []  # values unprinted


@pytest.mark.parametrize(
    "url", ["valkey://:hunter2@cache:6379/0", "redis+sentinel://:hunter2@h/0", "file://me:hunter2@h/x"]
)
def test_a_refused_store_url_keeps_its_password_out_of_the_message(url: str) -> None:
    """Messages end up in logs: a mistyped URL must not carry its password there."""
    with pytest.raises(ValueError) as caught:
        ApiVideoAuth("key_0123456789abcdef", store=url)
    assert "hunter2" not in str(caught.value)
