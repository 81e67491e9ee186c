"""What ApiVideoAuth costs per request, to construct and to import, against the references.

Five measurements, all against the local emulator (``FakeApiVideo``), by default in another
process (``--server thread`` puts it in this one, where it shares the GIL: noisier):

1. Import: ``python -X importtime -c "import requests_apivideo"`` against ``import requests``,
   in fresh interpreters, alternated, bytecode cached for both (cumulative times); and, less
   noisy, within each ``requests_apivideo`` interpreter: the whole import over the whole minus
   the own time of the modules that ``import requests`` alone does not load.
2. End to end: ``GET /videos`` on the same server with the same token through every arm, in a
   new random order each round: ``ApiVideoAuth`` on a session; a new ``ApiVideoAuth`` per call,
   on a session and through module-level ``requests.get``; google-auth's ``AuthorizedSession``
   and requests-oauthlib's ``OAuth2Session`` with a valid token; the official ``api.video``
   client's ``VideosApi.list()``; raw ``urllib3`` (the floor); and the references: a static
   ``Authorization: Bearer`` auth on a session and through ``requests.get``, each twice, so
   every row has an A/A control (the reference's identical twin) showing the noise. Three
   more module-level arms take that form apart: one ``ApiVideoAuth`` shared by every call (no
   construction), a one-attribute static auth built per call (what building any object per
   request costs), and a static auth that also registers a no-op response hook (the floor of
   any auth that looks at each response, as one that replays a 401 must). Reported:
   median, p90 and mean latency of each arm, and each row's ratio of medians to its reference
   with a paired-bootstrap 95% confidence interval. Peers that are not installed are skipped
   (``pip install -e .[bench]``).
3. Construction: ``ApiVideoAuth(key, base_url=...)`` for a base URL and key seen before, and
   ``HTTPBasicAuth("u", "p")``, ``timeit`` repeats interleaved.
4. Micro: ``auth(prepared_request)`` on fresh copies of one prepared request, for
   ``ApiVideoAuth``, ``HTTPBasicAuth("u", "p")`` and the static bearer, plus a bare
   ``PreparedRequest.copy()`` so the copy can be subtracted. ``timeit`` repeats are
   interleaved; the median of the repeats is reported in ns per call, with ratios.
5. In situ: the time spent inside the auth call (and ApiVideoAuth's response hook) during
   real requests, where caches are cold and the same code costs several times more.

Only ratios measured within one run mean anything; absolute times are for this machine, in
this run (the machine may be busy). ``instructions.py`` counts instructions instead, which
carry no noise.

Run from the repository root::

    python benchmarks/overhead.py               # 2000 rounds, about two minutes
    python benchmarks/overhead.py --pairs 6000  # tighter intervals
    python benchmarks/overhead.py --profile     # also cProfile the micro-benchmark
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import math
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
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


def _keep(r: requests.Response, **kwargs: Any) -> requests.Response:
    return r


class HookedBearer(StaticBearer):
    """A static header and a response hook that does nothing: the floor of any auth that
    looks at each response, as one that replays a 401 must."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self.header
        r.register_hook("response", _keep)
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

# Arms: one way each of sending GET /videos to the same emulator with the same token.
OURS = "ApiVideoAuth on a session"
STATIC = "static bearer on a session"
STATIC_TWIN = "static bearer on a session (twin)"
PER_CALL = "new ApiVideoAuth per call, on a session"
MODULE = "requests.get(url, auth=ApiVideoAuth(...))"
MODULE_STATIC = "requests.get(url, auth=static)"
MODULE_TWIN = "requests.get(url, auth=static) (twin)"
MODULE_SHARED = "requests.get(url, auth=shared ApiVideoAuth)"
MODULE_FRESH = "requests.get(url, auth=StaticBearer(...))"
MODULE_HOOKED = "requests.get(url, auth=static + hook)"
GOOGLE = "google-auth AuthorizedSession"
OAUTHLIB = "requests-oauthlib OAuth2Session"
OFFICIAL = "api.video client VideosApi.list()"
RAW = "raw urllib3"

#: Table rows: (label, arm, its reference, the reference's A/A twin).
ROWS = (
    ("`ApiVideoAuth` on a session", OURS, STATIC, STATIC_TWIN),
    ("a new `ApiVideoAuth` per call, on a session", PER_CALL, STATIC, STATIC_TWIN),
    ("`requests.get(url, auth=ApiVideoAuth(key))` per call", MODULE, MODULE_STATIC, MODULE_TWIN),
    (
        "`requests.get(url, auth=auth)`, one shared `ApiVideoAuth`",
        MODULE_SHARED,
        MODULE_STATIC,
        MODULE_TWIN,
    ),
    (
        "`requests.get(url, auth=StaticBearer(token))`, built per call",
        MODULE_FRESH,
        MODULE_STATIC,
        MODULE_TWIN,
    ),
    (
        "`requests.get(url, auth=…)`, static header + no-op response hook",
        MODULE_HOOKED,
        MODULE_STATIC,
        MODULE_TWIN,
    ),
    ("google-auth `AuthorizedSession`, valid token", GOOGLE, STATIC, STATIC_TWIN),
    ("requests-oauthlib `OAuth2Session`, valid token", OAUTHLIB, STATIC, STATIC_TWIN),
    ("official `api.video` client, `VideosApi.list()`", OFFICIAL, STATIC, STATIC_TWIN),
    ("floor: raw urllib3 with the same header", RAW, STATIC, STATIC_TWIN),
)


def peer_arms(
    fake: Any, url: str, token: str
) -> tuple[dict[str, Callable[[], int]], list[str]]:
    """Return the arms of the peers that are installed, and the names of those that are not."""
    arms: dict[str, Callable[[], int]] = {}
    missing: list[str] = []
    try:
        import datetime

        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2.credentials import Credentials
    except ImportError:
        missing.append("google-auth")
    else:
        expiry = datetime.datetime.utcnow() + datetime.timedelta(hours=1)  # naive UTC, as it wants
        google = AuthorizedSession(Credentials(token=token, expiry=expiry))
        arms[GOOGLE] = lambda: google.get(url).status_code
    try:
        from requests_oauthlib import OAuth2Session
    except ImportError:
        missing.append("requests-oauthlib")
    else:
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator is plain http
        oauth = OAuth2Session(
            "client-id", token={"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )
        arms[OAUTHLIB] = lambda: oauth.get(url).status_code
    try:
        from apivideo.api.videos_api import VideosApi
        from apivideo.auth_api_client import AuthenticatedApiClient
    except ImportError:
        missing.append("api.video")
    else:
        client = AuthenticatedApiClient(API_KEY)  # not entered: no background refresher
        client.configuration.host = fake.url
        client.connect()  # its own token, valid for the whole run
        videos = VideosApi(client)

        def official() -> int:
            videos.list()  # raises on any status but 2xx
            return 200

        arms[OFFICIAL] = official
    return arms, missing


@contextlib.contextmanager
def emulator(where: str) -> Iterator[Any]:
    """Yield the emulator (with ``.url``): a thread of this process, or another process."""
    if where == "thread":
        with FakeApiVideo(api_keys=[API_KEY]) as fake:
            yield fake
        return
    command = [sys.executable, "-m", "requests_apivideo", "emulator", "--api-key", API_KEY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield argparse.Namespace(url=process.stdout.readline().split()[0])
    finally:
        process.terminate()
        process.wait()


def end_to_end(
    fake: Any, pairs: int, warmup: int, resamples: int, seed: int
) -> tuple[dict[str, Summary], list[dict[str, Any]]]:
    """Time GET /videos through every arm, in a new random order each round; print the rows."""
    url = fake.url + "/videos"
    auth = ApiVideoAuth(API_KEY, base_url=fake.url)
    token = auth.get_token()  # fetched before timing: the timed requests reuse it
    static_auth, hooked_auth = StaticBearer(token), HookedBearer(token)

    ours = requests.Session()
    ours.auth = auth
    static, twin, plain = requests.Session(), requests.Session(), requests.Session()
    static.auth = twin.auth = static_auth
    pool = urllib3.PoolManager()
    raw_headers = {"Authorization": "Bearer " + token}

    def get_raw() -> int:
        return pool.request("GET", url, headers=raw_headers).status

    arms: dict[str, Callable[[], int]] = {
        OURS: lambda: ours.get(url).status_code,
        STATIC: lambda: static.get(url).status_code,
        STATIC_TWIN: lambda: twin.get(url).status_code,
        PER_CALL: lambda: plain.get(url, auth=ApiVideoAuth(API_KEY, base_url=fake.url)).status_code,
        MODULE: lambda: (
            requests.get(url, auth=ApiVideoAuth(API_KEY, base_url=fake.url)).status_code
        ),
        MODULE_STATIC: lambda: requests.get(url, auth=static_auth).status_code,
        MODULE_TWIN: lambda: requests.get(url, auth=static_auth).status_code,
        MODULE_SHARED: lambda: requests.get(url, auth=auth).status_code,
        MODULE_FRESH: lambda: requests.get(url, auth=StaticBearer(token)).status_code,
        MODULE_HOOKED: lambda: requests.get(url, auth=hooked_auth).status_code,
        RAW: get_raw,
    }
    peers, missing = peer_arms(fake, url, token)
    arms.update(peers)
    for _, name in itertools.product(range(warmup), arms):
        if arms[name]() != 200:
            raise SystemExit(f"warm-up request through {name} failed")
    if isinstance(fake, FakeApiVideo):
        fake.reset_counters()

    names = list(arms)
    rng = random.Random(seed)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for _ in range(pairs):
        rng.shuffle(names)  # a new order each round: no arm owns a position
        for name in names:
            call = arms[name]
            t0 = clock()
            status = call()
            t1 = clock()
            if status != 200:
                raise SystemExit(f"request through {name} answered {status}")
            samples[name].append(t1 - t0)
    elapsed = time.perf_counter() - started
    if auth.get_token() != token or (
        isinstance(fake, FakeApiVideo) and (fake.token_calls or fake.unauthorized)
    ):
        raise SystemExit("unexpected during timing: a token call or a 401")
    for s in (ours, static, twin, plain):
        s.close()
    pool.clear()

    summaries = {name: summarise(values) for name, values in samples.items()}
    print(
        f"\n== End to end: GET /videos, {pairs} rounds of {len(arms)} requests in random order "
        f"({elapsed:.1f} s) =="
    )
    if missing:
        print(f"   not installed, skipped: {', '.join(missing)} (pip install -e .[bench])")
    print("   latency in microseconds: this machine, this run")
    print(f"   {'':<46}{'median':>9}{'p90':>9}{'mean':>9}")
    for name in arms:
        summary = summaries[name]
        print(f"   {name:<46}{summary.median:>9.1f}{summary.p90:>9.1f}{summary.mean:>9.1f}")

    rows: list[dict[str, Any]] = []
    boot = random.Random(seed + 1)
    picks = [boot.choices(range(pairs), k=pairs) for _ in range(resamples)]
    print("\n   RATIO of medians to the reference, paired-bootstrap 95% CI; A/A: its twin")
    for label, arm, ref, aa in ROWS:
        if arm not in samples:
            continue
        ratio, low, high = ratio_ci(samples[arm], samples[ref], picks)
        aa_ratio, aa_low, aa_high = ratio_ci(samples[aa], samples[ref], picks)
        rows.append(
            {
                "label": label,
                "arm": summaries[arm],
                "ref": summaries[ref],
                "ratio": (ratio, low, high),
                "aa": (aa_ratio, aa_low, aa_high),
                "ref_name": ref,
            }
        )
        print(
            f"   {arm:<46}{ratio:>7.3f} [{low:.3f}, {high:.3f}]   "
            f"A/A {aa_ratio:.3f} [{aa_low:.3f}, {aa_high:.3f}]   vs {ref}"
        )
    return summaries, rows


def ratio_ci(
    ours: Sequence[int], other: Sequence[int], picks: Sequence[Sequence[int]]
) -> tuple[float, float, float]:
    """Return median(ours) / median(other) and its 95% paired-bootstrap interval."""
    ratio = statistics.median(ours) / statistics.median(other)
    ratios = sorted(
        statistics.median([ours[i] for i in p]) / statistics.median([other[i] for i in p])
        for p in picks
    )
    return ratio, percentile(ratios, 0.025), percentile(ratios, 0.975)


# -- construction and import --------------------------------------------------------------------


def construction(base_url: str, repeats: int, target: float) -> dict[str, float]:
    """Time constructing auth objects (for a base URL and key seen before), interleaved."""
    ApiVideoAuth(API_KEY, base_url=base_url)  # seen before: its shared state exists
    ApiVideoAuth(API_KEY)
    makers: dict[str, Callable[[], object]] = {
        "ApiVideoAuth(key, base_url=emulator)": lambda: ApiVideoAuth(API_KEY, base_url=base_url),
        "ApiVideoAuth(key)": lambda: ApiVideoAuth(API_KEY),
        BASIC: lambda: HTTPBasicAuth("u", "p"),
    }
    timers = {name: timeit.Timer(fn) for name, fn in makers.items()}
    number, seconds = timers[BASIC].autorange()
    number = max(100, int(number * target / seconds))
    results: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            n = number if name == BASIC else max(100, number // 20)
            results[name].append(timers[name].timeit(n) / n * 1e6)
    med = {name: statistics.median(values) for name, values in results.items()}
    print(f"\n== Construction, {repeats} interleaved repeats ==")
    print("   us per instance: this machine, this run")
    for name, value in med.items():
        print(f"   {name:<40}{value:>9.3f}  x{value / med[BASIC]:.0f} {BASIC}")
    return med


def import_cost(runs: int) -> dict[str, float]:
    """Return the median cumulative ``-X importtime`` of requests and of requests_apivideo (us).

    Each import runs in a new interpreter, alternately; bytecode is cached (in a temporary
    prefix) for both before timing, and the subprocesses import the copy of
    requests_apivideo that this process imported.
    """
    import requests_apivideo

    root = os.path.dirname(os.path.dirname(requests_apivideo.__file__))
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])

        def importtime(module: str) -> list[tuple[str, int, int]]:
            """Return (name, self us, cumulative us) of every module ``import module`` loads."""
            err = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                env=env,
                cwd=cache,  # not the current directory: it would come first on sys.path
                capture_output=True,
                text=True,
                check=True,
            ).stderr
            rows = []
            for line in err.splitlines()[1:]:  # the first line is the header
                own, cum, name = (part.strip() for part in line.split("|"))
                rows.append((name, int(own.rsplit(" ", 1)[-1]), int(cum)))
            return rows

        modules = ("requests", "requests_apivideo")
        for module in modules:  # fill the bytecode cache
            importtime(module)
        loaded_by_requests = {name for name, _, _ in importtime("requests")}
        times: dict[str, list[int]] = {m: [] for m in modules}
        # Within one interpreter: the whole import over the whole minus the own time of the
        # modules that `import requests` alone does not load (ours, and anything we add).
        nested: list[float] = []
        for i in range(runs):
            for module in modules if i % 2 else modules[::-1]:
                rows = importtime(module)
                total = next(cum for name, _, cum in rows if name == module)
                times[module].append(total)
                if module == "requests_apivideo":
                    extra = sum(own for name, own, _ in rows if name not in loaded_by_requests)
                    nested.append(total / (total - extra))
    med = {m: float(statistics.median(v)) for m, v in times.items()}
    paired = [b / a for a, b in zip(times["requests"], times["requests_apivideo"], strict=True)]
    pr, low, high = median_interval(paired)
    nr, n_low, n_high = median_interval(nested)
    print(f"\n== Import: python -X importtime, {runs} fresh interpreters each, alternated ==")
    print(f"   import requests           median {med['requests'] / 1000:7.1f} ms (cumulative)")
    print(f"   import requests_apivideo  median {med['requests_apivideo'] / 1000:7.1f} ms")
    print(
        f"   RATIO requests_apivideo / requests: {med['requests_apivideo'] / med['requests']:.3f} "
        f"(median of paired ratios {pr:.3f}, 95% CI [{low:.3f}, {high:.3f}])"
    )
    print(
        f"   RATIO within one interpreter, all / all but what requests alone does not load: "
        f"{nr:.3f} (95% CI [{n_low:.3f}, {n_high:.3f}])"
    )
    return {
        **med,
        "ratio": med["requests_apivideo"] / med["requests"],
        "nested": nr,
        "nested_low": n_low,
        "nested_high": n_high,
    }


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
M_OURS, M_STATIC = "ApiVideoAuth", "static bearer"
BASIC = 'HTTPBasicAuth("u","p")'


def micro(url: str, repeats: int, target: float) -> dict[str, float]:
    """Time ``auth(fresh_copy)`` per auth, interleaved; print and return ns per call."""
    auth = ApiVideoAuth(API_KEY, base_url=url.rsplit("/", 1)[0])
    fresh = fresh_copies(url)
    callables: dict[str, Callable[[requests.PreparedRequest], object] | None] = {
        COPY: None,
        M_OURS: auth,
        BASIC: HTTPBasicAuth("u", "p"),
        M_STATIC: StaticBearer(auth.get_token()),
    }
    timers = {
        name: timeit.Timer("fresh()", globals={"fresh": fresh})
        if fn is None
        else timeit.Timer("fn(fresh())", globals={"fresh": fresh, "fn": fn})
        for name, fn in callables.items()
    }
    number, seconds = timers[M_OURS].autorange()
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
        f"\n   RATIO ApiVideoAuth / HTTPBasicAuth: {(med[M_OURS] - base) / (basic - base):.2f} "
        f"net of the copy ({med[M_OURS] / basic:.2f} with it)"
    )
    return med


HOOK = "ApiVideoAuth hook"


def in_situ(fake: Any, pairs: int) -> dict[str, float]:
    """Time the auth call and ApiVideoAuth's response hook inside real requests.

    A hot timeit loop keeps everything in the CPU caches; between two real requests
    they are cold, so the same code costs several times more. Both auths get the same
    timing wrapper; the hook's wrapper passes the keyword arguments on once more, so
    its figure is an upper bound.
    """
    url = fake.url + "/videos"
    auth = ApiVideoAuth(API_KEY, base_url=fake.url)
    clock = time.perf_counter_ns
    spent: dict[str, list[int]] = {M_OURS: [], M_STATIC: [], HOOK: []}

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
    sessions[0].auth = timed_auth(M_OURS, auth)
    sessions[1].auth = timed_auth(M_STATIC, StaticBearer(auth.get_token()))
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
        f"\n   RATIO ApiVideoAuth / static bearer, in situ: {med[M_OURS] / med[M_STATIC]:.1f} "
        f"(+{(med[M_OURS] + med[HOOK] - med[M_STATIC]) / 1000:.1f} us per request with the hook)"
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
    rows: list[dict[str, Any]],
    build: dict[str, float],
    imports: dict[str, float],
    med: dict[str, float],
    situ: dict[str, float],
    pairs: int,
) -> str:
    """Return the results as small Markdown tables."""
    lines = [
        f"| per request, `GET /videos` on loopback, median of {pairs} rounds "
        "| this | reference | ratio (95% CI) | A/A control |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio, low, high = row["ratio"]
        aa, aa_low, aa_high = row["aa"]
        lines.append(
            f"| {row['label']} | {row['arm'].median:.0f} µs | {row['ref'].median:.0f} µs "
            f"| **{ratio:.3f}** ({low:.3f}-{high:.3f}) | {aa:.3f} ({aa_low:.3f}-{aa_high:.3f}) |"
        )
    base, basic = med[COPY], med[BASIC]
    ours_situ = situ[M_OURS] + situ[HOOK]
    b_basic = build[BASIC]
    lines += [
        "",
        "| measured | ApiVideoAuth | reference | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| construction, base URL and key seen before, vs `HTTPBasicAuth` "
        f"| {build['ApiVideoAuth(key, base_url=emulator)']:.2f} µs | {b_basic:.2f} µs "
        f"| {build['ApiVideoAuth(key, base_url=emulator)'] / b_basic:.0f}x |",
        f"| `import requests_apivideo` vs `import requests` (`-X importtime`, cumulative) "
        f"| {imports['requests_apivideo'] / 1000:.1f} ms | {imports['requests'] / 1000:.1f} ms "
        f"| **{imports['ratio']:.3f}** (within one interpreter: {imports['nested']:.3f}, "
        f"95% CI {imports['nested_low']:.3f}-{imports['nested_high']:.3f}) |",
        f"| `auth(prepared)` in a hot loop, net of the copy, vs `HTTPBasicAuth` "
        f"| {med[M_OURS] - base:.0f} ns | {basic - base:.0f} ns "
        f"| **{(med[M_OURS] - base) / (basic - base):.2f}** |",
        f"| auth call + response hook inside real requests, vs static bearer auth "
        f"| {ours_situ:.0f} ns | {situ[M_STATIC]:.0f} ns | {ours_situ / situ[M_STATIC]:.1f} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurements and print the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="timed rounds (2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests per arm")
    parser.add_argument("--repeats", type=int, default=15, help="micro-benchmark repeats")
    parser.add_argument(
        "--repeat-time", type=float, default=0.05, help="seconds per micro repeat (0.05)"
    )
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples")
    parser.add_argument("--import-runs", type=int, default=30, help="interpreters per import")
    parser.add_argument("--seed", type=int, default=20240501, help="order and bootstrap seed")
    parser.add_argument("--profile", action="store_true", help="also cProfile auth(prepared)")
    parser.add_argument(
        "--server", choices=("process", "thread"), default="process", help="emulator (process)"
    )
    args = parser.parse_args(argv)
    if args.pairs < 10:
        parser.error("--pairs must be at least 10")

    import requests_apivideo

    started = time.perf_counter()
    print(
        f"Python {sys.version.split()[0]}, requests {version('requests')}, "
        f"urllib3 {version('urllib3')}, {os.cpu_count()} CPUs; emulator: {args.server}; "
        f"requests_apivideo from {os.path.dirname(requests_apivideo.__file__)}"
    )
    imports = import_cost(args.import_runs)
    with emulator(args.server) as fake:
        _, rows = end_to_end(fake, args.pairs, args.warmup, args.resamples, args.seed)
        build = construction(fake.url, args.repeats, args.repeat_time)
        med = micro(fake.url + "/videos", args.repeats, args.repeat_time)
        situ = in_situ(fake, max(100, args.pairs // 3))
        if args.profile:
            profile(fake.url + "/videos", 200_000)
    print("\n" + markdown(rows, build, imports, med, situ, args.pairs))
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
