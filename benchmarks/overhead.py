"""What ApiVideoAuth costs per request, against a static bearer header.

Three measurements, all against the local emulator (``FakeApiVideo``, in this process):

1. End to end: ``GET /videos`` through two ``requests.Session`` objects on the same server,
   one with ``ApiVideoAuth`` (token fetched before timing), one with a static auth that sets
   the same ``Authorization: Bearer <token>`` header. Requests alternate between the two and
   the order is swapped every pair; a raw ``urllib3.PoolManager`` request with the same header
   runs in the same rotation as the floor (what HTTP costs without requests at all).
   Reported: median and p90 latency of each, the ratio ApiVideoAuth / static of the medians
   with a paired-bootstrap 95% confidence interval, and the median paired difference.
2. Micro: ``auth(prepared_request)`` on fresh copies of one prepared request, for
   ``ApiVideoAuth``, ``HTTPBasicAuth("u", "p")`` and the static bearer, plus a bare
   ``PreparedRequest.copy()`` so the copy can be subtracted. ``timeit`` repeats are
   interleaved; the median of the repeats is reported in ns per call, with ratios.
3. In situ: the time spent inside the auth call (and ApiVideoAuth's response hook) during
   real requests, where caches are cold and the same code costs several times more.

Only ratios measured within one run mean anything; absolute times are for this machine, in
this run (the emulator shares the process and its GIL, the machine may be busy).

Run from the repository root::

    python benchmarks/overhead.py               # ~3000 pairs, well under a minute
    python benchmarks/overhead.py --pairs 10000 # tighter intervals
    python benchmarks/overhead.py --profile     # also cProfile the micro-benchmark
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import math
import pstats
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import requests
import urllib3
from requests.auth import AuthBase, HTTPBasicAuth

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo

API_KEY = "benchmark-overhead-key-0001"

OURS, STATIC, RAW = "ApiVideoAuth", "static bearer", "raw urllib3"


class StaticBearer(AuthBase):
    """The cheapest possible bearer auth: set one fixed header."""

    def __init__(self, token: str) -> None:
        self.header = "Bearer " + token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.header
        return r


@dataclass
class Summary:
    """Latency figures of one arm, in microseconds."""

    median: float
    p90: float
    mean: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of already sorted values, linearly interpolated."""
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarise(samples_ns: Sequence[int]) -> Summary:
    """Return median, p90 and mean of nanosecond samples, in microseconds."""
    values = sorted(s / 1000 for s in samples_ns)
    return Summary(statistics.median(values), percentile(values, 0.9), statistics.fmean(values))


def bootstrap_ratio(
    ours: Sequence[int], other: Sequence[int], resamples: int, rng: random.Random
) -> tuple[float, float]:
    """Return a 95% paired-bootstrap interval for median(ours) / median(other)."""
    n = len(ours)
    ratios = []
    for _ in range(resamples):
        picks = rng.choices(range(n), k=n)
        a = statistics.median([ours[i] for i in picks])
        b = statistics.median([other[i] for i in picks])
        ratios.append(a / b)
    ratios.sort()
    return percentile(ratios, 0.025), percentile(ratios, 0.975)


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Return the median and a distribution-free 95% interval (binomial order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor(n / 2 - 1.96 * math.sqrt(n) / 2))
    return statistics.median(ordered), ordered[k], ordered[min(n - 1, n - 1 - k)]


# -- end to end -----------------------------------------------------------------------------


def end_to_end(
    fake: FakeApiVideo, pairs: int, warmup: int, resamples: int
) -> tuple[dict[str, Summary], dict[str, float]]:
    """Time GET /videos through the three arms, rotated; print and return the figures."""
    url = fake.url + "/videos"
    auth = ApiVideoAuth(API_KEY, base_url=fake.url)
    token = auth.get_token()  # fetched before timing: the timed requests reuse it

    ours = requests.Session()
    ours.auth = auth
    static = requests.Session()
    static.auth = StaticBearer(token)
    pool = urllib3.PoolManager()
    raw_headers = {"Authorization": "Bearer " + token}

    def get_ours() -> int:
        return ours.get(url).status_code

    def get_static() -> int:
        return static.get(url).status_code

    def get_raw() -> int:
        return pool.request("GET", url, headers=raw_headers).status

    arms: dict[str, Callable[[], int]] = {OURS: get_ours, STATIC: get_static, RAW: get_raw}
    # Consecutive orders swap ApiVideoAuth and the static auth, and each arm takes each
    # position equally often.
    orders = [
        (OURS, STATIC, RAW),
        (STATIC, OURS, RAW),
        (OURS, RAW, STATIC),
        (STATIC, RAW, OURS),
        (RAW, OURS, STATIC),
        (RAW, STATIC, OURS),
    ]
    for _, name in itertools.product(range(warmup), arms):
        if arms[name]() != 200:
            raise SystemExit(f"warm-up request through {name} failed")
    fake.reset_counters()

    samples: dict[str, list[int]] = {name: [] for name in arms}
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for i in range(pairs):
        for name in orders[i % len(orders)]:
            call = arms[name]
            t0 = clock()
            status = call()
            t1 = clock()
            if status != 200:
                raise SystemExit(f"request through {name} answered {status}")
            samples[name].append(t1 - t0)
    elapsed = time.perf_counter() - started
    if fake.token_calls or fake.unauthorized:
        raise SystemExit(
            f"unexpected during timing: {fake.token_calls} token calls, {fake.unauthorized} 401s"
        )
    ours.close()
    static.close()
    pool.clear()

    summaries = {name: summarise(values) for name, values in samples.items()}
    rng = random.Random(20240501)
    low, high = bootstrap_ratio(samples[OURS], samples[STATIC], resamples, rng)
    ratio = summaries[OURS].median / summaries[STATIC].median
    paired = [a / b for a, b in zip(samples[OURS], samples[STATIC], strict=True)]
    pr, pr_low, pr_high = median_interval(paired)
    diffs = [(a - b) / 1000 for a, b in zip(samples[OURS], samples[STATIC], strict=True)]
    dm, d_low, d_high = median_interval(diffs)

    print(f"\n== End to end: GET /videos, {pairs} rotations of 3 requests ({elapsed:.1f} s) ==")
    print("   latency in microseconds: this machine, this run")
    print(f"   {'':<16}{'median':>10}{'p90':>10}{'mean':>10}")
    for name, s in summaries.items():
        print(f"   {name:<16}{s.median:>10.1f}{s.p90:>10.1f}{s.mean:>10.1f}")
    verdict = "no measurable difference" if low <= 1.0 <= high else "difference is measurable"
    print()
    print(
        f"   RATIO ApiVideoAuth / static (medians): {ratio:.3f}  "
        f"95% CI [{low:.3f}, {high:.3f}]  ({verdict})"
    )
    print(
        f"   RATIO median of paired ratios:         {pr:.3f}  95% CI [{pr_low:.3f}, {pr_high:.3f}]"
    )
    print(
        f"   RATIO static / raw urllib3 (medians):  "
        f"{summaries[STATIC].median / summaries[RAW].median:.3f}  (what requests itself adds)"
    )
    print(
        f"   median paired difference ours - static: {dm:+.1f} us  "
        f"95% CI [{d_low:+.1f}, {d_high:+.1f}]  (this machine, this run)"
    )
    figures = {"ratio": ratio, "low": low, "high": high, "diff": dm}
    return summaries, figures


# -- micro ------------------------------------------------------------------------------------


def fresh_copies(url: str) -> Callable[[], requests.PreparedRequest]:
    """Return a function that makes a fresh copy of one realistic prepared GET request.

    ``PreparedRequest.copy()`` shares the hooks dict with the original, so each copy gets
    its own, as a request prepared by a session has (else the response hooks that
    ApiVideoAuth registers would pile up on the original).
    """
    with requests.Session() as session:  # the session's default headers, as in real use
        prepared = session.prepare_request(requests.Request("GET", url))

    def fresh() -> requests.PreparedRequest:
        p = prepared.copy()
        p.hooks = {"response": []}
        return p

    return fresh


COPY = "copy() baseline"
BASIC = 'HTTPBasicAuth("u","p")'


def micro(url: str, repeats: int, target: float) -> dict[str, float]:
    """Time ``auth(fresh_copy)`` per auth, interleaved; print and return ns per call."""
    auth = ApiVideoAuth(API_KEY, base_url=url.rsplit("/", 1)[0])
    fresh = fresh_copies(url)
    callables: dict[str, Callable[[requests.PreparedRequest], object] | None] = {
        COPY: None,
        OURS: auth,
        BASIC: HTTPBasicAuth("u", "p"),
        STATIC: StaticBearer(auth.get_token()),
    }
    timers = {
        name: timeit.Timer("fresh()", globals={"fresh": fresh})
        if fn is None
        else timeit.Timer("fn(fresh())", globals={"fresh": fresh, "fn": fn})
        for name, fn in callables.items()
    }
    number, seconds = timers[OURS].autorange()
    number = max(1000, int(number * target / seconds))
    for timer in timers.values():  # warm up
        timer.timeit(number // 10)

    results: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(timers[name].timeit(number) / number * 1e9)

    med = {name: statistics.median(values) for name, values in results.items()}
    base, basic = med[COPY], med[BASIC]
    print(
        f"\n== Micro: auth(fresh copy of a prepared request), {repeats} interleaved repeats "
        f"x {number} calls =="
    )
    print("   ns per call: this machine, this run")
    print(f"   {'':<24}{'median':>9}{'min':>9}{'minus copy':>12}{'ratio':>8}{'net ratio':>11}")
    for name, values in results.items():
        net = med[name] - base
        cells = f"{med[name] / basic:>8.2f}{net / (basic - base):>11.2f}" if name != COPY else ""
        print(f"   {name:<24}{med[name]:>9.0f}{min(values):>9.0f}{net:>12.0f}{cells}")
    print("   ratio: to HTTPBasicAuth, copy included; net ratio: both minus the copy baseline")
    print(
        f"\n   RATIO ApiVideoAuth / HTTPBasicAuth: {(med[OURS] - base) / (basic - base):.2f} "
        f"net of the copy ({med[OURS] / basic:.2f} with it)"
    )
    return med


HOOK = "ApiVideoAuth hook"


def in_situ(fake: FakeApiVideo, pairs: int) -> dict[str, float]:
    """Time the auth call and ApiVideoAuth's response hook inside real requests.

    A hot timeit loop keeps everything in the CPU caches; between two real requests
    they are cold, so the same code costs several times more. Both auths get the same
    timing wrapper; the hook's wrapper passes the keyword arguments on once more, so
    its figure is an upper bound.
    """
    url = fake.url + "/videos"
    auth = ApiVideoAuth(API_KEY, base_url=fake.url)
    clock = time.perf_counter_ns
    spent: dict[str, list[int]] = {OURS: [], STATIC: [], HOOK: []}

    Auth = Callable[[requests.PreparedRequest], requests.PreparedRequest]

    def timed_auth(name: str, fn: Auth) -> Auth:
        sink = spent[name]

        def wrapper(r: requests.PreparedRequest) -> requests.PreparedRequest:
            t0 = clock()
            result = fn(r)
            sink.append(clock() - t0)
            if fn is auth:  # outside the timed part: time the hook it registered
                hooks = result.hooks["response"]
                hooks[-1] = timed_hook(hooks[-1])
            return result

        return wrapper

    def timed_hook(fn: Callable[..., requests.Response]) -> Callable[..., requests.Response]:
        sink = spent[HOOK]

        def wrapper(r: requests.Response, **kwargs: Any) -> requests.Response:
            t0 = clock()
            result = fn(r, **kwargs)
            sink.append(clock() - t0)
            return result

        return wrapper

    sessions = [requests.Session(), requests.Session()]
    sessions[0].auth = timed_auth(OURS, auth)
    sessions[1].auth = timed_auth(STATIC, StaticBearer(auth.get_token()))
    for i in range(pairs + 100):
        if i == 100:  # warmed up
            for values in spent.values():
                values.clear()
        for session in sessions if i % 2 else sessions[::-1]:
            if session.get(url).status_code != 200:
                raise SystemExit("in-situ request failed")
    for session in sessions:
        session.close()
    med = {name: float(statistics.median(values)) for name, values in spent.items()}
    print(f"\n== In situ: time inside the auth call during {pairs} real requests each ==")
    print("   ns per call, timer included: this machine, this run")
    for name, value in med.items():
        print(f"   {name:<24}{value:>9.0f}")
    print(
        f"\n   RATIO ApiVideoAuth / static bearer, in situ: {med[OURS] / med[STATIC]:.1f} "
        f"(+{(med[OURS] + med[HOOK] - med[STATIC]) / 1000:.1f} us per request with the hook)"
    )
    return med


def profile(url: str, calls: int) -> None:
    """Print a cProfile of ``auth(prepared.copy())`` by own time."""
    auth = ApiVideoAuth(API_KEY, base_url=url.rsplit("/", 1)[0])
    auth.get_token()
    fresh = fresh_copies(url)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        auth(fresh())
    profiler.disable()
    print(f"\n== cProfile of {calls} x auth(fresh copy), by own time ==")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(12)
    print("   ... the same, only ApiVideoAuth's own code and what it calls in requests:")
    stats.print_stats(r"requests_apivideo|register_hook|isinstance|monotonic|time\.time|min\}")


# -- main -------------------------------------------------------------------------------------


def markdown(
    e2e: dict[str, Summary],
    figures: dict[str, float],
    med: dict[str, float],
    situ: dict[str, float],
    pairs: int,
) -> str:
    """Return the results as a small Markdown table."""
    base, basic = med[COPY], med[BASIC]
    ours_situ = situ[OURS] + situ[HOOK]
    rows = [
        "| measured in one run (ratios are the result; times: this machine, this run) "
        "| ApiVideoAuth | reference | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| `GET /videos` on loopback, median of {pairs} alternated pairs, vs static bearer auth "
        f"| {e2e[OURS].median:.0f} us | {e2e[STATIC].median:.0f} us "
        f"| **{figures['ratio']:.3f}** (95% CI {figures['low']:.3f}-{figures['high']:.3f}) |",
        f"| same, p90 | {e2e[OURS].p90:.0f} us | {e2e[STATIC].p90:.0f} us "
        f"| {e2e[OURS].p90 / e2e[STATIC].p90:.3f} |",
        f"| floor: raw urllib3 with the same header, median "
        f"| {e2e[OURS].median:.0f} us | {e2e[RAW].median:.0f} us "
        f"| {e2e[OURS].median / e2e[RAW].median:.2f} |",
        f"| `auth(prepared)` in a hot loop, net of the copy, vs `HTTPBasicAuth` "
        f"| {med[OURS] - base:.0f} ns | {basic - base:.0f} ns "
        f"| **{(med[OURS] - base) / (basic - base):.2f}** |",
        f"| auth call + response hook inside real requests, vs static bearer auth "
        f"| {ours_situ:.0f} ns | {situ[STATIC]:.0f} ns | {ours_situ / situ[STATIC]:.1f} |",
    ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000, help="timed rotations (3000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per arm")
    parser.add_argument("--repeats", type=int, default=15, help="micro-benchmark repeats")
    parser.add_argument(
        "--repeat-time", type=float, default=0.05, help="seconds per micro repeat (0.05)"
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--profile", action="store_true", help="also cProfile auth(prepared)")
    args = parser.parse_args(argv)
    if args.pairs < 10:
        parser.error("--pairs must be at least 10")

    started = time.perf_counter()
    print(
        f"Python {sys.version.split()[0]}, requests {version('requests')}, "
        f"urllib3 {version('urllib3')}; emulator in this process"
    )
    with FakeApiVideo(api_keys=[API_KEY]) as fake:
        e2e, figures = end_to_end(fake, args.pairs, args.warmup, args.resamples)
        med = micro(fake.url + "/videos", args.repeats, args.repeat_time)
        situ = in_situ(fake, max(100, args.pairs // 3))
        if args.profile:
            profile(fake.url + "/videos", 200_000)
    print("\n" + markdown(e2e, figures, med, situ, args.pairs))
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
