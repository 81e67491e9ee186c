from __future__ import annotations

import logging
import secrets
import subprocess
import sys

import pytest

from requests_apivideo import demo
from requests_apivideo.cli import main
from requests_apivideo.testing import FakeApiVideo


def test_token_prints_an_access_token_for_the_key_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    with FakeApiVideo(api_keys=[key]) as fake:
        monkeypatch.setenv("APIVIDEO_API_KEY", key)
        assert main(["token", "--base-url", fake.url]) == 0
        assert fake.api_key_calls == 1
    out, err = capsys.readouterr()
    assert out.strip() and " " not in out.strip() and err == ""


def test_token_with_a_bad_key_says_so_on_stderr_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    with FakeApiVideo(api_keys=["the-right-key"]) as fake:
        monkeypatch.setenv("APIVIDEO_API_KEY", key)
        assert main(["token", "--base-url", fake.url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: POST ") and "400" in err and key not in err
    assert "Traceback" not in err


def test_token_without_a_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("APIVIDEO_API_KEY", raising=False)
    assert main(["token"]) == 1
    assert "APIVIDEO_API_KEY" in capsys.readouterr().err


def test_token_with_an_unreachable_host_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    with FakeApiVideo(api_keys=[key]) as fake:
        url = fake.url
    monkeypatch.setenv("APIVIDEO_API_KEY", key)
    assert main(["token", "--base-url", url, "--timeout", "1"]) == 1
    assert capsys.readouterr().err.startswith("error: POST ")


def test_sandbox_and_base_url_cannot_be_combined(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["token", "--sandbox", "--base-url", "http://127.0.0.1:1"])
    assert excinfo.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_demo_runs_offline_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "requests_apivideo", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "16 requests: 16 x 200" in result.stdout
    assert "1 token call" in result.stdout
    assert "sha256 matches" in result.stdout
    assert "4 x 200, 1 token call" in result.stdout  # the fleet scene
    assert "demo-api-key-not-a-secret" not in result.stdout + result.stderr
    assert "Time is simulated" in result.stdout
    assert "expected below: /auth/refresh answers 400" in result.stdout
    assert "Checked: the output above holds neither the key" in result.stdout


class _PrintEachRecord(logging.Handler):
    """A careless handler: prints ``text`` for every library log record."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def emit(self, record: logging.LogRecord) -> None:
        print(self.text)


@pytest.mark.parametrize("printed", [demo.DEMO_KEY, "x" * 10 + secrets.token_urlsafe(32)])
def test_the_demo_exits_1_if_its_output_holds_a_key_or_a_token(
    capsys: pytest.CaptureFixture[str], printed: str
) -> None:
    handler = _PrintEachRecord(printed)
    logging.getLogger("requests_apivideo").addHandler(handler)
    try:
        assert demo.run() == 1
    finally:
        logging.getLogger("requests_apivideo").removeHandler(handler)
    out = capsys.readouterr().out
    assert "Something went wrong" in out and "the output above holds" in out
    assert out.count(printed) == out.count("\n" + printed + "\n")  # only where it was put


def test_the_demo_check_finds_the_key_and_token_shaped_strings() -> None:
    assert demo.leaks("GET /videos: 200", ["a-key"]) == []
    assert demo.leaks("sent a-key", ["a-key"]) == ["secret #1"]
    assert demo.leaks("Bearer " + secrets.token_urlsafe(32), []) == ["a token-shaped string"]
