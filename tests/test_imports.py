"""What ``import requests_apivideo`` costs on top of ``import requests`` (#9): counts, not times."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests_apivideo

ROOT = os.path.dirname(os.path.dirname(requests_apivideo.__file__))

#: Modules outside this package that may be imported on top of what requests imports. Each
#: one costs import time on every start of every program that uses this package: make what
#: only errors, the emulator or the CLI need a lazy import instead.
ALLOWED: frozenset[str] = frozenset()


def modules_imported_after_requests(statement: str) -> list[str]:
    code = (
        "import json, sys\n"
        "import requests\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(result.stdout))


def test_importing_the_package_imports_nothing_heavy_beyond_requests() -> None:
    extra = modules_imported_after_requests("import requests_apivideo")
    assert "requests_apivideo.auth" in extra  # the probe works
    foreign = [m for m in extra if m.split(".")[0] != "requests_apivideo" and m not in ALLOWED]
    assert foreign == []  # e.g. dataclasses pulled inspect, ast and dis in


def test_the_emulator_and_the_cli_are_not_imported_with_the_package() -> None:
    extra = modules_imported_after_requests("import requests_apivideo")
    assert not {
        "requests_apivideo.testing",
        "requests_apivideo.cli",
        "requests_apivideo.demo",
    } & set(extra)
