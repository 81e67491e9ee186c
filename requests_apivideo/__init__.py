"""api.video authentication for requests: ``session.auth = ApiVideoAuth(api_key)``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .auth import ApiVideoAuth
from .exceptions import ApiVideoAuthError, InvalidApiKeyError
from .token import AccessToken

if TYPE_CHECKING:
    from .stores.file import FileTokenStore
    from .stores.redis import RedisTokenStore

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


def __getattr__(name: str) -> Any:
    # The stores are imported on first use: most programs never need them, and the file
    # store's and Redis store's modules cost import time.
    if name == "FileTokenStore":
        from .stores.file import FileTokenStore

        return FileTokenStore
    if name == "RedisTokenStore":
        from .stores.redis import RedisTokenStore

        return RedisTokenStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
