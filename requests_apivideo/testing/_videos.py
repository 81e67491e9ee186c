"""The few protected endpoints the emulator serves: videos, a source upload, a redirect helper."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ._answers import NOT_FOUND, Answer, Request, json_answer, problem
from ._state import random_id

__all__ = ["Videos", "redirect"]


class Videos:
    """Hold videos and answer api.video's video endpoints; thread-safe.

    :param wall: the wall clock (seconds since the epoch) that dates the videos.
    """

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._videos: dict[str, dict[str, Any]] = {}

    def list(self, request: Request) -> Answer:
        """Answer ``GET /videos`` with one page of the videos held."""

        def number(name: str, default: int, high: int) -> int:
            try:
                return min(max(int(request.query[name][0]), 1), high)
            except (KeyError, ValueError):
                return default

        size, page = number("pageSize", 25, 100), number("currentPage", 1, 1_000_000)
        start = (page - 1) * size
        with self._lock:
            total = len(self._videos)
            data = [dict(v) for v in list(self._videos.values())[start : start + size]]
        pages = max(1, math.ceil(total / size))
        rels = [("self", page), ("first", 1)]
        rels += [("previous", page - 1)] if page > 1 else []
        rels += [("next", page + 1)] if page < pages else []
        base = f"{request.base_url}/videos"
        links = [
            {"rel": rel, "uri": f"{base}?currentPage={n}&pageSize={size}"}
            for rel, n in [*rels, ("last", pages)]
        ]
        pagination = {
            "currentPage": page,
            "pageSize": size,
            "pagesTotal": pages,
            "itemsTotal": total,
            "currentPageItems": len(data),
            "links": links,
        }
        return json_answer(200, {"data": data, "pagination": pagination})

    def create(self, request: Request) -> Answer:
        """Answer ``POST /videos``: create a video from a JSON payload with a title."""
        try:
            payload = json.loads(request.body)
            title = payload.get("title")
        except (ValueError, AttributeError):
            title = None
        if isinstance(title, str) and title:
            return json_answer(201, self._new(payload, request.base_url))
        required = problem(400, "attribute-required", "This attribute is required.", name="title")
        return json_answer(400, required)

    def source(self, request: Request, video_id: str) -> Answer:
        """Answer ``POST /videos/{id}/source`` with the video and what the body was."""
        with self._lock:
            video = self._videos.get(video_id)
            if video is not None:
                video["updatedAt"] = self._now()
                video = dict(video)
        if video is None:
            return json_answer(404, {**NOT_FOUND, "name": "videoId"})
        return _received(video, request)

    def upload(self, request: Request) -> Answer:
        """Answer a delegated ``POST /upload?token=`` (its token checked) with a new video."""
        return _received(self._new({"title": "upload"}, request.base_url), request)

    def _now(self) -> str:
        """Return the wall clock's time in UTC, in ATOM format, as api.video does."""
        return datetime.fromtimestamp(self._wall(), timezone.utc).replace(microsecond=0).isoformat()

    def _new(self, payload: Mapping[str, Any], base_url: str) -> dict[str, Any]:
        vid, now = random_id("vi"), self._now()
        base = f"{base_url}/vod/{vid}"
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


def redirect(request: Request) -> Answer:
    """Answer ``/redirect?to=<url>&status=<3xx>`` with that redirect."""
    to, status = request.query.get("to", [""])[0], request.query.get("status", ["302"])[0]
    invalid = "An attribute is invalid."
    if status not in ("301", "302", "303", "307", "308"):
        return json_answer(400, problem(400, "invalid-attribute", invalid, name="status"))
    if not to or "\r" in to or "\n" in to:
        return json_answer(400, problem(400, "invalid-attribute", invalid, name="to"))
    return Answer(int(status), b"", {"Location": to})


def _received(video: dict[str, Any], request: Request) -> Answer:
    """Answer 201 with the video and the size and sha256 of the body received."""
    measured = {"X-Received-Bytes": str(request.size), "X-Received-Sha256": request.sha256}
    return json_answer(201, video, measured)
