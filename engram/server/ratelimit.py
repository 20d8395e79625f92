"""Rate limiting: a token bucket per client key (API key id, JWT subject or IP address).

Each key may burst up to ``burst`` requests, refilled continuously at ``per_minute / 60`` per
second. ``check`` answers in O(1) and tells a refused caller how long to wait (the value of the
``Retry-After`` header).

Two backends behind one small interface, :class:`Limiter`:

- :class:`RateLimiter` — buckets in this process, in a bounded LRU map so a flood of distinct
  keys (for example spoofed IPs) cannot exhaust memory. With several server processes each
  keeps its own buckets: N workers allow N times the budget.
- :class:`~engram.server.ratelimit_redis.RedisRateLimiter` — buckets in Redis, updated by one
  atomic Lua script, so every process sharing the Redis shares one budget per key. Chosen by
  :func:`~engram.server.ratelimit_setup.make_limiter` when ``ENGRAM_REDIS_URL`` is set.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until one request is allowed again (0 when allowed)

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class Limiter(ABC):
    """A token bucket per key: ``per_minute`` refill, ``burst`` capacity."""

    def __init__(self, per_minute: int, *, burst: int | None = None) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be ≥ 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else per_minute)

    @abstractmethod
    def check(self, key: str, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket if it has them."""

    async def acheck(self, key: str, cost: float = 1.0) -> Decision:
        """:meth:`check` for the event loop; backends doing I/O override it."""
        return self.check(key, cost)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called at app shutdown)."""


class RateLimiter(Limiter):
    """Token buckets in this process."""

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(per_minute, burst=burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, t)
        self._lock = threading.Lock()

    def check(self, key: str, cost: float = 1.0) -> Decision:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                tokens -= cost
                decision = Decision(True, int(tokens), 0.0)
            else:
                decision = Decision(False, 0, (cost - tokens) / self.rate)
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return decision
