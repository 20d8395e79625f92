"""The rate limiter a setting asks for, from either backend.

Apart from both backends so that neither imports the other: the Redis one builds on
:mod:`engram.server.ratelimit`, and is imported only when Redis is configured.
"""

from __future__ import annotations

from .ratelimit import Limiter, RateLimiter


def make_limiter(per_minute: int, *, redis_url: str | None, name: str) -> Limiter | None:
    """The limiter for a setting: None when ``per_minute`` is 0 (no limit), shared through
    Redis when ``redis_url`` is set, else in this process. ``name`` separates the budgets of
    different limiters (``key``, ``ip``) in Redis."""
    if not per_minute:
        return None
    if redis_url:
        from .ratelimit_redis import RedisRateLimiter  # the redis package is an optional extra

        return RedisRateLimiter(per_minute, url=redis_url, prefix=f"engram:ratelimit:{name}:")
    return RateLimiter(per_minute)
