"""Copies, twins, settings changed on them while in use, and secrets (adversarial review 3).

Each test is self-contained; each failed on the code before the review's fixes.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
import responses

from requests_apivideo import ApiVideoAuth
from requests_apivideo.stores.memory import MemoryTokenStore
from requests_apivideo.testing import FakeApiVideo

from .helpers import join_or_kill, shown_texts, start_context
from .test_twins import PauseAt, copy_of, get, joined

# -- a setting changed, or __init__ called again, while the instance is in use --------

#: Where a new core is half built: its scope is set, its manager not yet.
MANAGER_LINE = "self._manager = manager_for(self.store, self.base_url, self._api_key, self.clock)"


@pytest.mark.parametrize("make", ["copy", "full"])
def test_a_request_while_the_base_url_changes_never_carries_the_old_hosts_token(
    key: str, make: str
) -> None:
    # One thread runs ``auth.base_url = new`` and is half-way through building the new
    # state. A request from another thread meanwhile uses the old state whole: the new host
    # gets neither the old host's token nor its refresh token, and the old host's shared
    # token state keeps the old host's token.
    with FakeApiVideo(api_keys=[key]) as old, FakeApiVideo(api_keys=[key]) as new:
        if make == "copy":
            auth = copy_of(key, base_url=old.url)
        else:
            auth = ApiVideoAuth(key, base_url=old.url, session=requests.Session())
        assert get(auth, old.url).status_code == 200
        old_token = auth.get_token()
        mover = PauseAt(ApiVideoAuth._build, MANAGER_LINE)
        moving = mover.run(lambda: setattr(auth, "base_url", new.url))
        try:
            get(auth, new.url)  # another thread's request meanwhile
        finally:
            mover.go.set()
            joined(moving)
        sent_to_new = [r.headers.get("Authorization") or "" for r in new.requests]
        assert not [h for h in sent_to_new if old_token in h], "old host's token sent to new"
        assert new.refresh_calls == 0  # the old host's refresh token was presented to new
        assert ApiVideoAuth(key, base_url=old.url).get_token() == old_token


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # PauseAt's fork
def test_a_child_forked_during_a_base_url_change_keeps_a_consistent_copy(key: str) -> None:
    # The child inherits the copy as the paused thread left it, with no thread to finish
    # the change there: the old base URL with the old base URL's state, consistently.
    with FakeApiVideo(api_keys=[key]) as old, FakeApiVideo(api_keys=[key]) as new:
        auth = copy_of(key, base_url=old.url)
        mover = PauseAt(ApiVideoAuth._build, MANAGER_LINE)
        moving = mover.run(lambda: setattr(auth, "base_url", new.url))

        def child() -> None:
            # A child starts with no token: the copy (now for the new URL) fetches one, and
            # an instance for the old URL must not find that one in its own state.
            via_copy = auth.get_token()
            for_old = ApiVideoAuth(key, base_url=old.url).get_token()
            os._exit(3 if (auth.base_url == new.url and via_copy == for_old) else 0)

        try:
            process = start_context("fork").Process(target=child)
            process.start()
            join_or_kill([process])
        finally:
            mover.go.set()
            joined(moving)
        assert process.exitcode == 0, "the child's copy for the new URL shares the old URL's token"


def test_init_called_again_with_another_key_while_in_use_leaves_the_first_key_its_token(
    key: str,
) -> None:
    # ``auth.__init__(other)`` on a copy of key A's twin, half-way through: a token call
    # from another thread meanwhile is key A's, in A's state; B's token never lands in A's
    # shared state (else every later ``ApiVideoAuth(A)`` would act as account B).
    other = key + "-other"
    base = "https://ws.api.video"

    def issue(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        given = json.loads(bytes(request.body or b"{}"))["apiKey"]  # type: ignore[arg-type]
        token = {"access_token": "access-of-" + given, "refresh_token": "refresh-of-" + given}
        return 200, {}, json.dumps({"token_type": "Bearer", "expires_in": 3600, **token})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, base + "/auth/api-key", callback=issue)
        auth = copy_of(key)
        pause = PauseAt(ApiVideoAuth._build, MANAGER_LINE)
        thread = pause.run(lambda: auth.__init__(other))  # type: ignore[misc]
        try:
            auth.get_token()  # another thread's request meanwhile
        finally:
            pause.go.set()
            joined(thread)
        assert ApiVideoAuth(key).get_token() == "access-of-" + key


# -- a refused setting -----------------------------------------------------------------


class RefusingStore(MemoryTokenStore):
    """A store object whose entries cannot be made (a user's store that says no)."""

    id = "refusing:"

    def __repr__(self) -> str:
        return "RefusingStore()"

    def entry(self, name: str, secret: bytes) -> Any:
        raise RuntimeError("this store refuses new entries")


@pytest.mark.parametrize("make", ["copy", "full"])
def test_a_store_refused_on_a_setting_shows_no_key_in_the_traceback(key: str, make: str) -> None:
    auth = copy_of(key) if make == "copy" else ApiVideoAuth(key, session=requests.Session())
    with pytest.raises(RuntimeError) as excinfo:
        auth.store = RefusingStore()
    shown = [text for text in shown_texts(excinfo.value) if key in text]
    assert not shown, shown[:2]


@pytest.mark.parametrize("make", ["copy", "full"])
def test_a_store_refused_on_a_setting_is_not_half_applied(key: str, make: str) -> None:
    auth = copy_of(key) if make == "copy" else ApiVideoAuth(key, session=requests.Session())
    before = auth.store
    refused = RefusingStore()
    with pytest.raises(RuntimeError):
        auth.store = refused
    # The setting failed: the instance keeps the store its token lives in (which it pickles).
    assert auth.store is before


# -- a key that cannot be encoded ------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_a_key_that_is_not_utf8_fails_with_no_key_shown(key: str, scheme: str) -> None:
    # A key read from the environment or a file with a byte that is not UTF-8 holds a
    # surrogate (surrogateescape). The construction fails; nothing it shows holds the key.
    bad = key + "\udcff"
    with pytest.raises(ValueError) as excinfo:
        ApiVideoAuth(bad, scheme=scheme)  # type: ignore[arg-type]
    shown = [text for text in shown_texts(excinfo.value) if key in text]
    assert not shown, shown[:2]


def test_a_key_from_the_environment_that_is_not_utf8_fails_with_no_key_shown(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setitem(os.environb, b"APIVIDEO_API_KEY", key.encode() + b"\xff")
    with pytest.raises(ValueError) as excinfo:
        ApiVideoAuth()
    shown = [text for text in shown_texts(excinfo.value) if key in text]
    assert not shown, shown[:2]


# -- a setting of the wrong type -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("refresh_margin", "60", TypeError),
        ("timeout", 0, ValueError),
        ("scheme", "Basic", ValueError),
        ("session", "a session", TypeError),
    ],
)
def test_a_setting_is_checked_as_at_construction_and_a_refused_one_changes_nothing(
    key: str, name: str, value: object, error: type[Exception]
) -> None:
    # Before, ``auth.refresh_margin = "60"`` (say, from a config file) was accepted, and
    # every request then raised a bare TypeError from inside the auth.
    with FakeApiVideo(api_keys=[key]) as fake:
        auth = ApiVideoAuth(key, base_url=fake.url)
        before = getattr(auth, name)
        with pytest.raises(error):
            setattr(auth, name, value)
        assert getattr(auth, name) == before
        assert get(auth, fake.url).status_code == 200
