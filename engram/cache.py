"""Caches for query embeddings and search results: in-process LRU by default, Redis when
``ENGRAM_REDIS_URL`` is set (shared by every server process).

Search results are keyed by the collection's revision (a counter that moves on every chunk
added or removed), so a change to the collection makes every older entry unreachable at
once: invalidation needs no bookkeeping, and stale entries age out of the LRU (or expire in
Redis after ``ttl`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import pickle
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .errors import MissingDependency, StoreError

_FORMAT = b"engram2:"  # bumped if the pickled shapes change, so old Redis entries are ignored


def cache_key(*parts: Any) -> str:
    """A compact, stable key for arbitrary JSON-able parts."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


class Cache(ABC):
    """get/set of Python objects by string key, counting hits and misses."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.misses = 0
        self.on_hit: Callable[[str], None] | None = None
        self.on_miss: Callable[[str], None] | None = None

    def get(self, key: str) -> Any | None:
        value = self._get(key)
        if value is None:
            self.misses += 1
            if self.on_miss:
                self.on_miss(self.name)
        else:
            self.hits += 1
            if self.on_hit:
                self.on_hit(self.name)
        return value

    @abstractmethod
    def _get(self, key: str) -> Any | None: ...

    @abstractmethod
    def set(self, key: str, value: Any) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LRUCache(Cache):
    """A thread-safe in-process LRU of at most ``size`` entries (0 disables it)."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name)
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def set(self, key: str, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def _redis() -> Any:
    """The ``redis`` package (with ``redis.asyncio``), or MissingDependency saying how to get
    it: ENGRAM_REDIS_URL was set."""
    try:
        import redis
        import redis.asyncio  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "ENGRAM_REDIS_URL is set but the redis package is not installed",
            hint='pip install "engram[redis]"',
        ) from exc
    return redis


class RedisCache(Cache):
    """Entries pickled into Redis under ``engram:<name>:<key>`` with a TTL. Redis is a trusted
    internal service here (it holds what the server computed), hence pickle."""

    def __init__(self, name: str, url: str, ttl: int) -> None:
        super().__init__(name)
        redis = _redis()
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = (redis.RedisError,)
        self.ttl = ttl

    def _key(self, key: str) -> str:
        return f"engram:{self.name}:{key}"

    def _get(self, key: str) -> Any | None:
        try:
            raw = self._redis.get(self._key(key))
        except self._errors:
            return None  # a cache that is down is a miss, never a failed search
        if not isinstance(raw, bytes) or not raw.startswith(_FORMAT):
            return None
        return pickle.loads(raw[len(_FORMAT) :])

    def set(self, key: str, value: Any) -> None:
        with contextlib.suppress(*self._errors):  # a cache that is down just does not store
            self._redis.set(self._key(key), _FORMAT + pickle.dumps(value), ex=self.ttl)

    def ping(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise StoreError(f"Redis is unreachable: {exc}") from exc

    def close(self) -> None:
        self._redis.close()


def make_cache(name: str, *, size: int, redis_url: str | None, ttl: int) -> Cache:
    return RedisCache(name, redis_url, ttl) if redis_url else LRUCache(name, size)


class LoopRedis:
    """An asyncio Redis client for the event loop that is running: a client belongs to the
    loop it first ran in, and an app may be served by more than one over its life (tests).
    Shared by the server's users of Redis on the request path (rate limits, key revocation)."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        redis = _redis()

        self.url = url
        self.timeout = timeout
        self.errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` of the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()
