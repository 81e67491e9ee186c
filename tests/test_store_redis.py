"""RedisTokenStore against a real redis-server (tests/redis_server.py), never a fake.

Children's functions are at module level so that spawned children can import them; every
wait is bounded, so a hang fails the test instead of the run.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from requests_apivideo import RedisTokenStore, stores
from requests_apivideo.stores import StoreUnavailable, derive, open_store
from requests_apivideo.testing import FakeClock

from .helpers import fields, start_context
from .redis_server import RedisServer, require_redis_server

redis = pytest.importorskip("redis")
pytest.importorskip("cryptography")

pytestmark = pytest.mark.integration
KEY, BASE = "key_redis_store_test_0123456789", "https://ws.api.video"
SECRET, NAME = derive(KEY, BASE, "seal"), derive(KEY, BASE, "name").hex()
WAIT = 60.0  # for children (spawned ones import the library first)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield s
    s.stop()


@pytest.fixture
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server of the test's own, to stop and restart."""
    s = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield s
    s.stop()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


@pytest.fixture
def name() -> str:
    return os.urandom(16).hex()  # a fresh entry per test


def keys(name: str) -> tuple[str, str]:
    return f"requests-apivideo:{{{name}}}:rec", f"requests-apivideo:{{{name}}}:lock"


def bounded(call: Callable[[], Any], limit: float = 15.0) -> BaseException | None:
    """Run ``call`` in a thread; fail if it hangs; return what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert outcome, f"the store call hung for more than {limit} s"
    return outcome[0]


# -- the protocol -------------------------------------------------------------------------


def test_commit_then_read_with_the_lifetime_on_redis_clock(server: RedisServer, name: str) -> None:
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    assert entry.read(FakeClock()) is None
    far = FakeClock()
    far.advance(300)  # a machine 5 minutes ahead: its clock plays no part
    assert entry.commit(1, "acc-token-1", "ref-token-1", 3600, 600, far)
    record = RedisTokenStore(server.url).entry(name, SECRET).read(FakeClock())
    assert record is not None
    assert fields(record)[:4] == (1, "acc-token-1", "ref-token-1", 3600.0) and not record.spent
    assert 500 < record.remaining <= 600


def test_commit_is_a_compare_and_swap_on_the_generation(server: RedisServer, name: str) -> None:
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    clock = FakeClock()
    assert entry.commit(1, "a1", "r1", 60, 60, clock)
    assert not entry.commit(1, "a1b", "r1b", 60, 60, clock)
    assert entry.commit(3, "a3", "r3", 60, 60, clock)
    assert not entry.commit(2, "a2", "r2", 60, 60, clock)
    record = entry.read(clock)
    assert record is not None and (record.gen, record.access_token) == (3, "a3")
    entry.clear()
    assert entry.read(clock) is None


def test_mark_spent_needs_the_lock_and_the_stored_unmarked_generation(
    server: RedisServer, name: str
) -> None:
    store, clock = RedisTokenStore(server.url), FakeClock()
    entry, other = store.entry(name, SECRET), store.entry(name, SECRET)
    assert entry.commit(1, "a1", "r1", 60, 60, clock)
    assert not entry.mark_spent(1)  # no lock
    assert entry.lock(0) and not other.lock(0) and not other.lock(0.05)
    assert not other.mark_spent(1)  # not the holder
    assert not entry.mark_spent(2)
    assert entry.mark_spent(1) and not entry.mark_spent(1)
    record = other.read(clock)
    assert record is not None and record.spent
    assert entry.commit(2, "a2", "r2", 60, 60, clock)
    record = other.read(clock)
    assert record is not None and (record.gen, record.spent) == (2, False)
    entry.unlock()
    assert other.lock(0)
    other.unlock()


def test_an_expired_holder_cannot_commit_over_a_newer_gen_nor_release_the_new_lock(
    server: RedisServer, raw: Any, name: str
) -> None:
    clock = FakeClock()
    late = RedisTokenStore(server.url, lock_lease=0.2).entry(name, SECRET)
    now = RedisTokenStore(server.url).entry(name, SECRET)
    assert late.commit(1, "a1", "r1", 60, 60, clock)
    assert late.lock(0)
    assert now.lock(timeout=15)  # once the 0.2 s lease is over
    assert not late.mark_spent(1)  # fenced: not the holder any more
    assert now.mark_spent(1) and now.commit(2, "a2", "r2", 60, 60, clock)
    assert not late.commit(2, "late", "late", 60, 60, clock)
    late.unlock()
    assert raw.exists(keys(name)[1])  # still the new holder's
    record = now.read(clock)
    assert record is not None and record.access_token == "a2"
    now.unlock()
    assert not raw.exists(keys(name)[1])


# -- real processes -----------------------------------------------------------------------


def _increment(store: RedisTokenStore, name: str, times: int, forked: bool, out: Any) -> None:
    """Take the lock, read gen, commit gen + 1, unlock; report how many commits failed."""
    try:
        entry = store.entry(name, SECRET)
        if forked:
            entry.after_fork()  # what the manager's at-fork hook does
        failed = 0
        for _ in range(times):
            assert entry.lock(timeout=WAIT)
            try:
                record = entry.read(time)
                gen = record.gen if record else 0
                failed += not entry.commit(gen + 1, f"a{gen + 1}", f"r{gen + 1}", 60, 60, time)
            finally:
                entry.unlock()
        out.put(failed)
    except BaseException as exc:
        out.put(repr(exc))


def _hold_then_wait(url: str, name: str, out: Any) -> None:
    """Take the lock with a 0.2 s lease, mark the record spent, report, and wait to be killed."""
    entry = RedisTokenStore(url, lock_lease=0.2).entry(name, SECRET)
    record = entry.read(time)
    ok = entry.lock(timeout=WAIT) and record is not None and entry.mark_spent(record.gen)
    out.put(ok)
    threading.Event().wait(WAIT)


def run_children(method: str, target: Callable[..., None], *args: Any, n: int = 1) -> Any:
    context = start_context(method)
    out = context.Queue()
    children = [context.Process(target=target, args=(*args, out)) for _ in range(n)]
    for child in children:
        child.start()
    return out, children


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_lock_excludes_across_processes(server: RedisServer, name: str, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    store = RedisTokenStore(server.url)
    assert store.entry(name, SECRET).read(time) is None  # the parent's pool has a socket now
    n, m = 4, 25
    out, children = run_children(method, _increment, store, name, m, method == "fork", n=n)
    results = [out.get(timeout=WAIT) for _ in children]
    for child in children:
        child.join(WAIT)
    assert results == [0] * n
    record = store.entry(name, SECRET).read(time)
    assert record is not None and record.gen == n * m


def test_a_killed_holder_delays_the_next_by_its_lease_and_its_spend_mark_stays(
    server: RedisServer, name: str
) -> None:
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    assert entry.commit(1, "a1", "r1", 60, 60, time)
    out, (holder,) = run_children("spawn", _hold_then_wait, server.url, name)
    try:
        assert out.get(timeout=WAIT) is True
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(WAIT)
    assert entry.lock(timeout=15)  # the default 30 s lease would not be over by then
    record = entry.read(time)
    assert record is not None and record.spent  # so nobody presents r1 again
    entry.unlock()


def checkout(pool: Any) -> Any:
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        return pool.get_connection("PING")


def local_ports(client: Any) -> set[int]:
    """Return the local ports of every socket ``client`` holds."""
    pool = client.connection_pool
    connections = [*pool._available_connections, *pool._in_use_connections, client.connection]
    return {c._sock.getsockname()[1] for c in connections if c is not None and c._sock}


@pytest.mark.parametrize("kind", ["url", "client", "single connection client"])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_fork_while_a_thread_holds_a_connection_and_the_lock(
    server: RedisServer, name: str, kind: str
) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    single = kind == "single connection client"
    client = redis.Redis(host="127.0.0.1", port=server.port, single_connection_client=single)
    store = RedisTokenStore(server.url if kind == "url" else client)
    parent = store.entry(name, SECRET)
    assert parent.commit(1, "a1", "r1", 60, 60, time) and parent.lock(0)
    client = store._client
    held, done = threading.Event(), threading.Event()
    connection = client.connection or checkout(client.connection_pool)

    def hold() -> None:  # a thread in the middle of using a connection
        held.set()
        done.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(WAIT)
    try:
        theirs = local_ports(client) | {connection._sock.getsockname()[1]}
        pid = os.fork()
        if pid == 0:
            try:
                parent.after_fork()  # the parent's own entry, inherited
                record = parent.read(time)
                ok = record is not None and record.gen == 1
                ok = ok and not parent.mark_spent(1) and not parent.lock(0)  # not the holder
                ok = ok and parent.commit(2, "c2", "c2", 60, 60, time)
                ok = ok and not (local_ports(store._client) & theirs)  # no socket reused
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.ping()  # the parent's sockets were left alone
    finally:
        done.set()
        holder.join()
        if not single:
            client.connection_pool.release(connection)
    assert not parent.mark_spent(1)  # gen 2 is the child's now
    parent.unlock()
    record = parent.read(time)
    assert record is not None and record.access_token == "c2"
    client.close()


# -- secrets at rest and tampering ----------------------------------------------------------


def test_redis_holds_no_token_and_no_key_and_another_key_opens_nothing(
    server: RedisServer, raw: Any, name: str
) -> None:
    access, refresh = "acc" + os.urandom(20).hex(), "ref" + os.urandom(20).hex()
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    assert entry.commit(7, access, refresh, 3600, 3600, time)
    raw.save()
    dump = (server.directory / "dump.rdb").read_bytes()
    dump += b"".join(k + b"".join(raw.hgetall(k).values()) for k in raw.keys(f"*{name}*"))
    dump += base64.b64decode(raw.hget(keys(name)[0], "blob"))
    for secret in (access, refresh, KEY):
        assert not any(secret[i : i + 8].encode() in dump for i in range(len(secret) - 7))
    foreign = RedisTokenStore(server.url).entry(name, derive("another-key", BASE, "seal"))
    assert foreign.read(time) is None


def _tamper(raw: Any, rec: str, how: str, other: str) -> None:
    blob = raw.hget(rec, "blob")
    sealed = base64.b64decode(blob)
    change = {
        "bit flipped": {"blob": base64.b64encode(sealed[:-1] + bytes([sealed[-1] ^ 1]))},
        "truncated": {"blob": base64.b64encode(sealed[:20])},
        "empty": {"blob": b""},
        "not base64": {"blob": b"%%%"},
        "oversized": {"blob": base64.b64encode(os.urandom(9000))},
        "gen rolled back": {"gen": b"1"},
        "gen moved up": {"gen": b"3"},
        "gen not canonical": {"gen": b"02"},
        "gen garbage": {"gen": b"x"},
        "exp garbage": {"exp": b"soon"},
        "copied from another entry": {"blob": raw.hget(other, "blob")},
    }
    if how == "no blob":
        raw.hdel(rec, "blob")
    elif how == "not a hash":
        raw.delete(rec)
        raw.set(rec, blob)
    else:
        raw.hset(rec, mapping=change[how])


@pytest.mark.parametrize(
    "how",
    ["bit flipped", "truncated", "empty", "not base64", "oversized", "gen rolled back",
     "gen moved up", "gen not canonical", "gen garbage", "exp garbage",
     "copied from another entry", "no blob", "not a hash"],
)  # fmt: skip
def test_a_tampered_record_reads_as_absent_and_is_replaced(
    server: RedisServer, raw: Any, name: str, how: str
) -> None:
    store = RedisTokenStore(server.url)
    entry, other = store.entry(name, SECRET), store.entry(name[::-1], SECRET)
    assert entry.commit(2, "a2", "r2", 60, 60, time)
    assert other.commit(2, "o2", "o2", 60, 60, time)
    _tamper(raw, keys(name)[0], how, keys(name[::-1])[0])
    assert entry.read(time) is None
    racer = store.entry(name, SECRET)  # read the same record, but someone committed first
    assert racer.read(time) is None
    assert entry.commit(1, "new", "new", 60, 60, time)  # unreadable counts as gen 0
    assert not racer.commit(1, "racer", "racer", 60, 60, time)
    record = racer.read(time)
    assert record is not None and (record.gen, record.access_token) == (1, "new")


def test_an_unknown_spend_mark_counts_as_spent_and_an_old_record_keeps_its_gen(
    server: RedisServer, raw: Any, name: str
) -> None:
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    assert entry.commit(1, "a1", "r1", 60, 60, time)
    old = raw.hgetall(keys(name)[0])
    raw.hset(keys(name)[0], "spent", "?")
    record = entry.read(time)
    assert record is not None and record.spent
    assert entry.commit(2, "a2", "r2", 60, 60, time)
    raw.hset(keys(name)[0], mapping=old)  # a whole, older record put back (failover)
    record = entry.read(time)
    assert record is not None and (record.gen, record.access_token) == (1, "a1")
    assert not entry.commit(1, "late", "late", 60, 60, time)


# -- faults: down, restarted empty, black-holed -------------------------------------------


def test_a_stopped_server_is_unavailable_at_once_and_a_restarted_empty_one_works(
    private: RedisServer, name: str
) -> None:
    store = RedisTokenStore(private.url)
    entry = store.entry(name, SECRET)
    assert entry.commit(1, "a1", "r1", 60, 60, time) and entry.lock(0)
    private.stop()
    calls = [
        lambda: entry.read(time), lambda: entry.lock(0), lambda: entry.mark_spent(1),
        lambda: entry.commit(2, "a", "r", 60, 60, time), entry.clear,
    ]  # fmt: skip
    for call in calls:
        error = bounded(call)
        assert isinstance(error, StoreUnavailable), error
        assert private.url.split("//")[1].split("/")[0] in str(error)
    assert bounded(entry.unlock) is None  # never raises
    private.start()  # empty: no record, no lock, no scripts
    assert entry.read(time) is None
    assert entry.lock(0) and entry.commit(1, "b1", "b1", 60, 60, time)
    entry.unlock()
    private.stop()
    private.start()  # restarted between two calls: the stale socket never shows
    assert entry.read(time) is None


def test_a_server_that_never_answers_is_unavailable_within_the_socket_timeout(
    name: str,
) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as black_hole:  # never accepts
        port = black_hole.getsockname()[1]
        entry = RedisTokenStore(f"redis://127.0.0.1:{port}/0").entry(name, SECRET)
        for call in (lambda: entry.read(time), lambda: entry.lock(0.2)):
            assert isinstance(bounded(call), StoreUnavailable)


def test_server_errors_are_unavailable_and_name_no_value(
    server: RedisServer, raw: Any, name: str
) -> None:
    entry = RedisTokenStore(server.url).entry(name, SECRET)
    raw.hset(keys(name)[1], "x", "secret-looking-value")  # the lock key of a wrong type
    entry._owner = "o"
    error = bounded(lambda: entry.mark_spent(1))
    assert isinstance(error, StoreUnavailable) and str(error).endswith("(ResponseError)")
    assert "WRONGTYPE" not in str(error)  # a server's reply is not repeated: it may echo values


# -- construction, names, pickling, other clients --------------------------------------------


def test_ids_name_the_server_never_the_password() -> None:
    store = RedisTokenStore("redis://user:hunter2@Cache.Example:6380/2", prefix="p")
    assert store.id == "redis://cache.example:6380/2?prefix=p" and "hunter2" not in repr(store)
    assert RedisTokenStore("rediss://h").id == "rediss://h:6379/0?prefix=requests-apivideo"
    assert RedisTokenStore("unix:///run/r.sock?db=3").id.startswith("unix:///run/r.sock?db=3")
    client = redis.Redis(host="h", port=7, db=1, password="hunter2")
    assert RedisTokenStore(client).id == "redis://h:7/1?prefix=requests-apivideo"
    for bad in (object(), redis.asyncio.Redis()):
        with pytest.raises(TypeError, match="redis-py client"):
            RedisTokenStore(bad)
    with pytest.raises(ValueError, match="lock_lease"):
        RedisTokenStore("redis://h", lock_lease=0)


def test_unix_socket_urls_and_open_store_work(server: RedisServer, name: str) -> None:
    store = open_store(f"unix://{server.unix_socket}")
    assert isinstance(store, RedisTokenStore)
    assert store.entry(name, SECRET).commit(1, "a", "r", 60, 60, time)


def until(check: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        threading.Event().wait(0.05)


def answers(entry: Any) -> bool:
    try:
        entry.read(time)
    except StoreUnavailable:
        return False
    return True


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_cluster_and_sentinel_clients_work(
    tmp_path_factory: pytest.TempPathFactory, name: str, kind: str
) -> None:
    directory = tmp_path_factory.mktemp(kind)
    cluster = ("--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"))
    servers = [RedisServer(directory, *(cluster if kind == "cluster" else ())).start()]
    try:
        if kind == "cluster":
            raw = redis.Redis(port=servers[0].port)
            raw.execute_command("CLUSTER ADDSLOTS", *range(16384))
            until(lambda: raw.cluster("info").get("cluster_state") == "ok")
            client = redis.RedisCluster("127.0.0.1", servers[0].port, socket_timeout=0.5)
        else:
            sentinel_dir = tmp_path_factory.mktemp("sentinel")
            servers.append(RedisServer(sentinel_dir, sentinel_of=servers[0].port).start())
            sentinel = redis.Sentinel([("127.0.0.1", servers[1].port)], socket_timeout=0.5)
            client = sentinel.master_for("mymaster", socket_timeout=0.5)
        store = RedisTokenStore(client)
        entry = store.entry(name, SECRET)
        until(lambda: answers(entry))
        assert store.id.startswith(f"redis+{kind}://")
        assert entry.commit(1, "a1", "r1", 60, 60, time) and entry.lock(0)
        assert entry.mark_spent(1)  # two keys in one script: one hash slot
        entry.unlock()
        entry.after_fork()
        record = entry.read(time)
        assert record is not None and record.spent
        with pytest.raises(TypeError, match="build it from a URL"):
            pickle.dumps(store)
    finally:
        for server in servers:
            server.stop()


def test_pickles_carry_the_configuration_only(server: RedisServer, name: str) -> None:
    url_store = RedisTokenStore(server.url, prefix="px", lock_lease=5)
    assert url_store.entry(name, SECRET).commit(1, "a", "r", 60, 60, time)  # a live socket
    copy = pickle.loads(pickle.dumps(url_store))
    assert (copy.id, copy.prefix, copy.lock_lease) == (url_store.id, "px", 5.0)
    assert copy.entry(name, SECRET).read(time) is not None
    clients = [
        redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.4),
        redis.Redis(unix_socket_path=server.unix_socket, socket_timeout=0.4),
    ]
    for client in clients:
        store = RedisTokenStore(client, prefix="px")
        assert store.entry(name, SECRET).read(time) is not None
        copy = pickle.loads(pickle.dumps(store))
        assert copy.id == store.id and copy._client is not client
        assert copy._client.connection_pool.connection_kwargs["socket_timeout"] == 0.4
        assert copy.entry(name, SECRET).read(time) is not None
    tls = pickle.loads(pickle.dumps(RedisTokenStore(redis.Redis(ssl=True, ssl_cert_reqs="none"))))
    assert tls._client.connection_pool.connection_class is redis.SSLConnection
    assert tls._client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    provider = redis.UsernamePasswordCredentialProvider("u", "p")
    with pytest.raises(TypeError, match="build it from a URL"):
        pickle.dumps(RedisTokenStore(redis.Redis(credential_provider=provider)))


def test_without_the_extra_construction_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("redis", "cryptography.hazmat.primitives.ciphers.aead"):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)
            patch.delitem(sys.modules, "requests_apivideo.stores._seal", raising=False)
            patch.delattr(stores, "_seal", raising=False)
            with pytest.raises(ImportError, match=r"requests-apivideo\[redis\]"):
                RedisTokenStore("redis://localhost")


def test_importing_the_package_imports_neither_redis_nor_cryptography() -> None:
    code = "import sys, requests_apivideo; print({'redis', 'cryptography'} & set(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert result.stdout.strip() == "set()", result.stderr


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_without_redis_server_tests_skip_saying_how_to_install_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install redis-server"):
        require_redis_server()
