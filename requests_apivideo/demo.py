"""An offline demonstration: a plain requests script against the local emulator.

Time is simulated (the emulator and the auth share one clock that the demo moves
forward), so an hour passes in an instant and nothing sleeps. The demo checks its own
output: if the key or a token was printed, it says so and exits 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable
from typing import TextIO

import requests

from .auth import ApiVideoAuth
from .testing import FakeApiVideo, FakeClock

__all__ = ("run",)

DEMO_KEY = "demo-api-key-not-a-secret"

#: What the emulator's tokens look like (``secrets.token_urlsafe``, 43 characters or more).
_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9_-]{32,}")


class _Timeline(logging.Handler):
    """Print the library's own log lines, indented under the step that caused them."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"             · {record.getMessage()}")


class _Tee(io.TextIOBase):
    """Write to the real standard output and keep a copy, to check what was printed."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return int(self.out.write(text))

    def flush(self) -> None:
        self.out.flush()


def leaks(printed: str, secrets: Iterable[str]) -> list[str]:
    """Return what, of ``secrets`` or anything shaped like a token, ``printed`` holds.

    The findings name the kind of secret, never the secret itself.
    """
    found = [f"secret #{n}" for n, secret in enumerate(secrets, 1) if secret in printed]
    found += ["a token-shaped string"] * bool(_TOKEN_SHAPED.search(printed))
    return found


def run() -> int:
    """Run the demonstration; return 0 if every step came out as it should."""
    clock = FakeClock()
    handler = _Timeline(logging.INFO)
    logger = logging.getLogger("requests_apivideo")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    tee = _Tee(sys.stdout)
    try:
        with (
            contextlib.redirect_stdout(tee),
            FakeApiVideo(api_keys=[DEMO_KEY], clock=clock) as fake,
        ):
            failures = _script(fake, clock)
            # Every access token the emulator was shown, the key, and (by their shape) the
            # refresh tokens it issued: none of them may be in what was printed.
            headers = (r.headers.get("Authorization", "") for r in fake.requests)
            shown = {header.partition(" ")[2] for header in headers} - {""}
            found = leaks(tee.copy.getvalue(), [DEMO_KEY, *sorted(shown)])
            if found:
                failures.append(f"the output above holds {', '.join(found)}")
            if failures:
                print("Something went wrong:\n  " + "\n  ".join(failures))
                return 1
            print(
                f"Every request succeeded. Checked: the output above holds neither the key "
                f"nor any of the {len(shown)} access tokens the emulator saw, nor anything "
                "shaped like a token."
            )
            return 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _fleet_worker(url: str, key: str, store: str) -> int:
    """In a worker process: one request with an auth on the shared store."""
    auth = ApiVideoAuth(key, base_url=url, store=store)
    with requests.get(f"{url}/videos", auth=auth, timeout=30) as response:
        return response.status_code


def _script(fake: FakeApiVideo, clock: FakeClock) -> list[str]:
    failures: list[str] = []
    start = clock.monotonic()

    def step(title: str) -> None:
        seconds = int(clock.monotonic() - start)
        elapsed = f"+{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        print(f"\n[{elapsed}] {title}")

    def show(response: requests.Response, expect: int) -> requests.Response:
        hops = "".join(f"{h.status_code} → " for h in response.history)
        request = response.request
        path = (request.path_url or "").split("?")[0]
        print(f"             {request.method} {path}: {hops}{response.status_code}")
        if response.status_code != expect:
            failures.append(f"{request.method} {path} answered {response.status_code}")
        return response

    def token_calls() -> str:
        return f"token calls so far: {fake.api_key_calls} api-key, {fake.refresh_calls} refresh"

    print(f"api.video emulator on {fake.url}: tokens live {fake.token_ttl:.0f} s")
    print("The script is plain requests; its only api.video line is session.auth = ...")
    print(
        "Time is simulated: the [+hh:mm:ss] clock, which the emulator and the auth share,\n"
        "jumps ahead between steps, so the hours below pass in a second or two."
    )
    session = requests.Session()
    session.auth = ApiVideoAuth(DEMO_KEY, base_url=fake.url, clock=clock)
    api = fake.url

    step("First request: the token is fetched on demand")
    show(session.get(f"{api}/videos"), 200)
    video = show(session.post(f"{api}/videos", json={"title": "demo"}), 201).json()
    print(f"             {token_calls()}")

    clock.advance(59 * 60 + 30)
    step("59 minutes later: the token is refreshed early, with the refresh token")
    show(session.get(f"{api}/videos"), 200)
    print(f"             {token_calls()}")

    clock.advance(2 * 3600)
    step("The laptop slept for two hours: the token expired on both sides")
    show(session.get(f"{api}/videos"), 200)
    print(f"             {token_calls()}")

    step("The server revokes every token (refresh tokens too): 401, key, replay")
    print("             (expected below: /auth/refresh answers 400, as its token is revoked too;")
    print("             the auth then falls back to the key)")
    fake.revoke_all()
    show(session.get(f"{api}/videos"), 200)
    print(f"             {token_calls()}")

    step("A 401 storm: the token dies under 16 threads that all use it")
    fake.expire_all()
    before = fake.token_calls
    unauthorized = fake.unauthorized
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    def worker() -> None:
        barrier.wait()
        statuses.append(session.get(f"{api}/videos").status_code)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    renewals = fake.token_calls - before
    print(
        f"             16 requests: {statuses.count(200)} x 200, "
        f"{fake.unauthorized - unauthorized} x 401 seen and replayed, {renewals} token call"
    )
    if statuses.count(200) != 16 or renewals != 1:
        failures.append(f"storm: {statuses.count(200)}/16 succeeded with {renewals} token calls")

    step("A 5 MiB file upload meets a 401: the file is rewound and sent again")
    fake.expire_all()
    payload = os.urandom(5 * 1024 * 1024)
    with tempfile.TemporaryFile() as file:
        file.write(payload)
        file.seek(0)
        response = show(session.post(f"{api}/videos/{video['videoId']}/source", data=file), 201)
    received = response.headers.get("X-Received-Sha256")
    same = received == hashlib.sha256(payload).hexdigest()
    size = response.headers.get("X-Received-Bytes")
    verdict = "matches" if same else "DIFFERS"
    print(f"             the server received {size} bytes, sha256 {verdict}")
    if not same:
        failures.append("the replayed upload did not arrive intact")

    step("A fleet: 4 worker processes share one token through a file store")
    fleet_key = DEMO_KEY + "-fleet"
    fake.api_keys.add(fleet_key)
    before = fake.token_calls
    with tempfile.TemporaryDirectory() as directory:
        context = multiprocessing.get_context("spawn")
        with context.Pool(4) as pool:
            args = [(fake.url, fleet_key, "file:" + directory)] * 4
            fleet_statuses = pool.starmap(_fleet_worker, args)
    renewals = fake.token_calls - before
    print(
        f"             4 processes, store=\"file:…\": {fleet_statuses.count(200)} x 200, "
        f"{renewals} token call (each would make its own with the default memory store)"
    )
    if fleet_statuses.count(200) != 4 or renewals != 1:
        failures.append(f"fleet: {fleet_statuses.count(200)}/4 succeeded, {renewals} token calls")

    step("A request to another host never gets the token")
    foreign = requests.Request("GET", "https://example.com/", auth=session.auth).prepare()
    header = "present!" if "Authorization" in foreign.headers else "none"
    print(f"             Authorization header on https://example.com/: {header}")
    if "Authorization" in foreign.headers:
        failures.append("a token was attached to a request for another host")

    print(
        f"\nDone: {len(fake.requests)} requests reached the emulator, {fake.unauthorized} "
        f"answered 401; {token_calls()}."
    )
    return failures
