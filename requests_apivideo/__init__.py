"""api.video authentication for requests: ``session.auth = ApiVideoAuth(api_key)``."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from .auth import ApiVideoAuth
from .exceptions import ApiVideoAuthError, InvalidApiKeyError
from .stores.file import FileTokenStore
from .stores.redis import RedisTokenStore  # imports redis-py only when a store is built
from .token import AccessToken

__all__ = (
    "AccessToken",
    "ApiVideoAuth",
    "ApiVideoAuthError",
    "FileTokenStore",
    "InvalidApiKeyError",
    "RedisTokenStore",
    "__version__",
)

logging.getLogger(__name__).addHandler(logging.NullHandler())
