"""The store guarantees, with real processes x threads on one shared store (file, Redis).

The emulator counts what the fleet did: token calls of each kind, and refresh tokens
presented again after they were spent (which must stay 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, Fault

from .fleet import Phase, failures, fleet
from .helpers import start_context
from .redis_server import RedisServer

pytestmark = pytest.mark.integration

PROCESSES, THREADS = 4, 4


@pytest.fixture
def fake(key: str) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key]) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file:{tmp_path / 'tokens'}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_fleet_starting_together_makes_one_token_call(
    fake: FakeApiVideo, key: str, store: str, method: str
) -> None:
    with fleet(fake.url, key, store, processes=PROCESSES, threads=THREADS,
               phases=[Phase(requests=3)], method=method) as step:
        reports = step()
    assert failures(reports) == []
    assert (fake.api_key_calls, fake.refresh_calls) == (1, 0)


def test_server_side_expiry_costs_the_fleet_one_refresh(
    fake: FakeApiVideo, key: str, store: str
) -> None:
    phases = [Phase(), Phase(requests=3)]
    with fleet(fake.url, key, store, processes=PROCESSES, threads=THREADS,
               phases=phases) as step:
        assert failures(step()) == []
        fake.reset_counters()
        fake.expire_all()  # every process's token now gets 401
        reports = step()
    assert failures(reports) == []
    assert (fake.refresh_calls, fake.api_key_calls) == (1, 0)
    assert fake.refresh_reuses == 0


def test_a_revocation_costs_the_fleet_one_refresh_and_one_key_call(
    fake: FakeApiVideo, key: str, store: str
) -> None:
    phases = [Phase(), Phase(requests=3)]
    with fleet(fake.url, key, store, processes=PROCESSES, threads=THREADS,
               phases=phases) as step:
        assert failures(step()) == []
        fake.reset_counters()
        fake.revoke_all()  # access and refresh tokens: the refresh is refused
        reports = step()
    assert failures(reports) == []
    assert fake.api_key_calls == 1
    assert fake.refresh_calls <= 1
    assert fake.refresh_reuses == 0


def test_short_tokens_crossing_expiry_under_load_never_spend_a_refresh_token_twice(
    key: str, store: str
) -> None:
    with FakeApiVideo(api_keys=[key], token_ttl=1.0) as fake:
        with fleet(fake.url, key, store, processes=PROCESSES, threads=2,
                   phases=[Phase(until=3.5)]) as step:
            reports = step()
        assert failures(reports) == []
        assert fake.refresh_reuses == 0
        assert fake.unauthorized == 0  # proactive refreshes: no request met an expired token
        # About one renewal per half lifetime for the whole fleet, not one per process.
        assert fake.token_calls <= 3.5 / 0.5 + 3


def test_a_new_process_finds_the_stored_token(fake: FakeApiVideo, key: str, store: str) -> None:
    ApiVideoAuth(key, base_url=fake.url, store=store).get_token()
    with fleet(fake.url, key, store, processes=2, threads=1, phases=[Phase()]) as step:
        assert failures(step()) == []
    assert fake.token_calls == 1


def test_invalidate_deletes_the_fleets_record(fake: FakeApiVideo, key: str, store: str) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, store=store)
    auth.get_token()
    auth.invalidate()
    with fleet(fake.url, key, store, processes=1, threads=1, phases=[Phase()]) as step:
        assert failures(step()) == []
    assert fake.api_key_calls == 2  # the new process found no record to adopt


def _hold_the_lock(url: str, key: str, store: str, when: str, started: object) -> None:
    """Take the store's lock (and, if told, present the refresh token), then wait to die."""
    auth = ApiVideoAuth(key, base_url=url, store=store)
    if when == "before-presenting":
        assert auth._manager.entry.lock(10)
        started.set()  # type: ignore[attr-defined]
        threading.Event().wait(120)
    else:
        token = auth._manager.current(auth._calls, auth.refresh_margin)
        started.set()  # type: ignore[attr-defined]
        auth._renew(token)  # presents the refresh token; the emulator holds its answer


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait, bounded, for something another process makes true."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        pause.wait(0.01)


@pytest.mark.parametrize("when", ["before-presenting", "while-presenting"])
def test_a_process_killed_holding_the_lock_never_leads_to_a_second_presentation(
    fake: FakeApiVideo, key: str, store: str, when: str
) -> None:
    ApiVideoAuth(key, base_url=fake.url, store=store).get_token()
    if when == "while-presenting":
        fake.fail_token_calls(Fault(status=200, delay=120))  # the refresh's answer never comes
    context = start_context("spawn")
    started = context.Event()
    holder = context.Process(target=_hold_the_lock, args=(fake.url, key, store, when, started))
    holder.start()
    try:
        assert started.wait(60)
        if when == "while-presenting":
            wait_until(lambda: fake.refresh_calls == 1)  # the refresh reached the server
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join(30)
    finally:
        holder.kill()
    fake.expire_all()
    survivor = ApiVideoAuth(key, base_url=fake.url, store=store, timeout=2)
    with requests.get(fake.url + "/videos", auth=survivor, timeout=30) as response:
        assert response.status_code == 200
    assert fake.refresh_reuses == 0
    if when == "while-presenting":  # the marker said: spent, so the key was used
        assert (fake.refresh_calls, fake.api_key_calls) == (1, 2)


def test_the_command_line_in_a_loop_makes_one_token_call(
    fake: FakeApiVideo, key: str, tmp_path: Path
) -> None:
    env = {**os.environ, "APIVIDEO_API_KEY": key, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("APIVIDEO_TOKEN_STORE", None)
    tokens = set()
    for _ in range(20):
        result = subprocess.run(
            [sys.executable, "-m", "requests_apivideo", "token", "--base-url", fake.url],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        tokens.add(result.stdout.strip())
    assert len(tokens) == 1
    assert fake.token_calls == 1
    stored = list((tmp_path / "requests-apivideo").iterdir())
    assert stored and all(p.stat().st_mode & 0o077 == 0 for p in stored)
    assert not any(key in p.read_text(errors="replace") for p in stored if p.is_file())


def test_the_command_line_with_memory_store_keeps_nothing(
    fake: FakeApiVideo, key: str, tmp_path: Path
) -> None:
    env = {**os.environ, "APIVIDEO_API_KEY": key, "XDG_CACHE_HOME": str(tmp_path)}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "requests_apivideo", "token", "--base-url", fake.url,
             "--store", "memory:"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert result.returncode == 0, result.stderr
    assert fake.token_calls == 2
    assert not (tmp_path / "requests-apivideo").exists()


def _get_with(auth: ApiVideoAuth, url: str, results: Any) -> None:
    try:
        with requests.get(url + "/videos", auth=auth, timeout=30) as response:
            results.put(response.status_code)
    except BaseException as exc:
        results.put(repr(exc))


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_an_auth_pickled_to_workers_brings_its_store_along(
    fake: FakeApiVideo, key: str, store: str, method: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, store=store)
    auth.get_token()
    context = start_context(method)
    results = context.Queue()
    workers = [context.Process(target=_get_with, args=(auth, fake.url, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert outcomes == [200, 200]
    assert fake.token_calls == 1  # the workers found the stored token


def test_requests_with_a_fresh_token_send_no_command_to_the_store(
    fake: FakeApiVideo, key: str, redis_url: str, tmp_path: Path
) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)

    def commands() -> int:
        stats = client.info("commandstats")
        return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")

    directory = tmp_path / "hot"
    with requests.Session() as on_redis, requests.Session() as on_file:
        on_redis.auth = ApiVideoAuth(key, base_url=fake.url, store=redis_url)
        on_file.auth = ApiVideoAuth(key, base_url=fake.url, store=f"file:{directory}")
        on_redis.get(fake.url + "/videos").raise_for_status()  # first use reads the store
        on_file.get(fake.url + "/videos").raise_for_status()
        before = commands()
        record = next(directory.glob("*.json"))
        read_before = record.stat().st_atime_ns, record.stat().st_mtime_ns
        os.utime(record, ns=(0, read_before[1]))  # so that a read of it would show
        for _ in range(100):
            on_redis.get(fake.url + "/videos").close()
            on_file.get(fake.url + "/videos").close()
        assert commands() == before
        assert record.stat().st_atime_ns == 0  # never opened for reading
        client.close()
