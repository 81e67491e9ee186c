"""How many token calls ApiVideoAuth makes, by scenario and number of threads.

Counts come from the local emulator (``FakeApiVideo``): ``/auth/api-key`` calls, ``/auth/refresh``
calls, 401s seen by the client (first answers that were 401, replayed or not) and requests that
failed (not 200 in the end, or raised). Time is simulated: one clock object is shared by the auth
and by the emulator (both ``clock=``, a ``requests_apivideo.testing.FakeClock``), and the script
moves it forward, so hours pass in an instant and nothing sleeps.

Scenarios (a fresh API key each, since instances with the same base URL and key share a token):

- first request: N threads released together by a barrier, no token yet;
- early window / mandatory window / past expiry: the token has 30 s, 5 s or -60 s left on the
  shared clock, then N concurrent requests;
- revocation (``revoke_all()``): expect one refresh (rejected) and one API-key call;
- server-side expiry (``expire_all()``): expect one refresh;
- per-call instances: ``requests.get(url, auth=ApiVideoAuth(key, base_url=...))`` 100 times,
  spread over N threads: one API-key call;
- short tokens (``token_ttl=20``): one request every 0.5 simulated s for 10 simulated minutes,
  about one refresh per 10 s, never a storm; then N threads doing the same together for 40 s;
- 1-hour script: one request per simulated minute for 5 simulated hours with the default 3600 s
  tokens, about one refresh per hour.

The official ``api.video`` client (``AuthenticatedApiClient``, connected once, not used as a
context manager, so without its background refresher) runs the scenarios that apply to it, held
to the same expectations relaxed to "no failed request, no more token calls or 401s": it has no
lock and no 401 handling.

Run from the repository root::

    python benchmarks/renewals.py               # all N, well under a minute
    python benchmarks/renewals.py --threads 1 8 --no-official

Exit status 1 if an ApiVideoAuth cell misses its expectation.
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, FakeClock

THREADS = (1, 2, 4, 8, 16, 32, 64)
TTL = 3600.0
PER_CALL_REQUESTS = 100
_RUN = os.urandom(4).hex()
_serial = itertools.count(1)


def fresh_key(scenario: str) -> str:
    """Return an API key no other cell of this process has used."""
    return f"bench-{scenario}-{_RUN}-{next(_serial):04d}"


@dataclass
class Outcomes:
    """What the client saw: 401 answers and failed requests, thread-safe to add to."""

    sent: int = 0
    unauthorized: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def response(self, r: requests.Response) -> None:
        """Count a response: its 401s (in history or final) and whether it failed."""
        seen = sum(h.status_code == 401 for h in r.history) + (r.status_code == 401)
        with self._lock:
            self.sent += 1
            self.unauthorized += seen
            self.failed += r.status_code != 200

    def failure(self, exc: BaseException, unauthorized: bool = False) -> None:
        """Count a request that raised."""
        with self._lock:
            self.sent += 1
            self.failed += 1
            self.unauthorized += unauthorized
            if len(self.errors) < 3:
                self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}")


Range = tuple[int, int]


@dataclass(frozen=True)
class Expect:
    """Expected api-key calls, refresh calls, 401s seen and failed requests (inclusive ranges)."""

    api_key: Range
    refresh: Range
    unauthorized: Range
    failed: Range = (0, 0)

    def text(self, n: int) -> str:
        """Return the expectation as ``a/r/u/f``, ranges as ``lo..hi`` (``N``: the threads)."""

        def one(r: Range) -> str:
            hi = "N" if r[1] == n > 1 else str(r[1])
            return str(r[0]) if r[0] == r[1] else f"{r[0]}..{hi}"

        return "/".join(map(one, (self.api_key, self.refresh, self.unauthorized, self.failed)))

    def relaxed(self) -> Expect:
        """Return: no failed request and no more token calls or 401s than this allows."""
        return Expect((0, self.api_key[1]), (0, self.refresh[1]), (0, self.unauthorized[1]), (0, 0))


@dataclass
class Cell:
    """One measured cell: counters from the emulator and the client's outcomes."""

    api_key: int
    refresh: int
    unauthorized: int
    failed: int
    server_unauthorized: int
    sent: int
    expect: Expect
    errors: list[str]

    @property
    def ok(self) -> bool:
        """Return whether every counter is within its expected range."""
        pairs = (
            (self.api_key, self.expect.api_key),
            (self.refresh, self.expect.refresh),
            (self.unauthorized, self.expect.unauthorized),
            (self.failed, self.expect.failed),
        )
        return all(lo <= value <= hi for value, (lo, hi) in pairs)

    def text(self) -> str:
        """Return ``a/r/u/f`` and a mark."""
        mark = "✓" if self.ok else "✗"
        odd = "" if self.server_unauthorized == self.unauthorized else "!"
        return f"{self.api_key}/{self.refresh}/{self.unauthorized}/{self.failed}{odd} {mark}"


def run_threads(n: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``n`` threads released together by a barrier; wait for all."""
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        barrier.wait()
        work(i)

    threads = [threading.Thread(target=body, args=(i,), name=f"bench-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(fake: FakeApiVideo, out: Outcomes, expect: Expect) -> Cell:
    """Return a cell from the emulator's counters and the client's outcomes."""
    return Cell(
        fake.api_key_calls,
        fake.refresh_calls,
        out.unauthorized,
        out.failed,
        fake.unauthorized,
        out.sent,
        expect,
        out.errors,
    )


# -- ApiVideoAuth -------------------------------------------------------------------------------


class Bench:
    """One emulator, one simulated clock, one fresh key and a session for one cell."""

    def __init__(self, scenario: str, n: int, token_ttl: float = TTL) -> None:
        self.clock = FakeClock()
        self.key = fresh_key(scenario)
        self.fake = FakeApiVideo(
            api_keys=[self.key], token_ttl=token_ttl, clock=self.clock
        ).start()
        self.url = self.fake.url + "/videos"
        self.auth = ApiVideoAuth(self.key, base_url=self.fake.url, clock=self.clock)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(10, n))
        self.session.mount("http://", adapter)
        self.session.auth = self.auth
        self.out = Outcomes()

    def get(self) -> None:
        """Send one GET /videos and record its outcome."""
        try:
            self.out.response(self.session.get(self.url, timeout=30))
        except requests.RequestException as exc:
            self.out.failure(exc)

    def prime(self) -> None:
        """Fetch a first token with one request, then zero every counter."""
        self.get()
        if self.out.failed:
            raise SystemExit(f"priming request failed: {self.out.errors}")
        self.fake.reset_counters()
        self.out = Outcomes()

    def close(self, expect: Expect) -> Cell:
        """Stop everything and return the cell."""
        self.session.close()
        cell = measure(self.fake, self.out, expect)
        self.fake.stop()
        return cell


def s_first(n: int) -> Cell:
    b = Bench("first", n)
    run_threads(n, lambda i: b.get())
    return b.close(Expect((1, 1), (0, 0), (0, 0)))


def shifted(left: float) -> Callable[[int], Cell]:
    """Return a scenario: token with ``left`` seconds to live, then N concurrent requests."""

    def scenario(n: int) -> Cell:
        b = Bench(f"left{left:+.0f}", n)
        b.prime()
        b.clock.advance(TTL - left)
        run_threads(n, lambda i: b.get())
        return b.close(Expect((0, 0), (1, 1), (0, 0)))

    return scenario


def s_revoked(n: int) -> Cell:
    b = Bench("revoke", n)
    b.prime()
    b.fake.revoke_all()
    run_threads(n, lambda i: b.get())
    return b.close(Expect((1, 1), (1, 1), (1, n)))


def s_expired_server(n: int) -> Cell:
    b = Bench("expire", n)
    b.prime()
    b.fake.expire_all()
    run_threads(n, lambda i: b.get())
    return b.close(Expect((0, 0), (1, 1), (1, n)))


def share(total: int, n: int, i: int) -> int:
    """Return how many of ``total`` requests thread ``i`` of ``n`` sends."""
    return total // n + (i < total % n)


def s_per_call(n: int) -> Cell:
    b = Bench("percall", n)

    def work(i: int) -> None:
        for _ in range(share(PER_CALL_REQUESTS, n, i)):
            try:
                auth = ApiVideoAuth(b.key, base_url=b.fake.url, clock=b.clock)
                b.out.response(requests.get(b.url, auth=auth, timeout=30))
            except requests.RequestException as exc:
                b.out.failure(exc)

    run_threads(n, work)
    return b.close(Expect((1, 1), (0, 0), (0, 0)))


SHORT_TTL, SHORT_STEP, SHORT_SPAN, SHORT_SPAN_THREADS = 20.0, 0.5, 600.0, 40.0


def short_refreshes(span: float) -> Range:
    """Return the refreshes expected for requests every SHORT_STEP during ``span`` seconds.

    A token is refreshed once half its lifetime is left: every SHORT_TTL / 2 seconds,
    counted from the first request; the last request is sent at ``span - SHORT_STEP``.
    """
    calls = int((span - SHORT_STEP) // (SHORT_TTL / 2))
    return (calls - 1, calls)


def s_short(n: int) -> Cell:
    b = Bench("short", n, token_ttl=SHORT_TTL)
    for _ in range(int(SHORT_SPAN / SHORT_STEP)):
        b.get()
        b.clock.advance(SHORT_STEP)
    return b.close(Expect((1, 1), short_refreshes(SHORT_SPAN), (0, 0)))


def s_short_threads(n: int) -> Cell:
    """N threads each send one request per SHORT_STEP, together, for SHORT_SPAN_THREADS."""
    b = Bench("short-threads", n, token_ttl=SHORT_TTL)
    ticks = int(SHORT_SPAN_THREADS / SHORT_STEP)
    go, done = threading.Barrier(n + 1), threading.Barrier(n + 1)

    def work(i: int) -> None:
        for _ in range(ticks):
            go.wait()
            b.get()
            done.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for _ in range(ticks):
        go.wait()
        done.wait()
        b.clock.advance(SHORT_STEP)
    for t in threads:
        t.join()
    return b.close(Expect((1, 1), short_refreshes(SHORT_SPAN_THREADS), (0, 0)))


HOURS = 5


def s_hourly(n: int) -> Cell:
    b = Bench("hourly", n)
    for _ in range(HOURS * 60):
        b.get()
        b.clock.advance(60)
    return b.close(Expect((1, 1), (HOURS - 1, HOURS), (0, 0)))


# -- the official client ------------------------------------------------------------------------


class Official:
    """One emulator and a connected official client (no context manager: no refresher thread)."""

    def __init__(self, scenario: str, n: int, token_ttl: float = TTL, connect: bool = True) -> None:
        from apivideo.api.videos_api import VideosApi
        from apivideo.auth_api_client import AuthenticatedApiClient
        from apivideo.configuration import Configuration

        self.clock = FakeClock()
        self.key = fresh_key("official-" + scenario)
        self.fake = FakeApiVideo(
            api_keys=[self.key], token_ttl=token_ttl, clock=self.clock
        ).start()
        self.out = Outcomes()
        self.clients: list[Any] = []  # the official client has no type hints
        self._client_class: Any = AuthenticatedApiClient
        self._configuration: Any = Configuration
        self.videos_api: Any = VideosApi
        self.pool_size = max(10, n)
        if connect:
            self.client = self.new_client()
            self.client.connect()
            self.videos = VideosApi(self.client)

    def new_client(self) -> Any:
        """Return a new official client aimed at the emulator (its pool sized for N threads)."""
        configuration = self._configuration()
        configuration.connection_pool_maxsize = self.pool_size
        client = self._client_class(self.key, configuration=configuration)
        client.configuration.host = self.fake.url
        self.clients.append(client)
        return client

    def connect_and_list(self) -> None:
        """Create a client, connect() it and list videos: the per-call pattern."""
        client = self.new_client()

        def calls() -> None:
            client.connect()
            self.videos_api(client).list()

        self.call(calls)

    def call(self, fn: Callable[[], object]) -> None:
        """Run one official-client call and record its outcome."""
        from apivideo.exceptions import ApiException

        try:
            fn()
        except ApiException as exc:
            self.out.failure(exc, unauthorized=getattr(exc, "status", None) == 401)
        else:
            with self.out._lock:
                self.out.sent += 1

    def list_videos(self) -> None:
        """List videos with the shared client."""
        self.call(self.videos.list)

    def close(self, expect: Expect) -> Cell:
        """Stop everything; return the cell, held to ``expect.relaxed()``."""
        cell = measure(self.fake, self.out, expect.relaxed())
        for client in self.clients:
            client.close()
            client.rest_client.pool_manager.clear()
        self.fake.stop()
        return cell

    def reset(self) -> None:
        """Zero the counters after connecting."""
        self.fake.reset_counters()
        self.out = Outcomes()


def o_first(n: int) -> Cell:
    o = Official("first", n, connect=False)

    run_threads(n, lambda i: o.connect_and_list())  # the documented pattern, per thread
    return o.close(Expect((1, 1), (0, 0), (0, 0)))


def o_shifted(left: float) -> Callable[[int], Cell]:
    def scenario(n: int) -> Cell:
        o = Official(f"left{left:+.0f}", n)
        o.reset()
        o.clock.advance(TTL - left)
        run_threads(n, lambda i: o.list_videos())
        return o.close(Expect((0, 0), (1, 1), (0, 0)))

    return scenario


def o_knob(knob: str) -> Callable[[int], Cell]:
    def scenario(n: int) -> Cell:
        o = Official(knob, n)
        o.reset()
        getattr(o.fake, knob)()
        run_threads(n, lambda i: o.list_videos())
        api_key = (1, 1) if knob == "revoke_all" else (0, 0)
        return o.close(Expect(api_key, (1, 1), (1, n)))

    return scenario


def o_per_call(n: int) -> Cell:
    o = Official("percall", n, connect=False)

    def work(i: int) -> None:
        for _ in range(share(PER_CALL_REQUESTS, n, i)):
            o.connect_and_list()

    run_threads(n, work)
    return o.close(Expect((1, 1), (0, 0), (0, 0)))


def o_short(n: int) -> Cell:
    o = Official("short", n, token_ttl=SHORT_TTL)  # its connect() is the API-key call
    for _ in range(int(SHORT_SPAN / SHORT_STEP)):
        o.list_videos()
        o.clock.advance(SHORT_STEP)
    return o.close(Expect((1, 1), short_refreshes(SHORT_SPAN), (0, 0)))


def o_hourly(n: int) -> Cell:
    o = Official("hourly", n)
    for _ in range(HOURS * 60):
        o.list_videos()
        o.clock.advance(60)
    return o.close(Expect((1, 1), (HOURS - 1, HOURS), (0, 0)))


# -- table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A table row: a name, a function of N, and the N it runs with (None: all)."""

    name: str
    run: Callable[[int], Cell]
    threads: tuple[int, ...] | None = None
    note: str = ""


OURS = (
    Scenario("first request", s_first),
    Scenario("early window (30 s left)", shifted(30)),
    Scenario("mandatory window (5 s left)", shifted(5)),
    Scenario("past expiry (60 s late)", shifted(-60)),
    Scenario("revocation (revoke_all)", s_revoked),
    Scenario("server-side expiry (expire_all)", s_expired_server),
    Scenario(f"per-call instances (x{PER_CALL_REQUESTS} over N)", s_per_call),
    Scenario("short tokens (ttl 20 s, 1 req/0.5 s, 10 min)", s_short, (1,)),
    Scenario(
        f"short tokens, N threads each 1 req/0.5 s, {SHORT_SPAN_THREADS:.0f} s", s_short_threads
    ),
    Scenario(f"1-hour script (1 req/min, {HOURS} h)", s_hourly, (1,)),
)
OFFICIAL = (
    Scenario("first request (connect() per thread)", o_first),
    Scenario("early window (30 s left)", o_shifted(30)),
    Scenario("mandatory window (5 s left)", o_shifted(5)),
    Scenario("past expiry (60 s late)", o_shifted(-60)),
    Scenario("revocation (revoke_all)", o_knob("revoke_all")),
    Scenario("server-side expiry (expire_all)", o_knob("expire_all")),
    Scenario(f"per-call instances (x{PER_CALL_REQUESTS} over N)", o_per_call),
    Scenario("short tokens (ttl 20 s, 1 req/0.5 s, 10 min)", o_short, (1,)),
    Scenario(f"1-hour script (1 req/min, {HOURS} h)", o_hourly, (1,)),
)


def run_table(
    title: str, scenarios: Sequence[Scenario], threads: Sequence[int]
) -> tuple[list[list[str]], list[Cell]]:
    """Run every scenario for every N; return the table rows and the cells."""
    rows: list[list[str]] = []
    cells: list[Cell] = []
    for sc in scenarios:
        started = time.perf_counter()
        wanted = [n for n in threads if sc.threads is None or n in sc.threads]
        results = {n: sc.run(n) for n in wanted}
        cells.extend(results.values())
        widest = max(results)
        row = [f"{title}: {sc.name}", results[widest].expect.text(widest)]
        row += [results[n].text() if n in results else "·" for n in threads]
        row.append(f"{time.perf_counter() - started:.1f}")
        rows.append(row)
        failing = [n for n, cell in results.items() if cell.errors]
        if failing:
            first = results[failing[0]].errors[0]
            print(f"   {title}, {sc.name}: errors for N in {failing}, e.g. {first}")
    return rows, cells


def markdown(rows: list[list[str]], threads: Sequence[int]) -> str:
    """Return the rows as a Markdown table."""
    header = ["scenario", "expected a/r/u/f", *(f"N={n}" for n in threads), "s"]
    table = [header, ["---"] * 2 + ["---:"] * (len(threads) + 1), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the table; return 1 if an ApiVideoAuth cell missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    parser.add_argument(
        "--no-official", action="store_true", help="skip the official api.video client"
    )
    args = parser.parse_args(argv)
    threads = sorted(set(args.threads))
    if threads[0] < 1:
        parser.error("--threads must be at least 1")
    started = time.perf_counter()
    print(f"requests {version('requests')}; emulator in this process; simulated time")

    rows, cells = run_table("ApiVideoAuth", OURS, threads)
    official_rows: list[list[str]] = []
    if not args.no_official:
        try:
            import apivideo  # noqa: F401
        except ImportError:
            print("(the official api.video client is not installed: skipped)")
        else:
            official_rows, _ = run_table("official", OFFICIAL, threads)

    print(
        "\nToken calls by scenario and number of threads N. Each cell: api-key calls / refresh "
        "calls / 401s seen / failed requests, ✓ within the expected range, ✗ not "
        "('!' if the emulator counted a different number of 401s). '·': not run for this N."
    )
    print(
        "Official client (api.video's AuthenticatedApiClient): connect()ed once and shared by "
        "the threads, except in 'first request' (each thread builds and connect()s its own; a "
        "shared one must be connected before the threads start) and 'per-call instances'. "
        "Not used as a context manager: its refresher thread polls the real clock, which the "
        "simulated time cannot drive. Held to ApiVideoAuth's expectations, relaxed to: no "
        "failed request and no more token calls or 401s than ApiVideoAuth may make."
    )
    print()
    print(markdown(rows + official_rows, threads))
    missed = sum(not c.ok for c in cells)
    total = time.perf_counter() - started
    print(
        f"\nApiVideoAuth: {len(cells) - missed}/{len(cells)} cells as expected "
        f"({total:.1f} s in all)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
