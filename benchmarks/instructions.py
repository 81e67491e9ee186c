"""What ApiVideoAuth costs per request in CPU instructions, against a static header.

Wall-clock ratios on a shared machine carry about ±1% of noise (see the A/A controls of
``overhead.py``); instruction counts do not. Each arm runs in a fresh interpreter under
``valgrind --tool=callgrind``, once with no timed calls and once with ``--calls`` of them,
against the emulator in another process; the difference over the count is the arm's
instructions per call. The same binary, inputs and environment give the same count whatever
else the machine does, so the ratios are exact for this interpreter, not estimates. They
ignore what instructions do not show (cache misses, waiting for the server).

Needs valgrind (``apt-get install valgrind``). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

KEY = "benchmark-instructions-key-0001"
#: The repository whose code is counted (not an installed copy that ``benchmarks/`` on
#: ``sys.path`` would otherwise find), with string hashing fixed so counts repeat.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]),
    "PYTHONHASHSEED": "0",
}

#: (arm, reference, what the row says)
ROWS = (
    ("session", "session static", "`ApiVideoAuth` on a session"),
    ("session new", "session static", "a new `ApiVideoAuth` per call, on a session"),
    ("module", "module static", "`requests.get(url, auth=ApiVideoAuth(key))` per call"),
    ("session static twin", "session static", "A/A control: a second static session"),
    ("construct", "construct basic", "construction, arguments seen before, vs `HTTPBasicAuth`"),
)


def arms(base_url: str) -> dict[str, Callable[[], object]]:
    """Return the arms, each one call; the token is fetched before (no token call is timed)."""
    import requests
    from overhead import StaticBearer  # this directory is first on sys.path
    from requests.auth import HTTPBasicAuth

    from requests_apivideo import ApiVideoAuth

    url = base_url + "/videos"
    shared = ApiVideoAuth(KEY, base_url=base_url)
    static = StaticBearer(shared.get_token())
    ours, plain, fixed, twin = (requests.Session() for _ in range(4))
    ours.auth, fixed.auth, twin.auth = shared, static, static
    return {
        "session": lambda: ours.get(url),
        "session static": lambda: fixed.get(url),
        "session static twin": lambda: twin.get(url),
        "session new": lambda: plain.get(url, auth=ApiVideoAuth(KEY, base_url=base_url)),
        "module": lambda: requests.get(url, auth=ApiVideoAuth(KEY, base_url=base_url)),
        "module static": lambda: requests.get(url, auth=static),
        "construct": lambda: ApiVideoAuth(KEY, base_url=base_url),
        "construct basic": lambda: HTTPBasicAuth("u", "p"),
    }


def child(arm: str, calls: int, base_url: str) -> None:
    """Run under valgrind: warm up, then make ``calls`` calls of ``arm``."""
    call = arms(base_url)[arm]
    for _ in range(20):  # caches, pools and lazy imports filled before the count matters
        call()
    for _ in range(calls):
        call()


def counted(arm: str, requests: int) -> int:
    """Return how many calls of ``arm`` to count: constructions are cheap, so 100 times more
    (else a garbage collection more or less in one of the two runs would be most of it)."""
    return requests * 100 if arm.startswith("construct") else requests


def instructions(arm: str, calls: int, base_url: str) -> int:
    """Return the instructions callgrind counted for a child making ``calls`` calls."""
    err = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            arm,
            str(calls),
            base_url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stderr
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind for {arm!r}:\n{err[-2000:]}")
    return int(found.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    """Count each arm's instructions per call and print the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="counted calls per arm (300)")
    parser.add_argument("--child", nargs=3, metavar=("ARM", "CALLS", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        arm, calls, base_url = args.child
        child(arm, int(calls), base_url)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")

    emulator = subprocess.Popen(
        [sys.executable, "-m", "requests_apivideo", "emulator", "--api-key", KEY],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert emulator.stdout is not None
        base_url = emulator.stdout.readline().split()[0]
        names = sorted({name for row in ROWS for name in row[:2]})
        jobs = [(name, n) for name in names for n in (0, counted(name, args.calls))]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            found = pool.map(lambda job: instructions(job[0], job[1], base_url), jobs)
            counts = dict(zip(jobs, found, strict=True))
    finally:
        emulator.terminate()
        emulator.wait()
    per_call = {}
    for name in names:
        n = counted(name, args.calls)
        per_call[name] = (counts[name, n] - counts[name, 0]) / n
    print(
        f"Python {sys.version.split()[0]}; instructions per call (callgrind), "
        f"{args.calls} calls per arm, emulator in another process; "
        f"requests_apivideo from {ROOT}\n"
    )
    print("| per call | this | reference | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for arm, ref, label in ROWS:
        ratio = per_call[arm] / per_call[ref]
        shown = f"{ratio:.0f}x" if ratio > 3 else f"**{ratio:.4f}**"
        print(f"| {label} | {per_call[arm]:,.0f} | {per_call[ref]:,.0f} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
