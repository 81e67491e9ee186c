"""Emulate api.video's authentication API on 127.0.0.1 for tests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import math
import re
import secrets
import socket
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from .token import Clock

__all__ = ["FakeApiVideo", "FakeClock", "Fault", "Recorded"]

_DOCS = "https://docs.api.video/reference/"
_SOURCE = re.compile(r"/videos/([^/]+)/source")
_NOT_FOUND = {
    "type": _DOCS + "resource-not-found",
    "title": "The requested resource was not found.",
    "status": 404,
}
_KEPT = 1 << 20  # request body bytes kept for parsing; the rest is only counted and hashed


class FakeClock:
    """Keep a time that moves only when told to, for ``ApiVideoAuth`` and ``FakeApiVideo``.

    .. code-block:: python

        clock = FakeClock()
        with FakeApiVideo(api_keys=[key], clock=clock) as fake:
            session.auth = ApiVideoAuth(key, base_url=fake.url, clock=clock)
            clock.advance(3600)  # an hour passes for both sides, at once

    Thread-safe. ``mono`` and ``wall`` read and set each clock alone: ``clock.wall += 7200``
    is a wall-clock jump (a machine that slept, an NTP step); the monotonic clock never goes
    back.

    :param monotonic: the first reading of :meth:`monotonic`.
    :param wall: the first reading of :meth:`time`, in seconds since the epoch.
    """

    def __init__(self, monotonic: float = 1000.0, *, wall: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._mono = float(monotonic)
        self._wall = float(wall)

    def __repr__(self) -> str:
        return f"FakeClock({self.mono!r}, wall={self.wall!r})"

    def __getstate__(self) -> tuple[float, float]:
        with self._lock:
            return self._mono, self._wall  # a pickled ApiVideoAuth carries its clock

    def __setstate__(self, state: tuple[float, float]) -> None:
        self._lock = threading.Lock()
        self._mono, self._wall = state

    def monotonic(self) -> float:
        """Return the monotonic reading."""
        with self._lock:
            return self._mono

    def time(self) -> float:
        """Return the wall-clock reading (seconds since the epoch)."""
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (>= 0), at once."""
        if not 0 <= seconds < math.inf:
            raise ValueError(f"a clock cannot move back or by {seconds!r} seconds")
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    @property
    def mono(self) -> float:
        """The monotonic reading; set it to move the monotonic clock alone (never back)."""
        with self._lock:
            return self._mono

    @mono.setter
    def mono(self, value: float) -> None:
        with self._lock:
            if not self._mono <= value < math.inf:
                raise ValueError(f"a monotonic clock cannot go back or to {value!r}")
            self._mono = float(value)

    @property
    def wall(self) -> float:
        """The wall-clock reading; set it to make the wall clock jump, either way."""
        with self._lock:
            return self._wall

    @wall.setter
    def wall(self, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"a wall clock cannot read {value!r}")
        with self._lock:
            self._wall = float(value)


@dataclass(frozen=True)
class Fault:
    """Describe one injected answer to a token call.

    ``status=0`` closes the connection without an answer. ``body=None`` sends an RFC 7807 problem
    for ``status``, except that ``status=200`` sends the normal answer (a slow token call).
    ``headers`` are added to the answer; ``delay`` is how long the server waits before answering.
    """

    status: int = 503
    body: bytes | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.status != 0 and not 200 <= self.status <= 599:
            raise ValueError(f"Fault status must be 0 or 200-599, not {self.status}")
        if not self.delay >= 0:
            raise ValueError(f"Fault delay must be >= 0, not {self.delay}")


@dataclass(frozen=True)
class Recorded:
    """Describe one request the emulator received (headers as sent, body only measured)."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    body_sha256: str


def _problem(
    status: int, kind: str | None = None, title: str | None = None, **extra: str
) -> dict[str, Any]:
    """Build an RFC 7807 problem body shaped like api.video's."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    if status == 429 and kind is None:
        kind, title = "too-many-requests", "Too many requests."
    return {
        "type": _DOCS + kind if kind else "about:blank",
        "title": title,
        **extra,
        "status": status,
    }


def _atom(seconds: float) -> str:
    """Return a time (seconds since the epoch) in UTC, in ATOM format, as api.video does."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=0).isoformat()


def _readers(clock: Clock | Callable[[], float]) -> tuple[Callable[[], float], Callable[[], float]]:
    """Return the monotonic and wall readings of a clock object, or of a monotonic function."""
    if hasattr(clock, "monotonic") and hasattr(clock, "time"):
        return clock.monotonic, clock.time
    return clock, time.time


def _random_id(prefix: str) -> str:
    """Return an api.video style identifier such as ``vi`` + 22 letters and digits."""
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(22))


class FakeApiVideo:
    """Serve api.video's auth API and a few protected endpoints on 127.0.0.1, on a random port.

    .. code-block:: python

        with FakeApiVideo(api_keys=["key"], token_ttl=2.0) as fake:
            requests.get(fake.url + "/videos", auth=ApiVideoAuth("key", base_url=fake.url))
            assert fake.api_key_calls == 1

    :param api_keys: keys that ``/auth/api-key`` and Basic auth accept (see ``api_keys``).
    :param token_ttl: lifetime of access tokens in seconds; may be fractional.
    :param invalid_key_status: status of a rejected key or refresh token (api.video documents 400).
    :param clock: where time comes from: an object with ``monotonic()`` and ``time()`` such as
        a :class:`FakeClock` (shared with ``ApiVideoAuth(clock=)``, to skip sleeps), or a
        function that returns monotonic seconds. ``monotonic()`` decides access token
        expiry, ``time()`` the videos' timestamps. Default: the :mod:`time` module.
    """

    unauthorized_cookie: str | None = None
    """If set, every 401 from a protected endpoint carries ``Set-Cookie: <this value>``."""

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-api-key",),
        *,
        token_ttl: float = 3600,
        invalid_key_status: int = 400,
        clock: Clock | Callable[[], float] | None = None,
    ) -> None:
        self._keys = tuple(api_keys)
        self.api_keys: set[str] = set(self._keys)
        self.token_ttl = token_ttl
        self.invalid_key_status = invalid_key_status
        self._clock, self._wall = _readers(time if clock is None else clock)
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}  # access token -> expiry on clock()
        self._refresh: set[str] = set()
        self._spent: set[str] = set()  # refresh tokens exchanged already
        self._upload_tokens: set[str] = set()
        self._faults: list[Fault] = []
        self._videos: dict[str, dict[str, Any]] = {}
        self._requests: list[Recorded] = []
        self.api_key_calls = self.refresh_calls = self.unauthorized = 0
        self.refresh_reuses = 0
        """Calls to ``/auth/refresh`` that presented a refresh token already spent (want 0)."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._stopping = threading.Event()  # set by stop(): cuts injected delays short

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:8123`` (no trailing slash), set by start()."""
        if self._url is None:
            raise RuntimeError("FakeApiVideo is not started")
        return self._url

    @property
    def api_key(self) -> str:
        """The first API key given to the constructor (the key the pytest fixture made up)."""
        if not self._keys:
            raise LookupError("FakeApiVideo was created without API keys")
        return self._keys[0]

    def start(self) -> FakeApiVideo:
        """Start serving in a daemon thread and return self."""
        if self._server is not None:
            raise RuntimeError("FakeApiVideo is already started")
        self._stopping = threading.Event()
        self._server = _Server(self)
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # Poll every 10 ms so that stop() (serve_forever's shutdown) returns quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="FakeApiVideo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every socket and join the threads; do nothing if not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join()

    def __enter__(self) -> FakeApiVideo:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def revoke_all(self) -> None:
        """Invalidate every access token and refresh token issued so far (keys still work)."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()

    def expire_all(self) -> None:
        """Invalidate every access token issued so far; refresh tokens stay valid."""
        with self._lock:
            self._access.clear()

    def fail_token_calls(self, *faults: Fault) -> None:
        """Answer the next ``len(faults)`` calls to ``/auth/*`` with these faults, in order."""
        with self._lock:
            self._faults.extend(faults)

    def issue_upload_token(self) -> str:
        """Return a new delegated upload token, valid for ``POST /upload?token=``."""
        token = _random_id("to")
        with self._lock:
            self._upload_tokens.add(token)
        return token

    @property
    def token_calls(self) -> int:
        """Calls received by ``/auth/api-key`` and ``/auth/refresh`` together."""
        with self._lock:
            return self.api_key_calls + self.refresh_calls

    @property
    def requests(self) -> list[Recorded]:
        """A copy of the list of every request received, in order."""
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Zero the call, 401 and reuse counters and forget the recorded requests."""
        with self._lock:
            self.api_key_calls = self.refresh_calls = self.unauthorized = 0
            self.refresh_reuses = 0
            self._requests.clear()

    # Helpers for the request handler.

    def _exchange(self, refresh: bool, credential: object) -> dict[str, Any] | None:
        if not isinstance(credential, str):
            return None
        with self._lock:
            if refresh:
                if credential not in self._refresh:
                    self.refresh_reuses += credential in self._spent
                    return None
                self._refresh.remove(credential)  # single use: api.video rotates them
                self._spent.add(credential)
            elif credential not in self.api_keys:
                return None
            access, refresh_token = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
            ttl = self.token_ttl
            self._access[access] = self._clock() + ttl
            self._refresh.add(refresh_token)
        expires_in = int(ttl) if float(ttl).is_integer() else ttl
        return {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "access_token": access,
            "refresh_token": refresh_token,
        }

    def _authorized(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        with self._lock:
            if scheme.lower() == "bearer":
                expiry = self._access.get(credential)
                if expiry is not None and self._clock() >= expiry:
                    del self._access[credential]
                    expiry = None
                return expiry is not None
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(credential, validate=True).decode()
                except ValueError:  # binascii.Error and UnicodeDecodeError
                    return False
                key, colon, _ = decoded.partition(":")
                return bool(colon) and key in self.api_keys
            return False

    def _new_video(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        vid, now = _random_id("vi"), _atom(self._wall())
        base = f"{self.url}/vod/{vid}"
        video: dict[str, Any] = {
            "videoId": vid,
            "title": payload["title"],
            "description": "",
            "createdAt": now,
            "publishedAt": now,
            "updatedAt": now,
            "discarded": False,
            "discardedAt": None,
            "deletesAt": None,
            "language": "en",
            "languageOrigin": "auto",
            "tags": [],
            "metadata": [],
            "public": True,
            "panoramic": False,
            "mp4Support": True,
            "source": {"uri": f"/videos/{vid}/source"},
            "assets": {
                "iframe": f'<iframe src="{base}" width="100%" height="100%" '
                'frameborder="0" scrolling="no" allowfullscreen=""></iframe>',
                "player": base,
                "hls": f"{base}/hls/manifest.m3u8",
                "thumbnail": f"{base}/thumbnail.jpg",
                "mp4": f"{base}/mp4/source.mp4",
            },
        }
        for name, kind in (
            ("description", str),
            ("public", bool),
            ("panoramic", bool),
            ("mp4Support", bool),
            ("tags", list),
            ("metadata", list),
        ):
            if isinstance(payload.get(name), kind):
                video[name] = payload[name]
        with self._lock:
            self._videos[vid] = video
            return dict(video)

    def _touch_video(self, vid: str) -> dict[str, Any] | None:
        with self._lock:
            video = self._videos.get(vid)
            if video is not None:
                video["updatedAt"] = _atom(self._wall())
                return dict(video)
            return None

    def _video_page(self, start: int, stop: int) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return len(self._videos), [dict(v) for v in list(self._videos.values())[start:stop]]


class _Server(http.server.ThreadingHTTPServer):
    """Serve one FakeApiVideo; track live connections so that stop() can close them."""

    daemon_threads = True
    request_queue_size = 128  # concurrency tests open many connections at once

    def __init__(self, fake: FakeApiVideo) -> None:
        self.fake = fake
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection in a daemon thread that close_connections() can join."""
        thread = threading.Thread(target=self._serve, args=(request, client_address), daemon=True)
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def close_connections(self) -> None:
        """Shut down kept-alive connections and join their threads."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for _, sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in connections:
            thread.join(timeout=10)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore connections that the client or stop() closed; report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answer one connection's requests like api.video does."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeApiVideo"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet."""

    def _dispatch(self) -> None:
        """Read the body, record the request and route it."""
        try:
            size, digest, body = self._read_body()
        except ValueError:
            self._json(400, _problem(400, title="Malformed request body."), {"Connection": "close"})
            return
        fake, url, method = self.server.fake, urlsplit(self.path), self.command
        path, query, source = url.path, parse_qs(url.query), _SOURCE.fullmatch(url.path)
        with fake._lock:
            fake._requests.append(Recorded(method, self.path, dict(self.headers), size, digest))
            upload_ok = query.get("token", [""])[0] in fake._upload_tokens
        if method == "POST" and path in ("/auth/api-key", "/auth/refresh"):
            self._token_call(path == "/auth/refresh", body)
        elif method == "POST" and path == "/upload" and not upload_ok:
            self._json(
                401,
                _problem(
                    401,
                    "authentication-invalid-upload-token",
                    "Unauthorized",
                    detail="The upload token is invalid or expired.",
                ),
            )
        elif method == "POST" and path == "/upload":
            self._video(fake._new_video({"title": "upload"}), size, digest)
        elif not (
            (method in ("GET", "POST") and path in ("/videos", "/redirect"))
            or (method == "POST" and source)
        ):
            self._json(404, _NOT_FOUND)
        elif not self._check_authorization():
            pass
        elif path == "/redirect":
            self._redirect(query)
        elif path == "/videos" and method == "GET":
            self._list(query)
        elif path == "/videos":
            self._create(body)
        elif (video := fake._touch_video(source.group(1) if source else "")) is None:
            self._json(404, {**_NOT_FOUND, "name": "videoId"})
        else:
            self._video(video, size, digest)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> tuple[int, str, bytes]:
        """Read the whole body (Content-Length or chunked); return its size, sha256, head."""
        digest, kept, size = hashlib.sha256(), bytearray(), 0

        def take(n: int) -> None:
            nonlocal size
            if n < 0:
                raise ValueError("negative length")
            while n > 0:
                chunk = self.rfile.read(min(n, 65536))
                if not chunk:
                    raise ValueError("truncated body")
                digest.update(chunk)
                size, n = size + len(chunk), n - len(chunk)
                kept.extend(chunk[: max(0, _KEPT - len(kept))])

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while (n := int(self.rfile.readline(1024).split(b";")[0].strip(), 16)) > 0:
                take(n)
                if self.rfile.readline(1024).strip():
                    raise ValueError("bad chunk")
            while self.rfile.readline(1024).strip():  # trailers
                pass
        else:
            take(int(self.headers.get("Content-Length") or 0))
        return size, digest.hexdigest(), bytes(kept)

    def _token_call(self, refresh: bool, body: bytes) -> None:
        """Answer ``/auth/api-key`` or ``/auth/refresh``, or the next injected fault."""
        fake = self.server.fake
        with fake._lock:
            if refresh:
                fake.refresh_calls += 1
            else:
                fake.api_key_calls += 1
            fault = fake._faults.pop(0) if fake._faults else None
        headers = dict(fault.headers) if fault else {}
        stopping = fake._stopping.wait(fault.delay) if fault and fault.delay else False
        if stopping or (fault is not None and fault.status == 0):
            self.close_connection = True  # drop: no answer at all
        elif fault is not None and fault.body is not None:
            data = fault.body.encode() if isinstance(fault.body, str) else fault.body
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
            self._send(fault.status, data, headers)
        elif fault is not None and fault.status != 200:
            self._json(fault.status, _problem(fault.status), headers)
        else:
            try:
                credential = json.loads(body).get("refreshToken" if refresh else "apiKey")
            except (ValueError, AttributeError):
                credential = None
            answer = fake._exchange(refresh, credential)
            if answer is None:
                status = fake.invalid_key_status
                self._json(
                    status,
                    _problem(
                        status,
                        "authentication-invalid-user-credentials",
                        "The user credentials were incorrect.",
                        name="",
                    ),
                    headers,
                )
            else:
                self._json(200, answer, headers)

    def _check_authorization(self) -> bool:
        """Accept a valid Bearer token or Basic API key; otherwise answer 401 and count it."""
        header = self.headers.get("Authorization", "")
        fake = self.server.fake
        if fake._authorized(header):
            return True
        if not header:
            kind, detail = "missing-authorization-header", 'The "Authorization" header is missing.'
        elif header.lower().startswith("basic "):
            kind, detail = "invalid-api-key", "The API key is invalid."
        else:
            kind, detail = "invalid-access-token", "The access token is invalid or expired."
        with fake._lock:
            fake.unauthorized += 1
            cookie = fake.unauthorized_cookie
        self._json(
            401,
            _problem(401, "authentication-" + kind, "Unauthorized", detail=detail),
            {"Set-Cookie": cookie} if cookie else {},
        )
        return False

    def _list(self, query: dict[str, list[str]]) -> None:
        """Answer ``GET /videos`` with one page of the videos held."""

        def number(name: str, default: int, high: int) -> int:
            try:
                return min(max(int(query[name][0]), 1), high)
            except (KeyError, ValueError):
                return default

        size, page = number("pageSize", 25, 100), number("currentPage", 1, 1_000_000)
        total, data = self.server.fake._video_page((page - 1) * size, page * size)
        pages = max(1, math.ceil(total / size))
        rels = [("self", page), ("first", 1)]
        rels += [("previous", page - 1)] if page > 1 else []
        rels += [("next", page + 1)] if page < pages else []
        base = f"{self.server.fake.url}/videos"
        links = [
            {"rel": rel, "uri": f"{base}?currentPage={n}&pageSize={size}"}
            for rel, n in [*rels, ("last", pages)]
        ]
        self._json(
            200,
            {
                "data": data,
                "pagination": {
                    "currentPage": page,
                    "pageSize": size,
                    "pagesTotal": pages,
                    "itemsTotal": total,
                    "currentPageItems": len(data),
                    "links": links,
                },
            },
        )

    def _create(self, body: bytes) -> None:
        """Answer ``POST /videos``: create a video from a JSON payload with a title."""
        try:
            payload = json.loads(body)
            title = payload.get("title")
        except (ValueError, AttributeError):
            title = None
        if isinstance(title, str) and title:
            self._json(201, self.server.fake._new_video(payload))
        else:
            self._json(
                400,
                _problem(400, "attribute-required", "This attribute is required.", name="title"),
            )

    def _redirect(self, query: dict[str, list[str]]) -> None:
        """Answer ``/redirect?to=<url>&status=<3xx>`` with that redirect."""
        to, status = query.get("to", [""])[0], query.get("status", ["302"])[0]
        if status not in ("301", "302", "303", "307", "308"):
            self._json(
                400, _problem(400, "invalid-attribute", "An attribute is invalid.", name="status")
            )
        elif not to or "\r" in to or "\n" in to:
            self._json(
                400, _problem(400, "invalid-attribute", "An attribute is invalid.", name="to")
            )
        else:
            self._send(int(status), b"", {"Location": to})

    def _video(self, video: dict[str, Any], size: int, digest: str) -> None:
        self._json(201, video, {"X-Received-Bytes": str(size), "X-Received-Sha256": digest})

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send ``payload`` as JSON; an error is an RFC 7807 ``application/problem+json``."""
        content_type = "application/problem+json" if status >= 400 else "application/json"
        self._send(
            status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})}
        )

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """Send a complete response; Content-Length is always computed here."""
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection and "connection" not in {name.lower() for name in headers}:
            # An HTTP/1.1 server that closes must say so, or the client pools a dead socket.
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
