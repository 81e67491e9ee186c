"""A fleet of real processes sharing one token store, for tests and benchmarks/fleet.py.

Each worker process builds its own ``ApiVideoAuth`` on the shared store and runs phases in
lock-step with the parent: the parent acts (expires tokens, revokes, kills…) while every
worker waits at a barrier, then every worker's threads send their requests together and
report. Every wait is bounded, so a hang fails instead of blocking the run.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from requests_apivideo import ApiVideoAuth

from .helpers import start_context

WAIT = 120.0  # spawned children import requests first; loaded CI machines are slow


@dataclass
class Phase:
    """What one phase asks of each worker: requests per thread, and the URL path."""

    requests: int = 1
    path: str = "/videos"
    until: float = 0.0  # if set: send requests until this many seconds have passed


@dataclass
class Report:
    """What one worker saw in one phase."""

    pid: int
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.errors)


def worker(
    url: str,
    key: str,
    store: str,
    threads: int,
    phases: list[Phase],
    barrier: Any,
    reports: Any,
    timeout: float,
) -> None:
    """Run ``phases`` in a child process; put one :class:`Report` per phase on ``reports``."""
    try:
        auth = ApiVideoAuth(key, base_url=url, store=store, timeout=timeout)
        with requests.Session() as session:
            session.auth = auth
            for phase in phases:
                barrier.wait(WAIT)
                reports.put(_run_phase(session, url, threads, phase))
    except BaseException as exc:  # report, never hang the parent
        reports.put(Report(os.getpid(), errors=[f"worker: {exc!r}"]))


def _run_phase(session: requests.Session, url: str, threads: int, phase: Phase) -> Report:
    report = Report(os.getpid())
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def send() -> None:
        import time

        start.wait(WAIT)
        deadline = time.monotonic() + phase.until
        n = 0
        while n < phase.requests or time.monotonic() < deadline:
            n += 1
            try:
                with session.get(url + phase.path, timeout=30) as response:
                    status = response.status_code
                with lock:
                    report.statuses[status] += 1
            except requests.RequestException as exc:
                with lock:
                    report.errors.append(type(exc).__name__ + ": " + str(exc)[:200])

    pool = [threading.Thread(target=send) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(WAIT)
    if any(thread.is_alive() for thread in pool):
        report.errors.append("a thread hung")
    return report


@contextmanager
def fleet(
    url: str,
    key: str,
    store: str,
    *,
    processes: int,
    threads: int,
    phases: list[Phase],
    method: str = "spawn",
    timeout: float = 10.0,
) -> Iterator[Callable[[], list[Report]]]:
    """Start the workers; yield ``step()``, which releases one phase and returns its reports."""
    context = start_context(method)
    barrier = context.Barrier(processes + 1)
    reports = context.Queue()
    workers = [
        context.Process(
            target=worker,
            args=(url, key, store, threads, phases, barrier, reports, timeout),
            daemon=True,
        )
        for _ in range(processes)
    ]
    for process in workers:
        process.start()

    def step() -> list[Report]:
        barrier.wait(WAIT)
        return [reports.get(timeout=WAIT) for _ in range(processes)]

    try:
        yield step
    finally:
        for process in workers:
            process.join(WAIT)
        hung = [p for p in workers if p.is_alive()]
        for process in hung:
            process.kill()
            process.join(10)
        barrier.abort()
        reports.close()
        reports.join_thread()
        if hung:
            raise AssertionError(f"{len(hung)} worker process(es) hung")


def failures(reports: list[Report]) -> list[str]:
    """Return what failed in ``reports``: non-200 statuses and errors, for an assertion."""
    out = []
    for report in reports:
        bad = {status: n for status, n in report.statuses.items() if status != 200}
        if bad or report.errors:
            out.append(f"pid {report.pid}: {bad} {report.errors[:3]}")
    return out
