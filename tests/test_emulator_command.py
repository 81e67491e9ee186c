"""``python -m requests_apivideo emulator`` as shell scripts and other processes use it."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.cli import main

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

#: Only a guard against hangs: a Python start-up and one request take far less.
HANG_GUARD = 60.0


class Emulator:
    """The command run in a subprocess; its first line read with a bound."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "requests_apivideo", "emulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            self.first_line = lines.get(timeout=HANG_GUARD)
        except queue.Empty:
            self.kill()
            raise

    def stop(self, sig: int) -> tuple[int, str]:
        """Send ``sig``; return the exit status and stderr."""
        self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=HANG_GUARD)
        return self.process.returncode, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=HANG_GUARD)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    started = Emulator("--token-ttl", "5", "--api-key", "key-one", "--api-key", "key-two")
    yield started
    started.kill()


def test_it_prints_its_url_and_keys_and_serves_until_ctrl_c(emulator: Emulator) -> None:
    url, *keys = emulator.first_line.split()
    assert url.startswith("http://127.0.0.1:")
    assert keys == ["key-one", "key-two"]
    token = requests.post(f"{url}/auth/api-key", json={"apiKey": "key-two"}, timeout=10).json()
    assert token["expires_in"] == 5
    session = requests.Session()
    session.auth = ApiVideoAuth("key-one", base_url=url)
    assert session.get(f"{url}/videos", timeout=10).status_code == 200
    session.close()
    status, err = emulator.stop(signal.SIGINT)
    assert status == 0
    assert "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/videos", timeout=10)


def test_sigterm_exits_zero_too(emulator: Emulator) -> None:
    url = emulator.first_line.split()[0]
    status, err = emulator.stop(signal.SIGTERM)
    assert status == 0
    assert err.startswith(f"api.video emulator on {url}, tokens live 5 s;")
    assert "Traceback" not in err


def test_another_process_gets_a_token_from_it_by_the_command_line(emulator: Emulator) -> None:
    url, key, _ = emulator.first_line.split()
    result = subprocess.run(
        [sys.executable, "-m", "requests_apivideo", "token", "--base-url", url],
        env={**os.environ, "APIVIDEO_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    header = {"Authorization": f"Bearer {result.stdout.strip()}"}
    assert requests.get(f"{url}/videos", headers=header, timeout=10).status_code == 200


def test_it_serves_on_the_port_asked_for_and_a_random_key_by_default() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = Emulator("--port", str(port))
    try:
        url, key = started.first_line.split()
        assert url == f"http://127.0.0.1:{port}"
        assert key.startswith("test-") and len(key) > 20
        assert requests.get(f"{url}/videos", auth=(key, ""), timeout=10).status_code == 200
    finally:
        assert started.stop(signal.SIGINT)[0] == 0


def test_a_port_in_use_is_an_error_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "requests_apivideo", "emulator", "--port", port],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot serve on 127.0.0.1:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--token-ttl", "0"], ["--port", "70000"], ["--api-key", ""]])
def test_impossible_options_are_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", *args]) == 1
    assert capsys.readouterr().err.startswith("error: ")
