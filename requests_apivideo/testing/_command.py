"""``python -m requests_apivideo emulator``: serve FakeApiVideo until interrupted."""

from __future__ import annotations

import math
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._fake import FakeApiVideo

__all__ = ["serve"]


def serve(*, port: int = 0, token_ttl: float = 3600.0, api_keys: Sequence[str] = ()) -> int:
    """Serve the emulator until SIGINT (Ctrl-C) or SIGTERM; return the exit status.

    The first line on stdout is ``<url> <key> ...`` (flushed), for scripts to read.

    :param api_keys: the keys accepted; none: one random key.
    :raises ValueError: a port or lifetime out of range.
    """
    if not 0 < token_ttl < math.inf:
        raise ValueError(f"--token-ttl must be a number of seconds above 0, not {token_ttl!r}")
    keys = list(api_keys) or ["test-" + secrets.token_urlsafe(16)]
    if not all(key and not any(c.isspace() for c in key) for key in keys):
        raise ValueError("an API key must be a non-empty word, without spaces")
    fake = FakeApiVideo(api_keys=keys, token_ttl=token_ttl, port=port)
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stopping) for sig in handled}
    try:
        try:
            fake.start()
        except OSError as exc:
            print(f"error: cannot serve on 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        try:
            print(fake.url, *keys, flush=True)
            print(
                f"api.video emulator on {fake.url}, tokens live {token_ttl:g} s; Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(1.0):  # a timeout, so that signals get handled on Windows too
                pass
        finally:
            fake.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
