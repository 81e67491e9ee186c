"""Soak: many threads through one ApiVideoAuth while the emulator misbehaves at random.

    python benchmarks/soak.py --threads 16 --seconds 600

Threads send GET /videos (and now and then an upload from a file) through one
``requests.Session`` whose auth is an ``ApiVideoAuth``, for the given time. Meanwhile a
chaos thread makes the emulator revoke every token, expire the access tokens, or fail the
next token call (5xx, 429 with a short Retry-After, a slow answer, a dropped connection),
and tokens live only ``--ttl`` seconds, so proactive refreshes happen all along. Every
log record of every logger, at DEBUG, is captured and searched for the key and for every
token the emulator issued.

The goal: 0 failed requests and 0 secrets in the log. Exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import random
import threading
import time
from collections import Counter

import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, Fault

KEY = "soak-" + os.urandom(16).hex()


def chaos(
    fake: FakeApiVideo, stop: threading.Event, rng: random.Random, events: Counter[str]
) -> None:
    """Every 0.2 to 2 s do something nasty; queue a token fault only once the last was used."""
    calls_at_last_fault = -1
    while not stop.wait(rng.uniform(0.2, 2.0)):
        action = rng.choice(["revoke", "expire", "fault", "fault", "nothing"])
        if action == "revoke":
            fake.revoke_all()
        elif action == "expire":
            fake.expire_all()
        elif action == "fault":
            if fake.token_calls == calls_at_last_fault:
                continue  # the previous fault was not consumed yet: do not pile them up
            calls_at_last_fault = fake.token_calls
            fault = rng.choice(
                [
                    Fault(500),
                    Fault(502),
                    Fault(503),
                    Fault(504),
                    Fault(429, headers={"Retry-After": "1"}),
                    Fault(200, delay=0.3),  # slow but within the timeout
                    Fault(0),  # connection dropped without an answer
                ]
            )
            action = f"fault {fault.status}"
            fake.fail_token_calls(fault)
        events[action] += 1


def worker(
    session: requests.Session,
    url: str,
    video_id: str,
    deadline: float,
    rng: random.Random,
    results: Counter[str],
    lock: threading.Lock,
) -> None:
    while time.monotonic() < deadline:
        try:
            if rng.random() < 0.05:
                payload = rng.randbytes(rng.randint(1, 256 * 1024))
                file = io.BytesIO(payload)
                response = session.post(f"{url}/videos/{video_id}/source", data=file, timeout=30)
                ok = (
                    response.status_code == 201
                    and response.headers.get("X-Received-Sha256")
                    == hashlib.sha256(payload).hexdigest()
                )
            else:
                response = session.get(f"{url}/videos", timeout=30)
                ok = response.status_code == 200
            outcome = "ok" if ok else f"failed: HTTP {response.status_code}"
            if ok and response.history:
                outcome = "ok after a replay"
        except Exception as exc:
            outcome = f"failed: {type(exc).__name__}: {exc}"
        with lock:
            results[outcome] += 1


def main() -> int:
    """Run the soak and print its figures; return 0 if nothing failed and nothing leaked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ttl", type=float, default=20.0, help="token lifetime, seconds")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    results: Counter[str] = Counter()
    events: Counter[str] = Counter()
    lock = threading.Lock()
    started = time.monotonic()
    with FakeApiVideo(api_keys=[KEY], token_ttl=args.ttl) as fake, requests.Session() as session:
        session.auth = ApiVideoAuth(KEY, base_url=fake.url, timeout=5)
        video_id = session.post(f"{fake.url}/videos", json={"title": "soak"}).json()["videoId"]
        stop = threading.Event()
        chaos_thread = threading.Thread(target=chaos, args=(fake, stop, rng, events))
        chaos_thread.start()
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=worker,
                args=(
                    session,
                    fake.url,
                    video_id,
                    deadline,
                    random.Random(rng.random()),
                    results,
                    lock,
                ),
            )
            for _ in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        chaos_thread.join()
        root.removeHandler(handler)
        text = log.getvalue()
        secrets = {KEY} | fake.issued_tokens
        leaked = sum(1 for secret in secrets if secret in text)
        figures = {
            "api_key_calls": fake.api_key_calls,
            "refresh_calls": fake.refresh_calls,
            "401s served": fake.unauthorized,
        }
    elapsed = time.monotonic() - started
    requests_total = sum(results.values())
    failed = sum(n for outcome, n in results.items() if outcome.startswith("failed"))
    print(f"soak: {args.threads} threads, {elapsed:.0f} s, token ttl {args.ttl:.0f} s, seed {seed}")
    print(f"requests          {requests_total}")
    print(f"  ok              {results['ok']}")
    print(f"  ok after replay {results['ok after a replay']}")
    print(f"failed requests   {failed}")
    for outcome, n in sorted(results.items()):
        if outcome.startswith("failed"):
            print(f"  {n:6d}  {outcome}")
    print(
        f"token calls       {figures['api_key_calls']} api-key, {figures['refresh_calls']} refresh"
    )
    print(f"401s seen         {figures['401s served']}")
    print("chaos             " + ", ".join(f"{k} x{v}" for k, v in sorted(events.items())))
    print(
        f"log               {len(text.splitlines())} DEBUG lines, {len(secrets)} secrets searched"
    )
    print(f"secrets in log    {leaked}")
    return 0 if failed == 0 and leaked == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
