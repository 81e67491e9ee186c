"""A real ``redis-server`` on a free loopback port, for the Redis store's tests.

``RedisServer(directory).start()`` runs one with no persistence in ``directory`` and waits
(bounded) until it answers; ``stop()`` kills it and ``start()`` again brings it back
EMPTY on the same port. Without ``redis-server`` the tests skip, saying how to install it,
except when ``$CI`` is set: there a missing server fails the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT = 20.0
INSTALL = "redis-server not found: apt-get install redis-server (or your platform's package)"


def require_redis_server() -> str:
    """Return the path of ``redis-server``; skip without it (fail if ``$CI`` is set)."""
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(INSTALL + " (CI is set: the Redis tests must run)", pytrace=False)
        pytest.skip(INSTALL)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(port: int, pid: int) -> bool:
    """Return whether the server on ``port`` is up and is process ``pid`` (not a stranger)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"INFO server\r\n")
            data = b""
            while b"process_id:" not in data or not data.endswith(b"\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            return f"process_id:{pid}\r\n".encode() in data
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; :attr:`url` stays the same across restarts."""

    def __init__(self, directory: Path, *extra: str, sentinel_of: int = 0) -> None:
        """Prepare a server in ``directory``; ``sentinel_of``: a sentinel for that port instead."""
        self.binary = require_redis_server()
        self.directory = directory
        self.extra: tuple[str, ...] = extra
        if sentinel_of:
            config = directory / "sentinel.conf"
            config.write_text(f"sentinel monitor mymaster 127.0.0.1 {sentinel_of} 1\n")
            self.extra = (*extra, "--sentinel")
            self.binary_args: tuple[str, ...] = (str(config),)
        else:
            self.binary_args = ()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.unix_socket = str(directory / "redis.sock")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (empty); a first start picks a free port, retrying if it is taken meanwhile."""
        assert self.process is None, "already running"
        for _ in range(5):
            port = self.port or free_port()
            if self._launch(port):
                self.port = port
                return self
            if self.port:
                break  # a restart must keep its port
        raise RuntimeError(f"redis-server did not start: {self._log()}")

    def _launch(self, port: int) -> bool:
        (self.directory / "dump.rdb").unlink(missing_ok=True)  # restart EMPTY
        self.process = subprocess.Popen(
            [
                self.binary, *self.binary_args, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                "--unixsocket", self.unix_socket, "--unixsocketperm", "700",
                "--logfile", str(self.directory / "redis.log"), *self.extra,
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # exited: the port was taken, most likely
                self.process = None
                return False
            if answers(port, self.process.pid):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self) -> None:
        """Kill the server (its data is gone: nothing is persisted)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def _log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text()[-500:] if path.exists() else "(no log)"
