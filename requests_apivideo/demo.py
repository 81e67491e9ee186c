"""An offline demonstration: a plain requests script against the local emulator.

Time is simulated (the emulator and the auth share one clock that the demo moves
forward), so an hour passes in an instant and nothing sleeps.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading

import requests

from .auth import ApiVideoAuth
from .testing import FakeApiVideo, FakeClock

__all__ = ("run",)

DEMO_KEY = "demo-api-key-not-a-secret"


class _Timeline(logging.Handler):
    """Print the library's own log lines, indented under the step that caused them."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"             · {record.getMessage()}")


def run() -> int:
    """Run the demonstration; return 0 if every step came out as it should."""
    clock = FakeClock()
    handler = _Timeline(logging.INFO)
    logger = logging.getLogger("requests_apivideo")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with FakeApiVideo(api_keys=[DEMO_KEY], clock=clock) as fake:
            return _script(fake, clock)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _script(fake: FakeApiVideo, clock: FakeClock) -> int:
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
    if failures:
        print("Something went wrong:\n  " + "\n  ".join(failures))
        return 1
    print("Every request succeeded; no key or token was printed.")
    return 0
