"""ApiVideoAuth across processes: pickled to children (fork and spawn), and forked mid-renewal.

The functions the children run are at module level so that a spawned child can import them.
Every wait has a timeout, so a hang fails the test instead of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo import manager as token_manager
from requests_apivideo.testing import FakeApiVideo

from .helpers import bearer, join_or_kill, start_context

pytestmark = pytest.mark.integration

CHILDREN = 3
JOIN_TIMEOUT = 60.0  # spawned children import requests and the library first


def _authenticate_in_child(tasks: Any, results: Any) -> None:
    """Take one pickled auth or session from ``tasks``, GET /videos with it, report back."""
    try:
        carrier, url = tasks.get(timeout=JOIN_TIMEOUT)
        if isinstance(carrier, requests.Session):
            with carrier, carrier.get(url + "/videos", timeout=10) as response:
                sent = response.request.headers.get("Authorization")
                status = response.status_code
        else:
            with requests.get(url + "/videos", auth=carrier, timeout=10) as response:
                sent = response.request.headers.get("Authorization")
                status = response.status_code
        results.put((os.getpid(), status, sent))
    except BaseException as exc:  # report, never hang the parent
        results.put((os.getpid(), None, repr(exc)))


def _use_inherited_auth(auth: ApiVideoAuth, other_key: str, url: str, results: Any) -> None:
    """In a forked child: use the auth inherited from the parent, then a brand-new one."""
    try:
        with requests.get(url + "/videos", auth=auth, timeout=10) as inherited:
            first = (inherited.status_code, inherited.request.headers.get("Authorization"))
        fresh = ApiVideoAuth(other_key, base_url=url, timeout=10)
        with requests.get(url + "/videos", auth=fresh, timeout=10) as response:
            second = (response.status_code, response.request.headers.get("Authorization"))
        results.put((first, second))
    except BaseException as exc:
        results.put(repr(exc))


@pytest.fixture
def fake(key: str) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key]) as server:
        yield server


@pytest.mark.parametrize("carrier", ["auth", "session"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_children_given_a_pickled_auth_each_authenticate_on_their_own(
    fake: FakeApiVideo, key: str, method: str, carrier: str
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} on this platform")
    auth = ApiVideoAuth(key, base_url=fake.url, timeout=10)
    parent = "Bearer " + auth.get_token()
    current = auth._manager.token
    assert current is not None and fake.api_key_calls == 1
    session = requests.Session()
    session.auth = auth
    with session:
        sent: object = session if carrier == "session" else auth
        blob = pickle.dumps(sent)
        # The pickle holds the key, never a token (refresh tokens are single-use).
        assert key.encode() in blob
        for secret in (current.access_token, current.refresh_token):
            assert secret.encode() not in blob
        copy = pickle.loads(blob)  # and it unpickles, in this process too
        assert isinstance(copy, type(sent))

        context = start_context(method)
        tasks, results = context.Queue(), context.Queue()
        children = [
            context.Process(target=_authenticate_in_child, args=(tasks, results))
            for _ in range(CHILDREN)
        ]
        try:
            for child in children:
                child.start()
            for _ in children:
                tasks.put((sent, fake.url))  # pickled by the queue, with fork as with spawn
            reports = [results.get(timeout=JOIN_TIMEOUT) for _ in children]
        except queue.Empty:
            pytest.fail("a child process did not report back")
        finally:
            join_or_kill(children, JOIN_TIMEOUT)
            assert [p.exitcode for p in children] == [0] * len(children)
            for q in (tasks, results):
                q.close()
                q.join_thread()
    pids = {pid for pid, _, _ in reports}
    assert len(pids) == CHILDREN and os.getpid() not in pids
    assert [status for _, status, _ in reports] == [200] * CHILDREN, reports
    headers = [header for _, _, header in reports]
    # Each child authenticated on its own: one more /auth/api-key per child, new tokens.
    assert fake.api_key_calls == 1 + CHILDREN
    assert fake.refresh_calls == 0
    assert len(set(headers)) == CHILDREN and parent not in headers
    received = [r.headers.get("Authorization") for r in fake.requests if r.path == "/videos"]
    assert sorted(received, key=str) == sorted(headers, key=str)


def test_a_forked_child_uses_the_inherited_auth_though_locks_were_held_at_fork(
    key: str,
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    other_key = key + "-other"
    with FakeApiVideo(api_keys=[key, other_key]) as fake:
        auth = ApiVideoAuth(key, base_url=fake.url, timeout=10)
        parent = "Bearer " + auth.get_token()
        held, release = threading.Event(), threading.Event()

        def hold_the_locks() -> None:
            # A renewal in progress (the token lock) while another thread is registering
            # a new key (the registry lock), at the moment of fork().
            with auth._manager.lock, token_manager._registry_lock:
                held.set()
                release.wait(JOIN_TIMEOUT)

        holder = threading.Thread(target=hold_the_locks)
        holder.start()
        assert held.wait(10)
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(
            target=_use_inherited_auth, args=(auth, other_key, fake.url, results)
        )
        try:
            child.start()
            report = results.get(timeout=JOIN_TIMEOUT)
        except queue.Empty:
            pytest.fail("the forked child hung on a lock held in the parent")
        finally:
            release.set()
            holder.join(timeout=JOIN_TIMEOUT)
            join_or_kill([child], JOIN_TIMEOUT)
            assert child.exitcode == 0
            results.close()
            results.join_thread()
        assert not holder.is_alive()
        assert isinstance(report, tuple), report
        (status, sent), (other_status, other_sent) = report
        assert status == other_status == 200
        # The inherited instance forgot the parent's token and authenticated on its own.
        assert sent != parent
        assert fake.api_key_calls == 3  # parent, inherited auth in the child, new key
        assert fake.refresh_calls == 0
        received = [r.headers.get("Authorization") for r in fake.requests if r.path == "/videos"]
        assert received == [sent, other_sent]
        # The parent's state is untouched by the child.
        assert "Bearer " + auth.get_token() == parent


def test_a_pickled_response_carries_neither_key_nor_refresh_token(
    fake: FakeApiVideo, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, timeout=10)
    with requests.Session() as session:
        session.auth = auth
        with session.get(fake.url + "/videos") as response:
            blob = pickle.dumps(response)
    assert key.encode() not in blob  # the hook is not pickled
    token = auth._manager.token
    assert token is not None and token.refresh_token.encode() not in blob
    # The access token it was sent with stays in response.request.headers, as with any
    # requests auth: that is documented, not hidden.
    copy = pickle.loads(blob)
    assert copy.status_code == 200
    assert copy.request.headers["Authorization"] == bearer(token.access_token)
