"""The last-arguments path of construction (#9): what it must not keep or show."""

from __future__ import annotations

import gc
import inspect
import sys
import threading
import traceback
import weakref
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from requests_apivideo import ApiVideoAuth
from requests_apivideo import auth as auth_module

RECENT_SETTINGS = auth_module.RECENT_SETTINGS


def _frame_texts(exc: BaseException) -> list[str]:
    texts = [str(exc), "".join(traceback.format_exception(exc))]
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            try:
                texts.append(repr(value))
            except Exception:  # an instance that failed half-way
                texts.append(object.__repr__(value))
        tb = tb.tb_next
    return texts


def test_a_failed_construction_with_a_store_given_shows_no_password_of_the_variable(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # The store is given, so $APIVIDEO_TOKEN_STORE plays no part in this construction: before
    # the change no local of the frame held it. Now ``env`` and ``args`` hold its raw bytes.
    password = "hunter2-" + key[-6:]
    monkeypatch.setenv("APIVIDEO_TOKEN_STORE", f"redis://:{password}@127.0.0.1:1/0")
    with pytest.raises(ValueError) as excinfo:
        ApiVideoAuth(key, store="memory:", timeout=0)
    assert not [text for text in _frame_texts(excinfo.value) if password in text]


def test_a_failed_construction_shows_no_password_of_the_last_construction(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # A construction that fails on its key shows, in the frame's ``args`` local, the argument
    # objects of the last construction (another one's Redis URL, password included).
    monkeypatch.delenv("APIVIDEO_API_KEY", raising=False)
    password = "hunter2-" + key[-6:]
    ApiVideoAuth(key, store=f"redis://:{password}@127.0.0.1:1/0")  # never connected
    for bad in ("   ", None):
        with pytest.raises(ValueError) as excinfo:
            ApiVideoAuth(bad)  # an empty key; no key given nor set
        assert not [text for text in _frame_texts(excinfo.value) if password in text]


def _line_of(function: Any, text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if line.strip() == text:
            return first + offset
    raise AssertionError(f"no line {text!r} in {function.__name__}")


def test_a_twin_evicted_by_another_thread_while_remembered_is_not_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    # _remember checks ``kept.dropped`` and sets ``_last`` without the settings lock: a
    # thread that evicts the twin in between (and finds _last not yet pointing to it) leaves
    # _last holding an evicted twin, its key and token, until some later construction makes
    # a new twin (in a steady state of hits, never).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = _line_of(auth_module._remember, "_last = kept")
    code = auth_module._remember.__code__
    fired: list[bool] = []

    def evict() -> None:  # another thread: enough other argument sets to evict every twin
        for n in range(2 * RECENT_SETTINGS + 2):
            ApiVideoAuth(f"{key}-evicting-{n}", store="file:")

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == target and not fired:
            fired.append(True)
            thread = threading.Thread(target=evict)
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
    twin = weakref.ref(auth._twin)
    assert all(kept.twin is not twin() for kept in auth_module._settings.values())  # evicted
    del auth
    gc.collect()
    last = auth_module._last
    assert last is None or not last.dropped, "_last holds an evicted twin"
    assert twin() is None
