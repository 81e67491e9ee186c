"""HTTP/1.1 plumbing on 127.0.0.1: read a request, find its route, send its answer."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from ._answers import Answer, Request, json_answer, problem

__all__ = ["Route", "Server"]

_KEPT = 1 << 20  # request body bytes kept for parsing; the rest is only counted and hashed


@dataclass(frozen=True)
class Route:
    """Answer ``method`` on paths that fully match ``path`` with ``handle``.

    A ``GET`` route answers ``HEAD`` too, without the body.
    """

    method: str
    path: str  # a regular expression; its groups are passed to handle
    handle: Callable[..., Answer]  # (request, *groups) -> Answer

    def match(self, method: str, path: str) -> re.Match[str] | None:
        """Return the path's match if this route answers ``method`` on it."""
        if method != self.method and not (method == "HEAD" and self.method == "GET"):
            return None
        return re.fullmatch(self.path, path)


class Server(http.server.ThreadingHTTPServer):
    """Serve ``routes`` on 127.0.0.1; track live connections so that stop can close them.

    :param routes: tried in order; a request no route answers gets ``not_found``.
    :param record: called with every request received, before it is routed.
    :param port: 0 for a free port.
    """

    daemon_threads = True
    request_queue_size = 128  # concurrency tests open many connections at once

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        not_found: Answer,
        record: Callable[[Request], None],
        port: int = 0,
    ) -> None:
        self.routes = tuple(routes)
        self.not_found = not_found
        self.record = record
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, request: Request) -> Answer:
        """Return the first route's answer to ``request``, or ``not_found``."""
        for route in self.routes:
            if (found := route.match(request.method, request.path)) is not None:
                return route.handle(request, *found.groups())
        return self.not_found

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection in a daemon thread that close_connections() can join."""
        thread = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name=f"FakeApiVideo {self.url}",
            daemon=True,
        )
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
    """Read each request of one connection and send the answer its route gives."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeApiVideo"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet."""

    def _dispatch(self) -> None:
        """Read the body, record the request and answer it."""
        try:
            size, digest, body = self._read_body()
        except ValueError:
            malformed = json_answer(400, problem(400, title="Malformed request body."))
            self._send(Answer(400, malformed.body, {**malformed.headers, "Connection": "close"}))
            return
        url = urlsplit(self.path)
        request = Request(
            method=self.command,
            target=self.path,
            path=url.path,
            query=parse_qs(url.query),
            headers=CaseInsensitiveDict(self.headers.items()),  # names match in any case
            body=body,
            size=size,
            sha256=digest,
            base_url=self.server.url,
        )
        self.server.record(request)
        self._send(self.server.answer(request))

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

    def _send(self, answer: Answer) -> None:
        """Send a complete answer (Content-Length computed here), or drop the connection."""
        if answer.status == 0:
            self.close_connection = True
            return
        self.send_response(answer.status)
        headers: Mapping[str, str] = answer.headers
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection and "connection" not in {name.lower() for name in headers}:
            # An HTTP/1.1 server that closes must say so, or the client pools a dead socket.
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
