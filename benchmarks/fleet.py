"""Token calls made by a fleet of processes x threads sharing one store, and what a store costs.

For each store (memory, file, Redis) and each fleet size (processes 1, 4, 16 x threads 1, 8),
real worker processes (forked) share one API key against the local emulator, in lock-step
phases, and the emulator counts the token calls of each event:

- first start: every thread's first request, all released together;
- server-side expiry (``expire_all()``): every thread's next request gets a 401;
- revocation (``revoke_all()``): access and refresh tokens are dead;
- short tokens: 1 s tokens for 8 s of real time (8 lifetimes; the same shape as 10 minutes
  of 75 s tokens), every thread sending requests back to back;
- 20 cron-like runs: ``python -m requests_apivideo token --store …`` 20 times in a row.

"ideal" is what one shared token gives: 1 call per event, about 2 per lifetime for short
tokens (a refresh at half the lifetime). Every cell also reports failed requests and
refresh tokens presented again after they were spent (must be 0).

Then, in one process: the cost per request with a fresh token for each store, as the
median ratio to a static ``Authorization`` header on the same server (alternated pairs),
with an A/A control (static against static), and the Redis commands sent per 1,000 requests
with a fresh token (INFO commandstats).

Run from the repository root (needs ``redis-server`` on the PATH for the Redis rows)::

    python benchmarks/fleet.py                  # about 5 minutes on 2 cores
    python benchmarks/fleet.py --quick          # 1 and 4 processes, fewer pairs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo
from tests.fleet import Phase, Report, fleet
from tests.redis_server import RedisServer

KEY = "fleet-benchmark-key"


def failed(reports: list[Report]) -> int:
    return sum(r.failed for r in reports)


def events(store: str, processes: int, threads: int) -> list[tuple[str, int, int, int]]:
    """Return (event, token calls, failed requests, refresh tokens reused) for one fleet."""
    rows = []
    with FakeApiVideo(api_keys=[KEY]) as fake:
        phases = [Phase(requests=2), Phase(requests=2), Phase(requests=2)]
        with fleet(fake.url, KEY, store, processes=processes, threads=threads,
                   phases=phases, method="fork") as step:
            for name, act in (("first start", None), ("server-side expiry", fake.expire_all),
                              ("revocation", fake.revoke_all)):
                if act is not None:
                    act()
                fake.reset_counters()
                reports = step()
                rows.append((name, fake.token_calls, failed(reports), fake.refresh_reuses))
    with FakeApiVideo(api_keys=[KEY + "-short"], token_ttl=1.0) as fake:
        with fleet(fake.url, KEY + "-short", store, processes=processes, threads=threads,
                   phases=[Phase(until=8.0)], method="fork") as step:
            reports = step()
        rows.append(("short tokens (8 s)", fake.token_calls, failed(reports), fake.refresh_reuses))
    return rows


def cron(store: str) -> tuple[int, int]:
    """Return (token calls, failed runs) for 20 CLI runs in a row."""
    with FakeApiVideo(api_keys=[KEY]) as fake, tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "APIVIDEO_API_KEY": KEY, "XDG_CACHE_HOME": cache}
        bad = 0
        for _ in range(20):
            result = subprocess.run(
                [sys.executable, "-m", "requests_apivideo", "token", "--base-url", fake.url,
                 "--store", store],
                capture_output=True, env=env, timeout=60, check=False,
            )
            bad += result.returncode != 0
        return fake.token_calls, bad


def ratios(stores: dict[str, str], pairs: int) -> dict[str, tuple[float, float]]:
    """Return store -> (median ratio to a static header, p90), plus an A/A control row."""
    out = {}
    with FakeApiVideo(api_keys=[KEY]) as fake:
        url = fake.url + "/videos?pageSize=1"
        static = requests.Session()
        static.headers["Authorization"] = "Bearer " + ApiVideoAuth(
            KEY, base_url=fake.url).get_token()
        control = requests.Session()
        control.headers["Authorization"] = static.headers["Authorization"]
        sessions: dict[str, requests.Session] = {"A/A control (static)": control}
        for name, spec in stores.items():
            session = requests.Session()
            session.auth = ApiVideoAuth(KEY, base_url=fake.url, store=spec)
            session.get(url).raise_for_status()
            sessions[name] = session

        def timed(session: requests.Session) -> float:
            start = time.perf_counter()
            session.get(url).close()
            return time.perf_counter() - start

        for _ in range(50):  # warm up every connection
            for session in (static, *sessions.values()):
                timed(session)
        for name, session in sessions.items():
            samples = []
            for i in range(pairs):
                if i % 2:
                    ours, base = timed(session), timed(static)
                else:
                    base, ours = timed(static), timed(session)
                samples.append(ours / base)
            samples.sort()
            out[name] = (statistics.median(samples), samples[int(len(samples) * 0.9)])
    return out


def redis_commands(url: str, requests_count: int = 1000) -> int:
    """Return the Redis commands sent by ``requests_count`` requests with a fresh token."""
    import redis

    client = redis.Redis.from_url(url)

    def total() -> int:
        stats = client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

    with FakeApiVideo(api_keys=[KEY]) as fake, requests.Session() as session:
        session.auth = ApiVideoAuth(KEY + "-cmds", base_url=fake.url, store=url)
        fake.api_keys.add(KEY + "-cmds")
        session.get(fake.url + "/videos").raise_for_status()  # first use reads the store
        before = total()
        for _ in range(requests_count):
            session.get(fake.url + "/videos").close()
        return total() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [(1, 1), (1, 8), (4, 1), (4, 8)] if args.quick else [
        (1, 1), (1, 8), (4, 1), (4, 8), (16, 1), (16, 8)]
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp)).start()

        def fresh_redis() -> str:
            redis_server.stop()
            return redis_server.start().url

        stores: dict[str, Callable[[], str]] = {
            "memory": lambda: "memory:",
            "file": lambda: f"file:{tempfile.mkdtemp(dir=tmp)}",
            "redis": fresh_redis,
        }
        try:
            print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
            print("| store | processes x threads | first start | expiry | revocation "
                  "| short tokens (8 s) | failed | RT reused |")
            print("|---|---|---|---|---|---|---|---|")
            for store_name, make in stores.items():
                for processes, threads in sizes:
                    rows = events(make(), processes, threads)
                    calls = " | ".join(str(calls) for _, calls, _, _ in rows)
                    bad = sum(r[2] for r in rows)
                    reused = sum(r[3] for r in rows)
                    print(f"| {store_name} | {processes} x {threads} | {calls} | {bad} "
                          f"| {reused} |", flush=True)
            print("| ideal (one shared token) | any | 1 | 1 | 2 | ~16 | 0 | 0 |\n")
            print("| store | 20 cron-like CLI runs: token calls | failed runs |")
            print("|---|---|---|")
            for store_name, make in stores.items():
                cron_calls, cron_failed = cron(make())
                print(f"| {store_name} | {cron_calls} | {cron_failed} |", flush=True)
            print()
            pairs = 600 if args.quick else 3000
            table = ratios({name: make() for name, make in stores.items()}, pairs)
            print(f"| per request, fresh token ({pairs} alternated pairs) | median ratio "
                  "to a static header | p90 ratio |")
            print("|---|---|---|")
            for name, (median, p90) in table.items():
                print(f"| {name} | {median:.3f} | {p90:.3f} |")
            print(f"\nRedis commands per 1,000 requests with a fresh token: "
                  f"{redis_commands(stores['redis']())}")
        finally:
            redis_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
