"""Memory and descriptors kept by one-off keys (issue 9): N keys, each fetching a token once.

Each key is used once, through the README's module-level form, against the local emulator
(in a process of its own, so that its records are not counted), and dropped; then the
garbage is collected and what is still allocated (tracemalloc) and the open file descriptors
are counted, against the same figures before the loop.

    python benchmarks/memory.py            # 2,000 keys
    python benchmarks/memory.py --keys 10000
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from requests_apivideo import ApiVideoAuth  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2000)
    args = parser.parse_args()
    keys = [f"memory-key-{n:06d}" for n in range(args.keys + 1)]
    args_ = [sys.executable, "-m", "requests_apivideo", "emulator"]
    for key in keys:
        args_ += ["--api-key", key]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(args_, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[0]
        requests.get(url + "/videos", auth=ApiVideoAuth(keys[0], base_url=url)).close()
        gc.collect()
        fds = len(os.listdir("/proc/self/fd"))
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for key in keys[1:]:
            requests.get(url + "/videos", auth=ApiVideoAuth(key, base_url=url)).close()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        opened = len(os.listdir("/proc/self/fd")) - fds
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    print(f"{args.keys} one-off keys: {kept / 1e6:.2f} MB kept ({kept / args.keys:.0f} B a key), "
          f"{opened} descriptors left open")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
