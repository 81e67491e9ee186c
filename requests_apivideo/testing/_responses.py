"""api.video's token endpoints on a ``responses`` mock, for tests that never open a socket."""

from __future__ import annotations

import functools
import json as json_module
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import requests

from ._answers import Answer, token_call, unauthorized
from ._clock import readers
from ._knobs import TokenKnobs
from ._state import TokenState

if TYPE_CHECKING:
    import re

    from responses import BaseResponse, CallbackResponse, RequestsMock

    from ..token import Clock

__all__ = ["MockApiVideo", "mock_apivideo"]

_DEFAULT_BASE_URL = "https://ws.api.video"

#: What a callback given to ``responses`` returns: (status, headers, body).
_Result = tuple[int, Mapping[str, str], bytes | str]


def mock_apivideo(
    rsps: RequestsMock | None = None,
    *,
    base_url: str = _DEFAULT_BASE_URL,
    api_keys: Iterable[str] = ("test-api-key",),
    token_ttl: float = 3600,
    invalid_key_status: int = 400,
    clock: Clock | Callable[[], float] | None = None,
) -> MockApiVideo:
    """Register api.video's ``/auth/api-key`` and ``/auth/refresh`` on a ``responses`` mock.

    .. code-block:: python

        @responses.activate
        def test_lists_videos():
            api = mock_apivideo(api_keys=["my-key"])
            api.protect(responses.GET, "https://ws.api.video/videos", json={"data": []})
            session = requests.Session()
            session.auth = ApiVideoAuth("my-key")
            assert session.get("https://ws.api.video/videos").ok
            api.revoke_all()  # the next request gets a 401, renews and is replayed
            assert session.get("https://ws.api.video/videos").ok

    The endpoints behave as :class:`FakeApiVideo`'s do: single-use refresh tokens, the same
    knobs (``revoke_all``, ``expire_all``, ``fail_token_calls``) and counters. They never fail
    a strict mock's ``assert_all_requests_are_fired`` for not being called.

    :param rsps: the mock to register on; ``None``: responses' default one (``responses.add``,
        ``@responses.activate``).
    :param base_url: the API's base URL, as given to ``ApiVideoAuth`` (``sandbox=True`` is
        ``https://sandbox.api.video``).
    :param clock: as for :class:`FakeApiVideo`; share a :class:`FakeClock` with the auth.
    :raises ImportError: ``responses`` is not installed.
    """
    if rsps is None:
        rsps = _responses().mock
    return MockApiVideo(
        rsps,
        base_url=base_url,
        api_keys=api_keys,
        token_ttl=token_ttl,
        invalid_key_status=invalid_key_status,
        clock=clock,
    )


class MockApiVideo(TokenKnobs):
    """api.video's token endpoints on a ``responses`` mock; made by :func:`mock_apivideo`.

    A fault's ``delay`` is waited for real (responses has no timeouts), ``Fault(0)`` raises
    ``requests.ConnectionError``, and responses retries status faults as the session's
    ``Retry`` says, without waiting for a ``Retry-After``.
    """

    def __init__(
        self,
        rsps: RequestsMock,
        *,
        base_url: str,
        api_keys: Iterable[str],
        token_ttl: float,
        invalid_key_status: int,
        clock: Clock | Callable[[], float] | None,
    ) -> None:
        monotonic, _ = readers(clock)
        self._state = TokenState(
            api_keys, token_ttl=token_ttl, invalid_key_status=invalid_key_status, clock=monotonic
        )
        self.rsps = rsps
        self.url = base_url.rstrip("/")
        """The base URL the endpoints are registered under (no trailing slash)."""
        endpoint = _endpoint_class()
        for refresh, name in ((False, "api-key"), (True, "refresh")):
            rsps.add(
                endpoint(
                    "POST",
                    f"{self.url}/auth/{name}",
                    callback=functools.partial(self._token_call, refresh),
                    content_type=None,
                )
            )

    def protect(
        self,
        method: str,
        url: str | re.Pattern[str],
        *,
        status: int = 200,
        json: Any = None,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        callback: Callable[[requests.PreparedRequest], _Result] | None = None,
    ) -> BaseResponse:
        """Register one of your endpoints; it answers 401 unless the request has a valid token.

        Valid: an access token these endpoints issued that is neither expired nor revoked
        (or Basic with an API key). Otherwise the answer is api.video's 401 problem, counted
        in ``unauthorized``. A valid request gets ``callback(request)``'s
        ``(status, headers, body)``, or else ``status`` with ``json`` (or ``body``) and
        ``headers``. Returns the registered response, as ``responses.add`` does.
        """
        if callback is None:
            fixed = dict(headers or {})
            data: bytes | str = body
            if json is not None:
                data = json_module.dumps(json)
                fixed.setdefault("Content-Type", "application/json")

            def answer(request: requests.PreparedRequest) -> _Result:
                return status, fixed, data

            callback = answer

        def guarded(request: requests.PreparedRequest) -> _Result:
            refused = self._state.authorize(str(request.headers.get("Authorization", "")))
            if refused is not None:
                return _result(unauthorized(refused, self.unauthorized_cookie))
            return callback(request)

        return self.rsps.add_callback(method, url, guarded, content_type=None)

    def _token_call(
        self, refresh: bool, request: requests.PreparedRequest
    ) -> _Result | requests.ConnectionError:
        body = request.body
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
        answer = token_call(self._state, refresh, data, _wait)
        if answer.status == 0:
            return requests.ConnectionError(
                "Connection aborted: the api.video mock dropped the call", request=request
            )
        return _result(answer)


def _wait(seconds: float) -> bool:
    """Wait out a fault's delay; never stopping, so always False."""
    threading.Event().wait(seconds)
    return False


def _result(answer: Answer) -> _Result:
    return answer.status, dict(answer.headers), answer.body


def _responses() -> Any:
    """Import ``responses``, which is the user's test dependency, not one of ours."""
    try:
        import responses
    except ImportError as exc:
        raise ImportError(
            "requests_apivideo.testing.mock_apivideo needs the 'responses' package: "
            "pip install responses"
        ) from exc
    return responses


@functools.cache
def _endpoint_class() -> type[CallbackResponse]:
    """Return a CallbackResponse that a strict mock does not require to be called."""

    class TokenEndpoint(_responses().CallbackResponse):  # type: ignore[misc]
        """A token endpoint: called only when a token is needed, so never "not fired"."""

        @property
        def call_count(self) -> int:
            return max(1, len(self.calls))

    return TokenEndpoint
