"""What a renewal costs over TLS, with token calls that close their connection or keep it.

Three TLS servers on 127.0.0.1 (``http.server`` behind :mod:`ssl`, a self-signed certificate made
here with ``cryptography``), each a tiny api.video: ``/auth/api-key`` and ``/auth/refresh``
issue tokens (refresh tokens are single-use), ``GET /videos`` answers 401 to an unknown token.
One ``ApiVideoAuth`` per server, each with its own simulated clock and a token session whose
adapter sets the ``Connection`` header of every token call: ``close`` on one ("close"), none on
the other ("kept"); a third uses the library's own token session as it is ("default"). The API
requests themselves always keep their connection, as requests does.

Arms, run in a new random order each round:

- plain: ``GET /videos`` with a fresh token, once per server (the second is the A/A control);
- early refresh: the clock is moved into the early window (30 s left), so this request performs
  the proactive refresh itself before it is sent;
- 401 + replay: the server forgets the access token; the request gets a 401, the token is
  refreshed and the request sent again;
- revocation: the server forgets the access and refresh tokens; 401, a rejected refresh, an
  API-key call, the replay;
- early refresh, kept, idle-closed: the server first shuts the connections that token calls
  left open, as its idle timeout would between two hourly refreshes.

Reported: median latency of each arm, and its ratio to the plain request (paired-bootstrap 95%
CI). Loopback has no round trip time, so "kept" saves only the TCP and TLS handshakes' CPU
here; over a network a new connection also costs two round trips (TCP, then TLS 1.3).

Run from the repository root::

    python benchmarks/tls_renewal.py               # ~500 rounds, about 15 s
    python benchmarks/tls_renewal.py --rounds 2000 --key rsa
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import random
import secrets
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from requests_apivideo import ApiVideoAuth

TTL = 3600.0
EARLY = 30.0  # seconds left: in the early window of the default 60 s margin


def make_certificate(directory: str, kind: str) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return both paths."""
    key: Any = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class Api:
    """The tokens one tiny api.video server knows, and what it counted."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.connections = 0
        self.token_calls = 0
        #: Connections that carried a token call and are still open.
        self.token_connections: set[socket.socket] = set()

    def issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        self.access.add(access)
        self.refresh.add(refresh)
        return {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(TTL),
        }

    def expire(self) -> None:
        with self.lock:
            self.access.clear()

    def revoke(self) -> None:
        with self.lock:
            self.access.clear()
            self.refresh.clear()

    def drop_idle(self) -> None:
        """Close the connections token calls left open, as an idle timeout would."""
        with self.lock:
            connections, self.token_connections = self.token_connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # the request asked for it: say so, as nginx does
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        api = self.server.api
        with api.lock:
            api.token_calls += 1
            if not self.close_connection:
                api.token_connections.add(self.connection)
            if self.path == "/auth/api-key" and payload.get("apiKey") == api.api_key:
                token = api.issue()
            elif self.path == "/auth/refresh" and payload.get("refreshToken") in api.refresh:
                api.refresh.discard(payload["refreshToken"])
                token = api.issue()
            else:
                token = None
        if token is None:
            self.answer(400, {"status": 400, "title": "Invalid credentials."})
        else:
            self.answer(200, token)

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        api = self.server.api
        with api.lock:
            known = header.startswith("Bearer ") and header[7:] in api.access
        if known:
            self.answer(200, {"data": [], "pagination": {"currentPage": 1, "itemsTotal": 0}})
        else:
            self.answer(401, {"status": 401, "title": "Unauthorized request"})


class Server(http.server.ThreadingHTTPServer):
    """Serve one Api over TLS; the handshake runs in each connection's own thread."""

    daemon_threads = True

    def __init__(self, api: Api, context: ssl.SSLContext) -> None:
        self.api = api
        self.context = context
        super().__init__(("127.0.0.1", 0), Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        with self.api.lock:
            self.api.connections += 1
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class SimClock:
    """Simulated time for one ApiVideoAuth (its ``monotonic()`` and ``time()``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


class ConnectionHeader(HTTPAdapter):
    """Send every request with ``Connection: close``, or with no Connection header at all."""

    def __init__(self, close: bool) -> None:
        super().__init__()
        self.connection_close = close  # not self.close: that is the adapter's close()

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if self.connection_close:
            request.headers["Connection"] = "close"
        else:
            request.headers.pop("Connection", None)
        return super().send(request, *args, **kwargs)


class Side:
    """One server, one ApiVideoAuth whose token calls close (or keep) their connection."""

    def __init__(self, name: str, close: bool | None, context: ssl.SSLContext, ca: str) -> None:
        self.name = name
        key = f"tls-{name}-" + secrets.token_hex(8)
        self.api = Api(key)
        self.server = Server(self.api, context)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        base = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.url = base + "/videos"
        self.clock = SimClock()
        tokens: requests.Session | None = None  # None: the library's own token session
        if close is not None:
            tokens = requests.Session()
            tokens.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify
            tokens.verify = ca
            tokens.mount(base, ConnectionHeader(close))
        self.auth = ApiVideoAuth(key, base_url=base, clock=self.clock, session=tokens)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca
        self.session.auth = self.auth
        self.renewed_at = self.clock.now

    def get(self) -> int:
        return self.session.get(self.url).status_code

    def renewed(self) -> None:
        self.renewed_at = self.clock.now

    def early(self) -> int:
        self.clock.now = self.renewed_at + TTL - EARLY
        status = self.get()
        self.renewed()
        return status

    def early_after_idle(self) -> int:
        self.api.drop_idle()
        return self.early()

    def close(self) -> None:
        self.session.close()
        self.server.shutdown()
        self.server.server_close()


def ratio_ci(
    ours: Sequence[int], other: Sequence[int], picks: Sequence[Sequence[int]]
) -> tuple[float, float, float]:
    """Return median(ours) / median(other) and its 95% paired-bootstrap interval."""
    ratio = statistics.median(ours) / statistics.median(other)
    ratios = sorted(
        statistics.median([ours[i] for i in p]) / statistics.median([other[i] for i in p])
        for p in picks
    )
    n = len(ratios)
    return ratio, ratios[int(n * 0.025)], ratios[min(n - 1, int(n * 0.975))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="timed rounds (500)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds (20)")
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec", help="server key (ec)")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=9, help="order and bootstrap seed")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    directory = tempfile.mkdtemp()
    cert, key = make_certificate(directory, args.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    print(
        f"Python {sys.version.split()[0]}, requests {version('requests')}, "
        f"urllib3 {version('urllib3')}, {ssl.OPENSSL_VERSION}, {args.key} server key, "
        f"{os.cpu_count()} CPUs; servers in this process"
    )
    os.environ["REQUESTS_CA_BUNDLE"] = cert  # for the library's own token session
    close, kept = Side("close", True, context, cert), Side("kept", False, context, cert)
    default = Side("default", None, context, cert)

    def on_401(side: Side, forget: Callable[[], None]) -> Callable[[], int]:
        def arm() -> int:
            forget()
            status = side.get()
            side.renewed()
            return status

        return arm

    arms: dict[str, Callable[[], int]] = {"plain": kept.get, "plain (A/A twin)": close.get}
    for side in (close, kept, default):
        arms[f"early refresh, {side.name}"] = side.early
        arms[f"401 + replay, {side.name}"] = on_401(side, side.api.expire)
        arms[f"revocation, {side.name}"] = on_401(side, side.api.revoke)
    arms["early refresh, kept, idle-closed"] = kept.early_after_idle
    names = list(arms)
    rng = random.Random(args.seed)
    for name in names * args.warmup:
        if arms[name]() != 200:
            raise SystemExit(f"warm-up {name} failed")
    sides = (close, kept, default)
    counts = {side.name: (side.api.connections, side.api.token_calls) for side in sides}

    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for _ in range(args.rounds):
        rng.shuffle(names)
        for name in names:
            t0 = clock()
            status = arms[name]()
            samples[name].append(clock() - t0)
            if status != 200:
                raise SystemExit(f"{name} answered {status}")

    print(f"\n== {args.rounds} rounds of {len(names)} requests in random order ==")
    boot = random.Random(args.seed + 1)
    picks = [boot.choices(range(args.rounds), k=args.rounds) for _ in range(args.resamples)]
    plain = samples["plain"]
    base = statistics.median(plain)
    print(f"   {'':<34}{'median':>10}{'extra':>10}   ratio to plain (95% CI)")
    rows = []
    for name in arms:
        median = statistics.median(samples[name])
        ratio, low, high = ratio_ci(samples[name], plain, picks)
        rows.append((name, median, ratio, low, high))
        print(
            f"   {name:<34}{median / 1000:>8.0f}us{(median - base) / 1000:>+8.0f}us   "
            f"{ratio:.2f} [{low:.2f}, {high:.2f}]"
        )
    for side in sides:
        connections = side.api.connections - counts[side.name][0]
        calls = side.api.token_calls - counts[side.name][1]
        print(f"   {side.name}: {calls} token calls over {connections} new TCP+TLS connections")

    print("\n| TLS loopback, median of rounds | latency | ratio to a plain request (95% CI) |")
    print("| --- | ---: | ---: |")
    for name, median, ratio, low, high in rows:
        print(f"| {name} | {median / 1000:.0f} µs | {ratio:.2f} ({low:.2f}-{high:.2f}) |")
    for side in sides:
        side.close()
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
