"""Exceptions raised by requests_apivideo.

The hierarchy::

    requests.exceptions.RequestException
    └── ApiVideoAuthError        a token could not be obtained
        └── InvalidApiKeyError   /auth/api-key rejected the key (a 4xx)

Messages name the token endpoint and the HTTP status; they never contain the API key
or a token. ``.response`` is the token endpoint's response when there was one.
"""

from __future__ import annotations

from requests.exceptions import RequestException

__all__ = ("ApiVideoAuthError", "InvalidApiKeyError")


class ApiVideoAuthError(RequestException):
    """A token could not be obtained from api.video's token endpoint."""


class InvalidApiKeyError(ApiVideoAuthError):
    """The API key was rejected by ``/auth/api-key``.

    Check that the key is the one for this environment: a sandbox key does not work
    on production (``sandbox=True`` selects the sandbox).
    """
