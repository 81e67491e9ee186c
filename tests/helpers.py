"""Helpers the tests share; fixtures live in conftest.py, which imports nothing from here."""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkContext, SpawnContext
from typing import Any

import responses

from requests_apivideo.testing import FakeApiVideo


def fields(stored: Any) -> tuple[Any, ...]:
    """Return a store record's fields (gen, access, refresh, expires_in, remaining, spent)."""
    return (
        stored.gen,
        stored.access_token,
        stored.refresh_token,
        stored.expires_in,
        stored.remaining,
        stored.spent,
    )


def bearer(token: str) -> str:
    """Return the Authorization header value that carries the access token ``token``."""
    return f"Bearer {token}"


def authorization_headers(fake: FakeApiVideo, path: str = "/videos") -> list[str | None]:
    """Return the Authorization header of every request the emulator received for ``path``."""
    return [r.headers.get("Authorization") for r in fake.requests if r.path.split("?")[0] == path]


def calls_to(rsps: responses.RequestsMock, url: str) -> int:
    """Return how many requests the ``responses`` mock received for ``url``."""
    return sum(1 for call in rsps.calls if call.request.url == url)


def start_context(method: str) -> ForkContext | SpawnContext:
    """Return the multiprocessing context of start method ``method``, "fork" or "spawn".

    As ``multiprocessing.get_context(method)``, but typed as a context that has ``Process``.
    """
    if method == "fork":
        return multiprocessing.get_context("fork")
    if method == "spawn":
        return multiprocessing.get_context("spawn")
    raise ValueError(f"no start method {method!r} in these tests")


class WatchedLock:
    """Wrap a lock and count the calls to acquire it, so a test can wait until N threads
    have asked for it (and so are waiting) instead of betting on a sleep."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._asked = 0
        self._changed = threading.Condition()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._changed:
            self._asked += 1
            self._changed.notify_all()
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def wait_until_asked(self, times: int, timeout: float = 30.0) -> bool:
        """Return once the lock has been asked for ``times`` times (False on timeout)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._asked >= times, timeout)


@contextlib.contextmanager
def raw_server(answer: Callable[[socket.socket, bytes], None]) -> Iterator[str]:
    """Serve 127.0.0.1 with ``answer(connection, request)`` for a hand-made, broken answer.

    For what FakeApiVideo will not do: trickle bytes, break the chunked encoding. The
    request is read up to the end of its body; the connection is closed after the answer.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
                while length and len(body) < int(length.group(1)):
                    body += connection.recv(65536)
                with contextlib.suppress(OSError):
                    answer(connection, head + b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def join_or_kill(processes: list[Any], timeout: float = 60.0) -> None:
    """Join child processes, killing (and failing on) any still alive after ``timeout``."""
    for process in processes:
        process.join(timeout=timeout)
    hung = [p for p in processes if p.is_alive()]
    for process in hung:
        process.kill()
        process.join(timeout=10)
    assert not hung, f"{len(hung)} child process(es) hung"


def shown_texts(exc: BaseException) -> list[str]:
    """Return what a traceback display of ``exc`` can show: its message, args and formatted
    traceback, and the repr of every local of the frames below the test's own; then the same
    for every exception chained to it (cause or context), all of whose frames count."""
    texts = [str(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    seen = {id(exc)}
    pending = [exc]
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # the test's own
    while pending:
        current = pending.pop()
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                try:
                    texts.append(repr(value))
                except Exception:  # an instance that failed half-way has no scheme yet
                    texts.append(object.__repr__(value))
            tb = tb.tb_next
        for chained in (current.__cause__, current.__context__):
            if chained is not None and id(chained) not in seen:
                seen.add(id(chained))
                pending.append(chained)
                texts += [str(chained), repr(chained.args)]
        if pending:
            tb = pending[-1].__traceback__
    return texts
