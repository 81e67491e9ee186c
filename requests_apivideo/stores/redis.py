"""The Redis store: one token for every machine that shares a Redis (or Valkey) server.

Needs the ``requests-apivideo[redis]`` extra (redis-py and ``cryptography``); both are
imported when a store is built, never by ``import requests_apivideo``.

Each entry is two keys that share a hash tag (so a cluster keeps them on one node):
``<prefix>:{<name>}:rec``, a hash of ``blob`` (the tokens, sealed with AES-GCM under the
entry's secret, bound to its name and generation), ``gen``, ``spent`` and ``exp`` (the
expiry in ms on Redis's own clock), and ``<prefix>:{<name>}:lock``, a lease holding a
random owner token. Every change is one Lua script, so generation checks are atomic.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import logging
import os
import pickle
import random
import secrets
import time
from typing import TYPE_CHECKING, Any

from . import Stored, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..token import Clock

__all__ = ("RedisTokenStore",)

log = logging.getLogger(__name__)

#: What ``pip install`` needs for this store.
EXTRA = "requests-apivideo[redis]"
#: Socket and connect timeout (seconds) of a client built from a URL; no retries.
SOCKET_TIMEOUT = 0.5
#: Default lock lease (seconds): a few times a renewal's worst case.
DEFAULT_LOCK_LEASE = 30.0
#: How long a record outlives its token before Redis collects it (seconds).
GC_GRACE = 86400.0

# -> false (absent) or {blob, gen, spent, ms left}; '' for what is missing or of a wrong type.
_READ = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'hash' then return {'', '', '', ''} end
local r = redis.call('HMGET', KEYS[1], 'blob', 'gen', 'spent', 'exp')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = tonumber(r[4])
local left = ''
if exp then left = string.format('%d', exp - now) end
return {r[1] or '', r[2] or '', r[3] or '', left}
"""
# ARGV: gen, sealed blob, ms left, gc ms, fingerprint of the unreadable record read or ''.
# A missing, foreign or unreadable record counts as generation 0.
_COMMIT = """
if redis.replicate_commands then redis.replicate_commands() end
local kind = redis.call('TYPE', KEYS[1])['ok']
local cur = 0
if kind == 'hash' then
  local r = redis.call('HMGET', KEYS[1], 'blob', 'gen')
  local b, g = r[1] or '', r[2] or ''
  if ARGV[5] == '' or redis.sha1hex(b .. '|' .. g) ~= ARGV[5] then cur = tonumber(g) or 0 end
end
if tonumber(ARGV[1]) <= cur then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'blob', ARGV[2], 'gen', ARGV[1], 'spent', '0',
           'exp', string.format('%d', now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# KEYS: rec, lock; ARGV: gen, owner. Only the lock's holder marks, and only an unmarked gen.
_MARK_SPENT = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
local r = redis.call('HMGET', KEYS[1], 'gen', 'spent')
if r[1] ~= ARGV[1] or r[2] ~= '0' then return 0 end
redis.call('HSET', KEYS[1], 'spent', '1')
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Client settings a store built from a client object pickles (when the client has them).
_SETTINGS = (
    "host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
    "socket_keepalive", "client_name", "protocol", "health_check_interval", "retry",
    "encoding", "encoding_errors", "decode_responses",
)  # fmt: skip


def _import_redis() -> Any:
    """Return the ``redis`` module, or raise an ``ImportError`` that names the extra."""
    try:
        import redis

        from . import _seal  # noqa: F401  (cryptography)
    except ImportError as exc:
        raise ImportError(
            f"RedisTokenStore needs redis-py and cryptography: pip install '{EXTRA}'"
        ) from exc
    return redis


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode() if isinstance(value, (str, int)) else b""


class RedisTokenStore:
    """Keep tokens in Redis (or Valkey), shared by every process and machine that uses it.

    .. code-block:: python

        auth = ApiVideoAuth(key, store=RedisTokenStore("redis://cache:6379/0"))

    :param url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL (the client then
        has 0.5 s socket and connect timeouts and no retries, so a down or hung server
        costs a renewal about a second at most), or a redis-py client (``Redis``,
        ``RedisCluster``, ``Sentinel.master_for(...)``) used as is: give it short
        timeouts too.
    :param str prefix: the first part of every key.
    :param float lock_lease: seconds after which the lock of a holder that died is free.
    :raises ImportError: without the ``requests-apivideo[redis]`` extra.
    """

    def __init__(
        self,
        url_or_client: str | Any,
        *,
        prefix: str = "requests-apivideo",
        lock_lease: float = DEFAULT_LOCK_LEASE,
    ) -> None:
        redis = _import_redis()
        if not lock_lease > 0:
            raise ValueError("lock_lease must be positive")
        self.prefix = prefix
        self.lock_lease = float(lock_lease)
        self._url = url_or_client if isinstance(url_or_client, str) else None
        self._errors: tuple[type[BaseException], ...] = (
            redis.RedisError,
            redis.exceptions.RedisClusterException,
            redis.exceptions.ChildDeadlockedError,
            OSError,
        )
        self._talkative = (redis.ConnectionError, redis.TimeoutError, OSError)
        if self._url is not None:
            self.id = f"{_describe_url(redis, self._url)}?prefix={prefix}"
            self._bind(self._connect())
        else:
            execute = getattr(url_or_client, "execute_command", None)
            if execute is None or inspect.iscoroutinefunction(execute):
                raise TypeError("RedisTokenStore needs a URL or a (synchronous) redis-py client")
            self.id = f"{_describe_client(redis, url_or_client)}?prefix={prefix}"
            self._bind(url_or_client)

    def _connect(self) -> Any:
        redis = _import_redis()
        return redis.Redis.from_url(
            self._url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=None,
            health_check_interval=0,
        )

    def _bind(self, client: Any) -> None:
        self._pid = os.getpid()
        self._client = client
        self._read = client.register_script(_READ)
        self._commit = client.register_script(_COMMIT)
        self._mark_spent = client.register_script(_MARK_SPENT)
        self._release = client.register_script(_RELEASE)

    def entry(self, name: str, secret: bytes) -> _RedisEntry:
        """Return the entry called ``name``, sealed with ``secret``."""
        return _RedisEntry(self, name, secret)

    def call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one client call; any client or socket error becomes :class:`StoreUnavailable`.

        The message names the server and the error; a connection error's own text (which
        names only the address) is kept, a server's reply is not (it may echo arguments).
        """
        try:
            return command(*args, **kwargs)
        except self._errors as exc:
            reason = type(exc).__name__
            if isinstance(exc, self._talkative):
                reason = f"{reason}: {str(exc)[:200]}"
            raise StoreUnavailable(f"the Redis store {self.id} is unavailable ({reason})") from exc

    def after_fork(self) -> None:
        """In a forked child: never touch the parent's sockets (a new client, or fresh pools)."""
        if self._pid == os.getpid():
            return  # not forked, or done already for another entry
        if self._url is not None:
            self._bind(self._connect())
            return
        client = self._client
        pools = [getattr(client, "connection_pool", None)]
        if hasattr(client, "get_nodes"):  # a cluster: one client per node
            nodes = client.get_nodes()
            pools += [getattr(n.redis_connection, "connection_pool", None) for n in nodes]
        for pool in pools:
            if pool is not None and hasattr(pool, "reset"):
                pool.reset()
        self._pid = os.getpid()
        single = getattr(client, "connection", None)  # single_connection_client=True
        if single is not None:
            single.disconnect()  # closes the child's copy; the parent's socket lives on

    def __repr__(self) -> str:
        return f"RedisTokenStore({self.id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._url is not None:
            return (_rebuild, (self._url, self.prefix, self.lock_lease))
        return (_rebuild, (_client_settings(self._client), self.prefix, self.lock_lease))


class _RedisEntry:
    """One record and its lock in Redis (see the module docstring for the layout).

    :meth:`read` may run in several threads at once; from :meth:`lock` to :meth:`unlock`
    one thread at a time (the manager's renewal). ``_bad`` only ever lets a commit replace
    the very unreadable record a read saw, so a race on it can only refuse a commit.
    """

    def __init__(self, store: RedisTokenStore, name: str, secret: bytes) -> None:
        self._store = store
        self._name = name
        self._secret = secret
        tag = f"{store.prefix}:{{{name}}}"
        self._rec = f"{tag}:rec"
        self._lock = f"{tag}:lock"
        self._owner: str | None = None  # the random token of the lock we hold
        self._bad = ""  # fingerprint of the unreadable record last read, for commit

    def read(self, clock: Clock) -> Stored | None:
        """Return the record (its lifetime measured on Redis's clock), or ``None``."""
        store = self._store
        reply = store.call(store._read, [self._rec], [])
        self._bad = ""
        if reply is None:
            return None
        blob, gen, spent, left = (_bytes(v) for v in reply)
        record = self._open(blob, gen, spent, left)
        if record is None:
            self._bad = hashlib.sha1(blob + b"|" + gen, usedforsecurity=False).hexdigest()
        return record

    def _open(self, blob: bytes, gen: bytes, spent: bytes, left: bytes) -> Stored | None:
        from ._seal import open_sealed

        if not gen.isdigit() or gen != str(int(gen)).encode():
            return None
        try:
            number = int(gen)
            sealed = base64.b64decode(blob, validate=True)
            plain = open_sealed(self._secret, sealed, name=self._name, gen=number)
            if plain is None:
                return None
            data = json.loads(plain)
            access, refresh, expires_in = data["a"], data["r"], data["e"]
            remaining = int(left) / 1000
        except (ValueError, KeyError, TypeError):
            return None
        if not (isinstance(access, str) and isinstance(refresh, str)):
            return None
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            return None
        # Anything but an explicit "0" is spent: when in doubt, never present the token.
        return Stored(number, access, refresh, float(expires_in), remaining, spent != b"0")

    def lock(self, timeout: float) -> bool:
        """Take the lease (``SET NX PX``), polling with a short backoff for up to ``timeout``."""
        store = self._store
        owner = secrets.token_hex(16)
        lease_ms = max(1, int(store.lock_lease * 1000))
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.005
        while not store.call(store._client.set, self._lock, owner, nx=True, px=lease_ms):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, 0.05)
        self._owner = owner
        return True

    def unlock(self) -> None:
        """Release the lease if it is still ours (an expired one may be someone else's)."""
        owner, self._owner = self._owner, None
        if owner is None:
            return
        store = self._store
        try:
            store.call(store._release, [self._lock], [owner])
        except StoreUnavailable as exc:
            log.debug("could not release the lock: %s", exc)  # the lease frees it

    def mark_spent(self, gen: int) -> bool:
        """Mark ``gen`` spent, if we still hold the lock and it is the stored, unmarked one."""
        if self._owner is None:
            return False
        store = self._store
        return bool(store.call(store._mark_spent, [self._rec, self._lock], [gen, self._owner]))

    def commit(
        self,
        gen: int,
        access_token: str,
        refresh_token: str,
        expires_in: float,
        remaining: float,
        clock: Clock,
    ) -> bool:
        """Store ``gen`` sealed, if the stored generation is lower (unreadable counts as 0)."""
        from ._seal import seal

        data = json.dumps({"a": access_token, "r": refresh_token, "e": expires_in}).encode()
        blob = base64.b64encode(seal(self._secret, data, name=self._name, gen=gen))
        args = [gen, blob, int(remaining * 1000), int((max(0.0, remaining) + GC_GRACE) * 1000)]
        bad, self._bad = self._bad, ""
        store = self._store
        return bool(store.call(store._commit, [self._rec], [*args, bad]))

    def clear(self) -> None:
        """Delete the record."""
        store = self._store
        store.call(store._client.delete, self._rec)

    def after_fork(self) -> None:
        """Forget the parent's lock and connections."""
        self._owner = None
        self._bad = ""
        self._store.after_fork()


def _address(host: str, port: int) -> str:
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe(redis: Any, kwargs: dict[str, Any], connection_class: Any) -> str:
    """Name a server by its address and database, never by its credentials."""
    db = kwargs.get("db") or 0
    if kwargs.get("path") or kwargs.get("unix_socket_path"):
        return f"unix://{kwargs.get('path') or kwargs.get('unix_socket_path')}?db={db}"
    scheme = "rediss" if issubclass(connection_class, redis.SSLConnection) else "redis"
    address = _address(str(kwargs.get("host") or "localhost"), int(kwargs.get("port") or 6379))
    return f"{scheme}://{address}/{db}"


def _describe_url(redis: Any, url: str) -> str:
    options = redis.connection.parse_url(url)
    return _describe(redis, options, options.get("connection_class", redis.Connection))


def _describe_client(redis: Any, client: Any) -> str:
    if hasattr(client, "get_nodes") and hasattr(client, "nodes_manager"):  # RedisCluster
        nodes = sorted(client.nodes_manager.startup_nodes)
        return "redis+cluster://" + ",".join(n.lower() for n in nodes)
    pool = getattr(client, "connection_pool", None)
    if pool is not None and hasattr(pool, "service_name"):  # Sentinel.master_for(...)
        db = pool.connection_kwargs.get("db") or 0
        return f"redis+sentinel://{pool.service_name}/{db}"
    if pool is not None and hasattr(pool, "connection_kwargs"):
        return _describe(redis, pool.connection_kwargs, pool.connection_class)
    return f"redis:{type(client).__name__}@{id(client):x}"


def _client_settings(client: Any) -> dict[str, Any]:
    """Return what rebuilds ``client`` in another process, or raise ``TypeError``."""
    redis = _import_redis()
    pool = getattr(client, "connection_pool", None)
    cls = getattr(pool, "connection_class", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    if (
        cls not in (redis.Connection, redis.SSLConnection, redis.UnixDomainSocketConnection)
        or kwargs.get("credential_provider") is not None
        or kwargs.get("redis_connect_func") is not None
    ):
        raise TypeError(
            f"cannot pickle a RedisTokenStore built from this {type(client).__name__} client; "
            "build it from a URL (RedisTokenStore('redis://…')) to share it with other processes"
        )
    settings = {k: kwargs[k] for k in _SETTINGS if k in kwargs}
    if cls is redis.UnixDomainSocketConnection:
        settings.pop("host", None)
        settings.pop("port", None)
        settings["unix_socket_path"] = kwargs["path"]
    elif cls is redis.SSLConnection:
        settings["ssl"] = True
        settings.update((k, v) for k, v in kwargs.items() if k.startswith("ssl_"))
    try:
        pickle.dumps(settings)
    except Exception as exc:  # what failed is named by type only: settings hold a password
        raise TypeError(
            f"cannot pickle a RedisTokenStore built from this client: a connection setting "
            f"does not pickle ({type(exc).__name__}); build it from a URL instead"
        ) from None
    return settings


def _rebuild(spec: str | dict[str, Any], prefix: str, lock_lease: float) -> RedisTokenStore:
    """Unpickle a store: from its URL, or from its client's settings."""
    if isinstance(spec, str):
        return RedisTokenStore(spec, prefix=prefix, lock_lease=lock_lease)
    redis = _import_redis()
    return RedisTokenStore(redis.Redis(**spec), prefix=prefix, lock_lease=lock_lease)
