"""FakeApiVideo: api.video's auth API and a few protected endpoints, served on 127.0.0.1."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._answers import NOT_FOUND, Answer, Request, json_answer, problem, token_call, unauthorized
from ._clock import readers
from ._knobs import TokenKnobs
from ._state import TokenState
from ._videos import Videos, redirect

if TYPE_CHECKING:
    from ..token import Clock
    from ._server import Route, Server

__all__ = ["FakeApiVideo", "Recorded"]

_BAD_UPLOAD_TOKEN = problem(
    401,
    "authentication-invalid-upload-token",
    "Unauthorized",
    detail="The upload token is invalid or expired.",
)


#: How many of the latest requests :attr:`FakeApiVideo.requests` keeps, so that the record
#: of an emulator left serving (``python -m requests_apivideo emulator``, a benchmark) stays
#: bounded. What else it keeps grows with token calls and uploads only (tokens, videos).
MAX_RECORDED = 10_000


@dataclass(frozen=True)
class Recorded:
    """Describe one request the emulator received (headers as sent, body only measured)."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    body_sha256: str


class FakeApiVideo(TokenKnobs):
    """Serve api.video's auth API and a few protected endpoints on 127.0.0.1, on a free port.

    .. code-block:: python

        with FakeApiVideo(api_keys=["key"], token_ttl=2.0) as fake:
            requests.get(fake.url + "/videos", auth=ApiVideoAuth("key", base_url=fake.url))
            assert fake.api_key_calls == 1

    Endpoints: ``POST /auth/api-key`` and ``POST /auth/refresh`` (refresh tokens single-use);
    protected by a Bearer token or Basic API key: ``GET /videos`` (pages), ``POST /videos``,
    ``POST /videos/{id}/source`` (answers the size and sha256 of the body it received) and
    ``GET``/``POST /redirect?to=&status=``; ``POST /upload?token=`` for delegated uploads.
    ``HEAD`` works wherever ``GET`` does.

    :param api_keys: keys that ``/auth/api-key`` and Basic auth accept (see ``api_keys``).
    :param token_ttl: lifetime of access tokens in seconds; may be fractional.
    :param invalid_key_status: status of a rejected key or refresh token (api.video documents 400).
    :param clock: where time comes from: an object with ``monotonic()`` and ``time()`` such as
        a :class:`FakeClock` (shared with ``ApiVideoAuth(clock=)``, to skip sleeps), or a
        function that returns monotonic seconds. ``monotonic()`` decides access token
        expiry, ``time()`` the videos' timestamps. Default: the :mod:`time` module.
    :param port: the port to listen on; 0 (the default) picks a free one.
    :raises OSError: from start(), if the port is taken.
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-api-key",),
        *,
        token_ttl: float = 3600,
        invalid_key_status: int = 400,
        clock: Clock | Callable[[], float] | None = None,
        port: int = 0,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")
        self.port = port
        monotonic, wall = readers(clock)
        self._state = TokenState(
            api_keys, token_ttl=token_ttl, invalid_key_status=invalid_key_status, clock=monotonic
        )
        self._videos = Videos(wall)
        self._lock = threading.Lock()
        self._requests: collections.deque[Recorded] = collections.deque(maxlen=MAX_RECORDED)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._stopping = threading.Event()  # set by stop(): cuts injected delays short

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:8123`` (no trailing slash), set by start()."""
        if self._url is None:
            raise RuntimeError("FakeApiVideo is not started")
        return self._url

    def start(self) -> FakeApiVideo:
        """Start serving in a daemon thread and return self."""
        from ._server import Server  # http.server only when serving: importing stays cheap

        if self._server is not None:
            raise RuntimeError("FakeApiVideo is already started")
        self._stopping = threading.Event()
        self._server = Server(
            self._routes(),
            not_found=json_answer(404, NOT_FOUND),
            record=self._record,
            port=self.port,
        )
        self._url = self._server.url
        # Poll every 10 ms so that stop() (serve_forever's shutdown) returns quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), name="FakeApiVideo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every socket and join the threads; do nothing if not started.

        A token call waiting out an injected delay is dropped unanswered.
        """
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

    def issue_upload_token(self) -> str:
        """Return a new delegated upload token, valid for ``POST /upload?token=``."""
        return self._state.issue_upload_token()

    @property
    def requests(self) -> list[Recorded]:
        """A copy of the list of the requests received, in order: the latest ``MAX_RECORDED``.

        ``MAX_RECORDED`` is 10,000, in ``requests_apivideo.testing._fake``.
        """
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Zero the call, 401 and reuse counters and forget the recorded requests."""
        with self._lock:
            super().reset_counters()
            self._requests.clear()

    # Serving.

    def _record(self, request: Request) -> None:
        recorded = Recorded(
            request.method, request.target, dict(request.headers), request.size, request.sha256
        )
        with self._lock:
            self._requests.append(recorded)

    def _routes(self) -> list[Route]:
        """Return the route table: token endpoints, the delegated upload, protected endpoints."""
        from ._server import Route

        state, videos = self._state, self._videos

        def tokens(refresh: bool) -> Callable[[Request], Answer]:
            return lambda r: token_call(state, refresh, r.body, self._stopping.wait)

        def upload(request: Request) -> Answer:
            if state.valid_upload_token(request.query.get("token", [""])[0]):
                return videos.upload(request)
            return json_answer(401, _BAD_UPLOAD_TOKEN)

        def protected(handle: Callable[..., Answer]) -> Callable[..., Answer]:
            def check(request: Request, *groups: str) -> Answer:
                refused = state.authorize(request.headers.get("Authorization", ""))
                if refused is not None:
                    return unauthorized(refused, self.unauthorized_cookie)
                return handle(request, *groups)

            return check

        return [
            Route("POST", "/auth/api-key", tokens(refresh=False)),
            Route("POST", "/auth/refresh", tokens(refresh=True)),
            Route("POST", "/upload", upload),
            Route("GET", "/videos", protected(videos.list)),
            Route("POST", "/videos", protected(videos.create)),
            Route("POST", "/videos/([^/]+)/source", protected(videos.source)),
            Route("GET", "/redirect", protected(redirect)),
            Route("POST", "/redirect", protected(redirect)),
        ]
