"""Instances made with recently seen arguments are copies of a hidden twin (#9).

What a user relies on: a copy behaves as a newly built instance would (the environment of
each construction, the same errors, its own key's token, its own settings once changed),
and the twins neither leak a secret nor keep more than RECENT_SETTINGS argument sets.
"""

from __future__ import annotations

import copy
import gc
import inspect
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from unittest import mock

import pytest
import requests
import requests.adapters

from requests_apivideo import ApiVideoAuth, FileTokenStore, RedisTokenStore
from requests_apivideo import auth as auth_module
from requests_apivideo.stores.memory import MemoryTokenStore
from requests_apivideo.testing import FakeApiVideo

from .helpers import join_or_kill, shown_texts

RECENT_SETTINGS = auth_module.RECENT_SETTINGS
JOIN_TIMEOUT = 60.0


@pytest.fixture
def fake(key: str) -> Iterator[FakeApiVideo]:
    with FakeApiVideo(api_keys=[key]) as server:
        yield server


def get(auth: ApiVideoAuth, url: str) -> requests.Response:
    """GET ``url``/videos with ``auth``, the README's per-call form."""
    with requests.get(url + "/videos", auth=auth, timeout=10) as response:
        return response


def sent(response: requests.Response) -> str:
    return str(response.request.headers.get("Authorization"))


class RecordingAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that notes the path and timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.sent.append((request.path_url, kwargs.get("timeout")))
        return super().send(request, **kwargs)


def recording_session(url: str) -> tuple[requests.Session, RecordingAdapter]:
    session = requests.Session()
    adapter = RecordingAdapter()
    session.mount(url, adapter)
    return session, adapter


# -- each construction reads the environment of its own moment ------------------------


def test_the_token_store_variable_is_read_at_each_construction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    for _ in range(2):
        assert isinstance(ApiVideoAuth(key).store, MemoryTokenStore)
        monkeypatch.setenv("APIVIDEO_TOKEN_STORE", "redis://127.0.0.1:1/0")  # never connected
        assert isinstance(ApiVideoAuth(key).store, RedisTokenStore)
        monkeypatch.setenv("APIVIDEO_TOKEN_STORE", f"file:{tmp_path}")
        store = ApiVideoAuth(key).store
        assert isinstance(store, FileTokenStore) and store.directory == str(tmp_path)
        monkeypatch.delenv("APIVIDEO_TOKEN_STORE")


@pytest.mark.parametrize(
    "patched",
    [
        lambda value: mock.patch.dict(os.environ, {"APIVIDEO_TOKEN_STORE": value}),
        lambda value: mock.patch.dict(os.environ, {"APIVIDEO_TOKEN_STORE": value}, clear=True),
        lambda value: mock.patch("os.environ", {"APIVIDEO_TOKEN_STORE": value}),  # a plain dict
    ],
    ids=["patch.dict", "patch.dict-clear", "os.environ-replaced"],
)
def test_the_store_variable_is_read_however_the_environment_is_patched(
    patched: Callable[[str], Any], tmp_path: Path, key: str
) -> None:
    # The variable is read from the dict behind os.environ (cheaper when it is unset): what
    # a test patches, or an os.environ replaced whole, is what the next construction sees.
    ApiVideoAuth(key)
    with patched(f"file:{tmp_path}"):
        store = ApiVideoAuth(key).store
        assert isinstance(store, FileTokenStore) and store.directory == str(tmp_path)
        assert auth_module._getenv("APIVIDEO_TOKEN_STORE") == f"file:{tmp_path}"
    assert isinstance(ApiVideoAuth(key).store, MemoryTokenStore)
    assert auth_module._getenv("APIVIDEO_TOKEN_STORE") is None


def test_a_variable_only_putenv_set_is_unseen_as_by_os_environ(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.delenv("APIVIDEO_API_KEY", raising=False)
    os.putenv("APIVIDEO_API_KEY", key)  # the C environment only, which os.environ ignores
    try:
        assert os.environ.get("APIVIDEO_API_KEY") is None
        with pytest.raises(ValueError, match="APIVIDEO_API_KEY is not set"):
            ApiVideoAuth()
    finally:
        os.unsetenv("APIVIDEO_API_KEY")


def test_the_default_file_store_follows_xdg_cache_home_and_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    for name in ("a", "b"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / name))
        store = ApiVideoAuth(key, store="file:").store
        assert isinstance(store, FileTokenStore)
        assert store.directory == str(tmp_path / name / "requests-apivideo")
    monkeypatch.delenv("XDG_CACHE_HOME")
    for name in ("c", "d"):
        monkeypatch.setenv("HOME", str(tmp_path / name))
        store = ApiVideoAuth(key, store="file:").store
        assert isinstance(store, FileTokenStore)
        assert store.directory == str(tmp_path / name / ".cache" / "requests-apivideo")


def test_the_key_variable_is_read_at_each_construction(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    other = key + "-other"
    with FakeApiVideo(api_keys=[key, other]) as fake:
        monkeypatch.setenv("APIVIDEO_API_KEY", key)
        first = get(ApiVideoAuth(base_url=fake.url), fake.url)
        monkeypatch.setenv("APIVIDEO_API_KEY", other)
        fake.api_keys = {other}  # the first key is revoked: only the new one authenticates
        fake.revoke_all()
        second = get(ApiVideoAuth(base_url=fake.url), fake.url)
        assert first.status_code == second.status_code == 200
        assert sent(first) != sent(second)
        assert fake.api_key_calls == 2 and fake.unauthorized == 0


def test_a_named_file_store_directory_is_checked_at_each_construction(
    tmp_path: Path, key: str
) -> None:
    directory = tmp_path / "tokens"
    ApiVideoAuth(key, store=f"file:{directory}")
    directory.chmod(0o777)
    with pytest.raises(ValueError, match="writable by others"):
        ApiVideoAuth(key, store=f"file:{directory}")


# -- the same errors as ever ----------------------------------------------------------


@pytest.mark.parametrize("name", ["refresh_margin", "timeout"])
def test_a_bool_is_refused_after_an_equal_number(key: str, name: str) -> None:
    one: dict[str, Any] = {name: 1}
    ApiVideoAuth(key, **one)
    for _ in range(2):
        with pytest.raises(TypeError, match=f"{name} must be a number, not bool"):
            ApiVideoAuth(key, **{name: True})  # type: ignore[arg-type]
    assert getattr(ApiVideoAuth(key, **one), name) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"refresh_margin": [1]}, TypeError, "refresh_margin must be a number, not list"),
        ({"timeout": {}}, TypeError, "timeout must be a number, not dict"),
        ({"scheme": ["basic"]}, ValueError, "scheme must be 'bearer' or 'basic'"),
        ({"base_url": ["https://x.example"]}, TypeError, "base_url must be a str, not list"),
        ({"sandbox": [1], "base_url": "https://x.example"}, ValueError, "not both"),
    ],
)
def test_an_unhashable_argument_gets_the_usual_error(
    key: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    ApiVideoAuth(key)
    for _ in range(2):
        with pytest.raises(error, match=message):
            ApiVideoAuth(key, **kwargs)


def test_an_unhashable_but_valid_argument_works(key: str) -> None:
    for _ in range(2):
        assert ApiVideoAuth(key, sandbox=[1]).base_url == auth_module.SANDBOX_BASE_URL  # type: ignore[arg-type]


class _Unhashable(float):
    """A number whose hash raises something other than TypeError."""

    def __hash__(self) -> int:
        raise ValueError("no hash")


def test_an_argument_whose_hash_raises_is_built_in_full(key: str) -> None:
    for _ in range(2):
        auth = ApiVideoAuth(key, refresh_margin=_Unhashable(30.0))
        assert auth.refresh_margin == 30.0 and not is_a_twins_copy(auth)


# -- one key's token on its own requests only -----------------------------------------


@pytest.mark.parametrize("collide", [False, True])
def test_two_keys_never_share_a_token(
    monkeypatch: pytest.MonkeyPatch, key: str, collide: bool
) -> None:
    if collide:  # as if the two keys had the same hash
        monkeypatch.setattr(auth_module, "hash", lambda value: 0, raising=False)
    other = key + "-other"
    with FakeApiVideo(api_keys=[key, other]) as fake:
        for _ in range(2):
            mine = get(ApiVideoAuth(key, base_url=fake.url), fake.url)
            theirs = get(ApiVideoAuth(other, base_url=fake.url), fake.url)
            assert mine.status_code == theirs.status_code == 200
            assert sent(mine) != sent(theirs)
        assert fake.api_key_calls == 2


class Tenant(ApiVideoAuth):
    """A subclass that keeps an attribute of its own, set before the base class's __init__."""

    def __init__(self, api_key: str, tenant: str, **kwargs: Any) -> None:
        self.tenant = tenant
        super().__init__(api_key, **kwargs)


def test_a_subclass_keeps_its_own_attributes_and_class(key: str) -> None:
    assert Tenant(key, "a").tenant == "a"
    b = Tenant(key, "b")
    assert b.tenant == "b"
    plain = ApiVideoAuth(key)
    assert not hasattr(plain, "tenant")
    assert Tenant(key, "c").tenant == "c"


# -- settings changed after construction ----------------------------------------------


def test_an_attribute_set_on_a_copy_is_its_own(key: str) -> None:
    first = ApiVideoAuth(key)
    first.label = "first"
    second = ApiVideoAuth(key)
    assert first.label == "first"  # type: ignore[attr-defined]
    assert not hasattr(second, "label")
    assert not hasattr(second._core, "label")


def test_an_attribute_no_instance_has_is_an_attribute_error(key: str) -> None:
    copy_ = ApiVideoAuth(key)
    with pytest.raises(AttributeError, match="'nope'"):
        copy_.nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match="'base_url'"):  # never built: no recursion
        object.__new__(ApiVideoAuth).base_url  # noqa: B018


def test_a_setting_refused_on_a_copy_leaves_it_working_as_before(
    fake: FakeApiVideo, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url)
    assert get(auth, fake.url).status_code == 200
    with pytest.raises(ValueError, match="clear text"):
        auth.base_url = "http://api.example"
    assert auth.base_url == fake.url
    assert get(auth, fake.url).status_code == 200
    assert (fake.api_key_calls, fake.unauthorized) == (1, 0)


def test_a_copy_whose_session_and_timeout_change_uses_them_for_token_calls(
    fake: FakeApiVideo, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url)
    assert get(auth, fake.url).status_code == 200
    session, adapter = recording_session(fake.url)
    auth.session = session
    auth.timeout = 2.5
    auth.invalidate()
    assert get(auth, fake.url).status_code == 200
    assert adapter.sent[0] == ("/auth/api-key", 2.5)
    # The twin is untouched: the next copy makes its token calls as the first one did.
    again = ApiVideoAuth(key, base_url=fake.url)
    assert (again.session, again.timeout) == (None, 10.0)
    again.invalidate()
    before = len(adapter.sent)
    assert get(again, fake.url).status_code == 200
    assert [path for path, _ in adapter.sent[before:]] == []
    assert fake.api_key_calls == 3


def test_a_timeout_changed_after_a_token_call_is_used_by_the_next(
    fake: FakeApiVideo, key: str
) -> None:
    session, adapter = recording_session(fake.url)
    auth = ApiVideoAuth(key, base_url=fake.url, session=session)  # no twin: a session
    auth.get_token()
    auth.timeout = 2.5
    auth.invalidate()
    auth.get_token()
    assert [timeout for path, timeout in adapter.sent] == [10.0, 2.5]


def test_the_scheme_switches_both_ways_on_a_copy(fake: FakeApiVideo, key: str) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, scheme="basic")
    assert sent(get(auth, fake.url)).startswith("Basic ")
    auth.scheme = "bearer"
    assert sent(get(auth, fake.url)).startswith("Bearer ")
    assert sent(get(ApiVideoAuth(key, base_url=fake.url, scheme="basic"), fake.url)).startswith(
        "Basic "
    )


def test_a_base_url_set_on_an_instance_is_checked(key: str) -> None:
    auth = ApiVideoAuth(key)
    with pytest.raises(ValueError, match="clear text"):
        auth.base_url = "http://api.example"
    assert auth.base_url == auth_module.DEFAULT_BASE_URL


def test_a_base_url_set_on_a_copy_is_where_its_tokens_come_from_and_go(key: str) -> None:
    with FakeApiVideo(api_keys=[key]) as one, FakeApiVideo(api_keys=[key]) as two:
        auth = ApiVideoAuth(key, base_url=one.url)
        assert get(auth, one.url).status_code == 200
        auth.base_url = two.url
        assert get(auth, two.url).status_code == 200
        assert get(ApiVideoAuth(key, base_url=one.url), one.url).status_code == 200
        assert (one.api_key_calls, two.api_key_calls) == (1, 1)
        assert (one.unauthorized, two.unauthorized) == (0, 0)


def test_a_store_set_on_a_copy_is_where_its_token_is_kept(
    fake: FakeApiVideo, tmp_path: Path, key: str
) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url)
    auth.store = f"file:{tmp_path}"  # type: ignore[assignment]  # opened as at construction
    assert isinstance(auth.store, FileTokenStore)
    assert get(auth, fake.url).status_code == 200
    assert [p.suffix for p in tmp_path.iterdir() if p.suffix == ".json"] == [".json"]
    assert isinstance(ApiVideoAuth(key, base_url=fake.url).store, MemoryTokenStore)


# -- tokens shared by copies ----------------------------------------------------------


def test_a_401_on_a_copy_renews_once_and_the_next_copies_use_the_new_token(
    fake: FakeApiVideo, key: str
) -> None:
    assert get(ApiVideoAuth(key, base_url=fake.url), fake.url).status_code == 200
    fake.expire_all()  # the access token is refused; its refresh token still works
    fake.reset_counters()
    replayed = get(ApiVideoAuth(key, base_url=fake.url), fake.url)
    assert replayed.status_code == 200 and len(replayed.history) == 1
    assert (fake.unauthorized, fake.token_calls) == (1, 1)
    fake.reset_counters()
    for _ in range(3):
        response = get(ApiVideoAuth(key, base_url=fake.url), fake.url)
        assert response.status_code == 200 and sent(response) == sent(replayed)
    assert (fake.unauthorized, fake.token_calls) == (0, 0)


def test_invalidate_on_a_copy_makes_every_copy_authenticate_again(
    fake: FakeApiVideo, key: str
) -> None:
    first = get(ApiVideoAuth(key, base_url=fake.url), fake.url)
    ApiVideoAuth(key, base_url=fake.url).invalidate()
    again = [get(ApiVideoAuth(key, base_url=fake.url), fake.url) for _ in range(2)]
    assert {sent(r) for r in again} != {sent(first)}
    assert len({sent(r) for r in again}) == 1
    assert fake.api_key_calls == 2


def test_copies_of_an_evicted_twin_keep_working_and_sharing_the_token(
    fake: FakeApiVideo, key: str
) -> None:
    old = ApiVideoAuth(key, base_url=fake.url)
    assert get(old, fake.url).status_code == 200
    for n in range(RECENT_SETTINGS + 1):  # other argument sets push its twin out
        ApiVideoAuth(f"{key}-evicting-{n}", base_url=fake.url)
    assert all(kept.twin is not old._core for kept in auth_module._settings.values())
    new = ApiVideoAuth(key, base_url=fake.url)
    assert sent(get(new, fake.url)) == sent(get(old, fake.url))
    fake.expire_all()
    assert get(old, fake.url).status_code == 200  # renewed through the evicted twin
    assert sent(get(new, fake.url)) == sent(get(old, fake.url))
    assert (fake.api_key_calls + fake.refresh_calls, fake.unauthorized) == (2, 1)


def evict_every_twin(key: str) -> None:
    """Make twins for enough other argument sets to evict every twin, even ones used since
    they were last passed over; ``file:`` stores (``$XDG_CACHE_HOME`` set by the caller), whose
    twins are never the last construction's."""
    for n in range(2 * RECENT_SETTINGS + 2):
        ApiVideoAuth(f"{key}-evicting-{n}", store="file:")


def test_the_twin_of_the_last_construction_is_let_go_once_evicted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    # The same argument objects as the last construction copy its twin with no look-up;
    # once other argument sets evict that twin (here ones that never become the last:
    # file: stores; twice as many, as it was used), nothing keeps it (nor its key), and
    # the next copy gets a new twin.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = ApiVideoAuth(key)
    assert ApiVideoAuth(key)._core is first._core  # the last-arguments path
    twin = weakref.ref(first._core)
    del first
    evict_every_twin(key)
    gc.collect()
    assert twin() is None
    new = ApiVideoAuth(key)
    assert is_a_twins_copy(new) and new._core is not twin()  # a copy of a new twin


def test_a_key_in_use_keeps_its_token_among_many_one_off_keys(fake: FakeApiVideo, key: str) -> None:
    for n in range(2 * RECENT_SETTINGS + 2):
        # The README's per-call form for one busy key, while other keys come and go.
        assert get(ApiVideoAuth(key, base_url=fake.url), fake.url).status_code == 200
        ApiVideoAuth(f"{key}-one-off-{n}", base_url=fake.url)
        if n % 16 == 15:
            gc.collect()  # what no instance uses any more is gone (as it may be at any time)
    assert fake.api_key_calls == 1


def test_threads_constructing_and_requesting_share_one_token(fake: FakeApiVideo, key: str) -> None:
    threads, rounds = 6, 10
    start = threading.Barrier(threads + 1)
    headers: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(10)
            for _ in range(rounds):
                response = get(ApiVideoAuth(key, base_url=fake.url), fake.url)
                assert response.status_code == 200
                headers.append(sent(response))
        except BaseException as exc:
            errors.append(exc)

    def churn() -> None:  # other argument sets come and go meanwhile, evicting twins
        try:
            start.wait(10)
            for n in range(2 * RECENT_SETTINGS):
                ApiVideoAuth(key, base_url=fake.url, timeout=1 + n / 1000)
        except BaseException as exc:
            errors.append(exc)

    running = [threading.Thread(target=work) for _ in range(threads - 1)]
    running.append(threading.Thread(target=churn))
    for thread in running:
        thread.start()
    start.wait(10)
    for thread in running:
        thread.join(JOIN_TIMEOUT)
    assert not errors, errors
    assert len(headers) == (threads - 1) * rounds and len(set(headers)) == 1
    assert fake.api_key_calls == 1
    assert len(auth_module._settings) <= RECENT_SETTINGS


def _construct_in_child(key: str, url: str, results: Any) -> None:
    """In a forked child: use a copy of a twin made in the parent, then new arguments."""
    try:
        copied = get(ApiVideoAuth(key, base_url=url), url)
        new = get(ApiVideoAuth(key, base_url=url, timeout=7.5), url)
        results.put(((copied.status_code, sent(copied)), (new.status_code, sent(new))))
    except BaseException as exc:
        results.put(repr(exc))


def test_a_forked_child_constructs_though_the_settings_lock_was_held_at_fork(
    fake: FakeApiVideo, key: str
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    parent = sent(get(ApiVideoAuth(key, base_url=fake.url), fake.url))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # a thread making a twin at the moment of fork()
        with auth_module._settings_lock:
            held.set()
            release.wait(JOIN_TIMEOUT)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_construct_in_child, args=(key, fake.url, results))
    try:
        child.start()
        report = results.get(timeout=JOIN_TIMEOUT)
    except queue.Empty:
        pytest.fail("the forked child hung on the settings lock held in the parent")
    finally:
        release.set()
        holder.join(JOIN_TIMEOUT)
        join_or_kill([child], JOIN_TIMEOUT)
        results.close()
        results.join_thread()
    assert isinstance(report, tuple), report
    (status, copied), (new_status, new) = report
    assert status == new_status == 200
    assert copied != parent  # the child never sends the parent's token
    assert new == copied  # one token in the child, for both argument sets


# -- pickles, copies and secrets ------------------------------------------------------


@pytest.mark.parametrize(
    "duplicate", [copy.copy, copy.deepcopy, lambda a: pickle.loads(pickle.dumps(a))]
)
def test_a_copy_can_be_copied_and_pickled(fake: FakeApiVideo, key: str, duplicate: Any) -> None:
    auth = ApiVideoAuth(key, base_url=fake.url, timeout=5)
    token = sent(get(auth, fake.url))
    duplicated = duplicate(auth)
    assert (duplicated.base_url, duplicated.timeout, duplicated.session) == (fake.url, 5.0, None)
    assert sent(get(duplicated, fake.url)) == token
    assert fake.api_key_calls == 1
    blob = pickle.dumps(auth)
    assert token.split()[1].encode() not in blob


def test_no_secret_in_the_repr_of_the_twins(key: str) -> None:
    password = "hunter2-" + key[-6:]
    auth = ApiVideoAuth(key, store=f"redis://:{password}@127.0.0.1:1/0")
    ApiVideoAuth(key)
    shown = repr(auth_module._settings) + repr(auth._core) + repr(auth) + repr(vars(auth))
    assert key not in shown and key[:-4] not in shown
    assert password not in shown


def test_a_failed_construction_shows_no_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setattr(auth_module, "hash", lambda value: 0, raising=False)  # a known twin
    ApiVideoAuth(key + "-other", timeout=3)
    with pytest.raises(ValueError) as excinfo:
        ApiVideoAuth(key, timeout=3, sandbox=True, base_url="https://x.example")
    assert not [text for text in shown_texts(excinfo.value) if key in text]


def test_a_failed_construction_with_a_store_given_shows_no_password_of_the_variable(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # The store is given, so $APIVIDEO_TOKEN_STORE plays no part in this construction: no
    # local of its frame holds the variable's value (a Redis URL with a password).
    password = "hunter2-" + key[-6:]
    monkeypatch.setenv("APIVIDEO_TOKEN_STORE", f"redis://:{password}@127.0.0.1:1/0")
    with pytest.raises(ValueError) as excinfo:
        ApiVideoAuth(key, store="memory:", timeout=0)
    assert not [text for text in shown_texts(excinfo.value) if password in text]


def test_a_failed_construction_shows_no_password_of_the_last_construction(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # A construction that fails on its key keeps no argument of the last construction (the
    # last-arguments path compares them) in its locals: not another one's Redis password.
    monkeypatch.delenv("APIVIDEO_API_KEY", raising=False)
    password = "hunter2-" + key[-6:]
    ApiVideoAuth(key, store=f"redis://:{password}@127.0.0.1:1/0")  # never connected
    for bad in ("   ", None):
        with pytest.raises(ValueError) as excinfo:
            ApiVideoAuth(bad)  # an empty key; no key given nor set
        assert not [text for text in shown_texts(excinfo.value) if password in text]


def _line_of(function: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if line.strip() == text:
            return first + offset
    raise AssertionError(f"no line {text!r} in {function.__name__}")


def test_a_twin_evicted_by_another_thread_while_remembered_is_not_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    # _remember checks ``kept.dropped`` and sets ``_last`` without the settings lock. Another
    # thread evicts the twin in between (and finds _last not yet pointing to it): _last must
    # still let it go, its key and token with it, not keep it until a new twin is made (in
    # a steady state of hits, never). sys.settrace stops this thread at that line.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = _line_of(auth_module._remember, "_last = kept")
    code = auth_module._remember.__code__
    fired: list[bool] = []

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == target and not fired:
            fired.append(True)
            thread = threading.Thread(target=evict_every_twin, args=(key,))
            thread.start()
            thread.join(60)
        return local

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    sys.settrace(trace)
    try:
        auth = ApiVideoAuth(key)  # a new twin, remembered while the other thread evicts it
    finally:
        sys.settrace(None)
    assert fired
    twin = weakref.ref(auth._core)
    assert all(kept.twin is not twin() for kept in auth_module._settings.values())  # evicted
    del auth
    gc.collect()
    last = auth_module._last
    assert last is None or not last.dropped, "_last holds an evicted twin"
    assert twin() is None


# -- a copy changed or built again while in use -----------------------------------------


WAIT = 10.0


def joined(thread: threading.Thread) -> None:
    thread.join(WAIT)
    assert not thread.is_alive(), "the thread is stuck"


def is_a_twins_copy(auth: ApiVideoAuth) -> bool:
    """Return whether ``auth``'s core is a twin kept for the instances made alike."""
    return any(kept.twin is auth._core for kept in auth_module._settings.values())


def copy_of(key: str, **kwargs: Any) -> ApiVideoAuth:
    """Return an instance that is a copy of a twin (the second construction alike)."""
    ApiVideoAuth(key, **kwargs)
    auth = ApiVideoAuth(key, **kwargs)
    assert is_a_twins_copy(auth)
    return auth


class PauseAt:
    """Stop a thread once, just before ``function`` runs the line ``text``, until ``go``."""

    def __init__(self, function: Any, text: str) -> None:
        self.code = function.__code__
        self.line = _line_of(function, text)
        self.paused = threading.Event()
        self.go = threading.Event()

    def _trace(self, frame: FrameType, event: str, arg: object) -> Any:
        return self._local if frame.f_code is self.code else None

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == self.line and not self.paused.is_set():
            self.paused.set()
            self.go.wait(WAIT)
        return self._local

    def run(self, action: Callable[[], object]) -> threading.Thread:
        def traced() -> None:
            sys.settrace(self._trace)
            try:
                action()
            finally:
                sys.settrace(None)

        thread = threading.Thread(target=traced, daemon=True)
        thread.start()
        assert self.paused.wait(WAIT), "the thread never reached the line"
        return thread


def test_two_settings_changed_at_once_on_a_copy_both_hold(key: str) -> None:
    auth = copy_of(key)
    pause = PauseAt(ApiVideoAuth.__setattr__, "with _settings_lock:")
    thread = pause.run(lambda: setattr(auth, "timeout", 5.0))  # checked, not yet applied
    auth.refresh_margin = 30.0  # this thread gives the copy its own state, and sets it
    pause.go.set()
    joined(thread)
    assert (auth.timeout, auth.refresh_margin) == (5.0, 30.0)


def test_a_base_url_and_another_setting_changed_at_once_on_a_copy_stay_consistent(
    key: str,
) -> None:
    # After ``auth.base_url = new`` returns, requests to ``new`` carry a token that ``new``
    # issued, and the copy's token state is no longer the old base URL's.
    with FakeApiVideo(api_keys=[key]) as old, FakeApiVideo(api_keys=[key]) as new:
        auth = copy_of(key, base_url=old.url)
        twin = auth._core
        setter = PauseAt(ApiVideoAuth.__setattr__, "with _settings_lock:")
        other = setter.run(lambda: setattr(auth, "timeout", 5.0))
        mover = PauseAt(ApiVideoAuth.__setattr__, "with _settings_lock:")
        moving = mover.run(lambda: setattr(auth, "base_url", new.url))
        setter.go.set()
        joined(other)
        mover.go.set()
        joined(moving)
        assert (auth.base_url, auth.timeout) == (new.url, 5.0)
        assert get(auth, new.url).status_code == 200
        assert auth._manager is not twin._manager
        assert (old.api_key_calls, new.api_key_calls, new.unauthorized) == (0, 1, 0)


def test_a_copy_whose_init_is_called_again_and_fails_keeps_working(
    fake: FakeApiVideo, key: str
) -> None:
    full = ApiVideoAuth(key, base_url=fake.url, session=requests.Session())
    with pytest.raises(ValueError, match="scheme"):
        full.__init__(key, base_url=fake.url, scheme="nope")  # type: ignore[misc]
    assert get(full, fake.url).status_code == 200
    auth = copy_of(key, base_url=fake.url)
    with pytest.raises(ValueError, match="scheme"):
        auth.__init__(key, base_url=fake.url, scheme="nope")  # type: ignore[misc]
    assert repr(auth).startswith("ApiVideoAuth(")
    assert get(auth, fake.url).status_code == 200


def test_an_instance_in_use_while_its_init_is_called_again_keeps_working(
    fake: FakeApiVideo, key: str
) -> None:
    url = fake.url
    ApiVideoAuth(key, base_url=url)  # the last construction: these argument objects
    auth = ApiVideoAuth(key, base_url=url, session=requests.Session())  # built in full
    ApiVideoAuth(key, base_url=url)
    pause = PauseAt(
        ApiVideoAuth.__init__, 'object.__setattr__(self, "__dict__", {"_core": last.twin})'
    )
    thread = pause.run(lambda: auth.__init__(key, base_url=url))  # type: ignore[misc]
    try:
        assert get(auth, url).status_code == 200  # its state before the call
    finally:
        pause.go.set()
        joined(thread)
    assert is_a_twins_copy(auth) and get(auth, url).status_code == 200  # a copy now


def test_a_setting_cannot_be_deleted_from_a_copy_nor_a_full_instance(key: str) -> None:
    for auth in (ApiVideoAuth(key, session=requests.Session()), copy_of(key)):
        with pytest.raises(AttributeError, match="'timeout' cannot be deleted"):
            del auth.timeout
        assert auth.timeout == 10.0
    plain = copy_of(key)
    plain.label = "x"
    del plain.label  # type: ignore[attr-defined]  # what a user set is theirs to delete
    assert not hasattr(plain, "label")


def test_dir_of_a_copy_lists_its_settings(key: str) -> None:
    assert {"base_url", "timeout", "store", "session", "get_token"} <= set(dir(copy_of(key)))


def test_an_error_inside_a_subclass_property_names_what_is_missing(key: str) -> None:
    class Labelled(ApiVideoAuth):
        @property
        def label(self) -> str:
            return str(self.missing_setting)  # type: ignore[attr-defined]

    with pytest.raises(AttributeError, match="missing_setting"):
        Labelled(key).label  # noqa: B018


@pytest.mark.parametrize("make", ["copy", "full"])
@pytest.mark.parametrize(("name", "value"), [("base_url", "http://api.example"), ("store", "x:")])
def test_a_setting_refused_shows_no_key(key: str, make: str, name: str, value: str) -> None:
    auth = copy_of(key) if make == "copy" else ApiVideoAuth(key, session=requests.Session())
    with pytest.raises(ValueError) as excinfo:
        setattr(auth, name, value)
    assert not [text for text in shown_texts(excinfo.value) if key in text]
