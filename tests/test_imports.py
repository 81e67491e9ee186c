"""What ``import requests_apivideo`` costs on top of ``import requests`` (#9): counts, not times."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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
    return list(json.loads(run_python(code)))


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter that imports this checkout; return its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_importing_the_package_imports_nothing_heavy_beyond_requests() -> None:
    extra = modules_imported_after_requests("import requests_apivideo")
    assert "requests_apivideo.auth" in extra  # the probe works
    foreign = [m for m in extra if m.split(".")[0] != "requests_apivideo" and m not in ALLOWED]
    assert foreign == []  # e.g. dataclasses pulled inspect, ast and dis in


def test_the_emulator_cli_stores_and_token_calls_are_not_imported_with_the_package() -> None:
    extra = modules_imported_after_requests("import requests_apivideo")
    assert not {
        "requests_apivideo.testing",
        "requests_apivideo.cli",
        "requests_apivideo.demo",
        # loaded by the first construction, and the first token call
        "requests_apivideo.stores",
        "requests_apivideo.manager",
        "requests_apivideo.endpoint",
    } & set(extra)


#: A thread constructs the first instance (so imports {module} lazily) while another forks.
#: The import is held open until the fork starts (a before-fork handler registered last
#: runs first): a child forked mid-import inherits the module's import lock, held by a
#: thread it does not have, and hangs on its own first construction.
FORK_DURING_FIRST_IMPORT = """
import importlib.machinery, os, signal, sys, tempfile, threading
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()
from requests_apivideo import ApiVideoAuth
assert {module!r} not in sys.modules
inside, forking = threading.Event(), threading.Event()
class Held:
    def find_spec(self, name, path=None, target=None):
        if name != {module!r}:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            inside.set()
            forking.wait()
            run(module)
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Held())
os.register_at_fork(before=forking.set)
thread = threading.Thread(target=ApiVideoAuth, args=("k" * 20,), kwargs={{"store": {store!r}}})
thread.start()
inside.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(10)  # a hang ends the child with SIGALRM
    ApiVideoAuth("k" * 20, store={store!r})
    os._exit(0)
thread.join()
print(os.waitpid(pid, 0)[1])
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.parametrize(
    ("module", "store"),
    [
        ("requests_apivideo.manager", "memory:"),
        ("requests_apivideo.stores.memory", "memory:"),
        ("requests_apivideo.stores.file", "file:"),
    ],
)
def test_a_child_forked_during_the_first_construction_can_construct(
    module: str, store: str
) -> None:
    code = FORK_DURING_FIRST_IMPORT.format(module=module, store=store)
    assert run_python(code).split() == ["0"]  # not 14 (SIGALRM: it hung)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.parametrize("module", ["redis", "requests_apivideo.stores._seal"])
def test_a_child_forked_during_the_first_redis_construction_can_construct(module: str) -> None:
    # The first Redis store imports the redis package and cryptography after its own module.
    pytest.importorskip("redis")
    pytest.importorskip("cryptography")
    code = FORK_DURING_FIRST_IMPORT.format(module=module, store="redis://127.0.0.1:1/0")
    assert run_python(code).split() == ["0"]  # not 14 (SIGALRM: it hung)


def test_the_package_imports_while_os_environ_is_a_plain_dict() -> None:
    # A test suite whose first import of the package happens inside mock.patch("os.environ").
    code = (
        "from unittest import mock\n"
        "with mock.patch('os.environ', {'APIVIDEO_API_KEY': 'k' * 20}):\n"
        "    from requests_apivideo import ApiVideoAuth\n"
        "    print(ApiVideoAuth().base_url)\n"
        "print(ApiVideoAuth('k' * 20).store)\n"
    )
    assert run_python(code).split()[0] == "https://ws.api.video"
