"""The official api.video Python client (PyPI ``api.video``) authenticates against FakeApiVideo."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from apivideo.api.videos_api import VideosApi
from apivideo.auth_api_client import AuthenticatedApiClient
from apivideo.exceptions import ApiException, UnauthorizedException
from apivideo.model.video_creation_payload import VideoCreationPayload

from requests_apivideo.testing import FakeApiVideo

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fake_apivideo: FakeApiVideo) -> Iterator[AuthenticatedApiClient]:
    """Yield an official client aimed at the emulator (not entered: no polling thread)."""
    client = AuthenticatedApiClient(fake_apivideo.api_key)
    client.configuration.host = fake_apivideo.url
    try:
        yield client
    finally:
        client.close()  # its thread pool, if one was started
        client.rest_client.pool_manager.clear()  # its kept-alive urllib3 connections


def bearer_tokens(fake: FakeApiVideo) -> list[str]:
    """Return the bearer tokens sent to protected endpoints, in order."""
    return [
        r.headers["Authorization"].split(" ", 1)[1]
        for r in fake.requests
        if not r.path.startswith("/auth/") and "Authorization" in r.headers
    ]


def test_official_client_authenticates_lists_videos_and_refreshes(
    fake_apivideo: FakeApiVideo, client: AuthenticatedApiClient
) -> None:
    client.connect()
    videos = VideosApi(client)
    created = videos.create(VideoCreationPayload(title="Maths video", tags=["maths"]))
    assert created.video_id.startswith("vi")

    listing = videos.list()
    assert [video.video_id for video in listing.data] == [created.video_id]
    assert listing.data[0].title == "Maths video"
    assert listing.pagination.items_total == 1
    assert [link.rel for link in listing.pagination.links] == ["self", "first", "last"]

    client.refresh_token()
    assert videos.list().pagination.current_page == 1

    assert (fake_apivideo.api_key_calls, fake_apivideo.refresh_calls) == (1, 1)
    assert fake_apivideo.unauthorized == 0
    first, second, third = bearer_tokens(fake_apivideo)
    assert first == second != third
    auth_calls = [r for r in fake_apivideo.requests if r.path.startswith("/auth/")]
    assert [r.headers["Content-Type"] for r in auth_calls] == ["application/json"] * 2
    assert auth_calls[0].headers["AV-Origin-Client"].startswith("python:")


def test_official_client_uploads_a_source_and_a_delegated_upload(
    fake_apivideo: FakeApiVideo, client: AuthenticatedApiClient
) -> None:
    client.connect()
    videos = VideosApi(client)
    video_id = videos.create(VideoCreationPayload(title="clip")).video_id
    data = b"\x00\x01not really an mp4" * 100
    file = io.BytesIO(data)
    file.name = "clip.mp4"
    uploaded = videos.upload(video_id, file)
    assert uploaded.video_id == video_id
    upload = fake_apivideo.requests[-1]
    assert upload.path == f"/videos/{video_id}/source"
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    assert upload.body_size > len(data)

    token = fake_apivideo.issue_upload_token()
    file.seek(0)
    delegated = videos.upload_with_upload_token(token, file)
    assert delegated.video_id.startswith("vi")
    delegated_upload = fake_apivideo.requests[-1]
    assert delegated_upload.path == f"/upload?token={token}"
    assert delegated_upload.headers["Content-Type"].startswith("multipart/form-data")
    assert delegated_upload.body_size > len(data)
    # The official client sends its bearer token even here; the fake does not need it.
    assert delegated_upload.headers["Authorization"].startswith("Bearer ")


def test_official_client_sees_401_once_its_token_is_expired(
    fake_apivideo: FakeApiVideo, client: AuthenticatedApiClient
) -> None:
    client.connect()
    fake_apivideo.expire_all()
    with pytest.raises(UnauthorizedException) as caught:
        VideosApi(client).list()
    assert caught.value.status == 401
    assert fake_apivideo.unauthorized == 1
    client.refresh_token()  # the refresh token outlives the access token
    assert VideosApi(client).list().data == []


def test_official_client_gets_the_documented_400_for_a_wrong_key(
    fake_apivideo: FakeApiVideo, client: AuthenticatedApiClient
) -> None:
    client.api_key = "not-the-key"
    with pytest.raises(ApiException) as caught:
        client.connect()
    assert caught.value.status == 400
    assert b"authentication-invalid-user-credentials" in caught.value.body
