"""The command line: print a token for curl, run the offline demonstration or the emulator."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .auth import API_KEY_ENV, STORE_ENV, ApiVideoAuth
from .exceptions import ApiVideoAuthError

__all__ = ("main",)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m requests_apivideo`` with ``argv``; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m requests_apivideo",
        description="api.video authentication for requests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = commands.add_parser(
        "token",
        help=f"print an access token for ${API_KEY_ENV}",
        description=f"Print an api.video access token for the key in ${API_KEY_ENV}, e.g. "
        'for curl -H "Authorization: Bearer $(python -m requests_apivideo token)".',
    )
    where = token.add_mutually_exclusive_group()
    where.add_argument("--sandbox", action="store_true", help="use sandbox.api.video")
    where.add_argument("--base-url", metavar="URL", help="use this API base URL")
    token.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per token call attempt"
    )
    token.add_argument(
        "--store",
        metavar="URL",
        help=f"where the token is kept between runs (default: ${STORE_ENV}, else 'file:', "
        "the per-user cache directory); 'memory:' keeps none",
    )
    commands.add_parser(
        "demo",
        help="show, offline, a plain requests script surviving expiry, revocation and threads",
    )
    emulator = commands.add_parser(
        "emulator",
        help="serve the local api.video emulator until interrupted",
        description="Serve FakeApiVideo on 127.0.0.1 until Ctrl-C. The first line of output is "
        "its URL and its API keys, e.g. 'http://127.0.0.1:8123 test-key'.",
    )
    emulator.add_argument("--port", type=int, default=0, help="default: a free port")
    emulator.add_argument(
        "--token-ttl", type=float, default=3600.0, metavar="SECONDS", help="token lifetime"
    )
    emulator.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        dest="api_keys",
        help="a key to accept (repeatable; default: one random key)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run

            return run()
        if args.command == "emulator":
            from .testing._command import serve

            return serve(port=args.port, token_ttl=args.token_ttl, api_keys=args.api_keys)
        # The file store needs flock and O_NOFOLLOW: not on Windows, where runs keep none.
        default = "memory:" if sys.platform == "win32" else "file:"
        store = args.store or os.environ.get(STORE_ENV, "").strip() or default
        auth = ApiVideoAuth(
            sandbox=args.sandbox, base_url=args.base_url, timeout=args.timeout, store=store
        )
        print(auth.get_token())
    except (ValueError, ApiVideoAuthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
