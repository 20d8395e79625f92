"""Rate limits shared by every server process: token buckets in Redis.

One Lua script reads a bucket, refills it for the time elapsed, takes the request's tokens
and writes it back, atomically (Redis runs a script alone), so two processes never spend the
same token. Time comes from Redis itself (``TIME``), not from each host's clock, so hosts with
skewed clocks still agree. A bucket is a hash ``{tokens, ts}`` that expires once it would be
full again: an idle key costs nothing.

**When Redis is unreachable, limits fail over to this process** (neither open nor closed):
each process keeps limiting with its own in-memory buckets, as without Redis, so a Redis
outage neither takes the API down nor lifts every limit; across N processes a key may then
get up to N times its budget. The failure is logged (a warning at most once a minute) and
Redis is tried again after ``retry_interval`` seconds, so an outage does not add a timeout
to every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..cache import LoopRedis
from .ratelimit import Decision, Limiter, RateLimiter

logger = logging.getLogger("engram.server")

# KEYS[1]: the bucket. ARGV: refill rate (tokens/s), burst, cost, now (seconds; "" = Redis TIME).
# Returns {allowed (0/1), tokens left, seconds until `cost` tokens are available}, the numbers
# as exact decimal strings (Redis would truncate Lua numbers to integers).
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if not tokens or not last then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
local function exact(x) return string.format('%.17g', x) end
redis.call('HSET', KEYS[1], 'tokens', exact(tokens), 'ts', exact(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, exact(tokens), exact(retry)}
"""

WARN_EVERY = 60.0  # seconds between two "Redis is unreachable" warnings


class RedisRateLimiter(Limiter):
    """Token buckets in Redis under ``<prefix><key>``, shared by every process using ``url``.

    ``check`` is for synchronous callers, ``acheck`` for the event loop (it never blocks it).
    ``clock`` (seconds) replaces Redis' own time; tests use it to move time deterministically.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        url: str,
        prefix: str = "engram:ratelimit:",
        burst: int | None = None,
        clock: Callable[[], float] | None = None,
        timeout: float = 0.5,
        retry_interval: float = 5.0,
    ) -> None:
        super().__init__(per_minute, burst=burst)
        self._async = LoopRedis(url, timeout=timeout)  # raises MissingDependency first
        import redis

        self.url = url
        self.prefix = prefix
        self._clock = clock
        self._retry_interval = retry_interval
        self._errors = self._async.errors
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._script = self._client.register_script(TOKEN_BUCKET)
        self._async_script: Any = None
        self._async_client: Any = None
        # While Redis is unreachable: this process's own buckets (see the module docstring).
        self.local = RateLimiter(per_minute, burst=burst)
        self._down_until = 0.0
        self._warned_at = -WARN_EVERY

    @property
    def degraded(self) -> bool:
        """Whether limits are currently kept in this process because Redis failed."""
        return time.monotonic() < self._down_until

    def check(self, key: str, cost: float = 1.0) -> Decision:
        if self.degraded:
            return self.local.check(key, cost)
        try:
            reply = self._script(keys=[self.prefix + key], args=self._args(cost))
        except self._errors as exc:
            self._failed(exc)
            return self.local.check(key, cost)
        return _decision(reply)

    async def acheck(self, key: str, cost: float = 1.0) -> Decision:
        if self.degraded:
            return self.local.check(key, cost)
        try:
            reply = await self._script_for_loop()(keys=[self.prefix + key], args=self._args(cost))
        except self._errors as exc:
            self._failed(exc)
            return self.local.check(key, cost)
        return _decision(reply)

    async def aclose(self) -> None:
        await self._async.aclose()
        self._client.close()

    def _args(self, cost: float) -> list[str]:
        now = "" if self._clock is None else repr(float(self._clock()))
        return [repr(self.rate), repr(self.burst), repr(float(cost)), now]

    def _script_for_loop(self) -> Any:
        client = self._async.client()
        if client is not self._async_client:  # a new loop, a new client: register again
            self._async_script = client.register_script(TOKEN_BUCKET)
            self._async_client = client
        return self._async_script

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_interval
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "Redis is unreachable for rate limits (%s): limiting in this process until it"
                " answers again (retried every %.0f s)",
                exc,
                self._retry_interval,
                extra={"fields": {"redis_url_host": _host(self.url)}},
            )


def _decision(reply: Any) -> Decision:
    allowed, tokens, retry = int(reply[0]), float(reply[1]), float(reply[2])
    return Decision(bool(allowed), int(tokens), 0.0 if allowed else retry)


def _host(url: str) -> str:
    """The host:port of a Redis URL, without credentials."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1].split("/", 1)[0]
