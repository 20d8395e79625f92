"""Shared rate limits and caches through the real Redis on 127.0.0.1:6379.

Skipped when no Redis listens there, unless ENGRAM_REQUIRE_SERVICES=1 (then they fail).
Each test uses its own key prefix or random key ids, so runs in parallel never meet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.keys import REDIS_REVISION_KEY, ApiKey, VerifiedKeys, bump_revision, revision_path
from engram.server.app import create_app
from engram.server.ratelimit import RateLimiter
from engram.server.ratelimit_redis import RedisRateLimiter
from engram.server.ratelimit_setup import make_limiter

URL = "redis://127.0.0.1:6379/14"


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def prefix() -> Iterator[str]:
    if not _redis_up():
        if os.environ.get("ENGRAM_REQUIRE_SERVICES") == "1":
            pytest.fail("ENGRAM_REQUIRE_SERVICES=1 but no Redis on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379")
    name = f"engram:test:{uuid.uuid4().hex}:"
    yield name
    import redis

    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(name + "*"):
        client.delete(key)
    client.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_two_limiters_share_one_budget(prefix: str) -> None:
    clock = Clock()
    # Two instances with their own connections, as two server processes would have.
    a = RedisRateLimiter(60, url=URL, prefix=prefix, burst=3, clock=clock)
    b = RedisRateLimiter(60, url=URL, prefix=prefix, burst=3, clock=clock)
    assert [a.check("k").allowed, b.check("k").allowed, a.check("k").allowed] == [True] * 3
    refused = b.check("k")
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after == pytest.approx(1.0) and refused.retry_after_header == "1"
    assert not a.check("k").allowed
    clock.now += 1.0  # one token refilled, for both
    assert b.check("k").allowed
    assert not a.check("k").allowed
    # Another key has its own bucket; remaining counts down as in the in-process limiter.
    assert [a.check("other").remaining, b.check("other").remaining] == [2, 1]
    assert not a.degraded and not b.degraded


def test_same_semantics_as_the_in_process_limiter(prefix: str) -> None:
    clock = Clock()
    shared = RedisRateLimiter(600, url=URL, prefix=prefix, burst=5, clock=clock)
    local = RateLimiter(600, burst=5, clock=clock)
    for step in [0.0] * 7 + [0.05, 0.1, 0.0, 0.0, 3600.0] + [0.0] * 6:
        clock.now += step
        assert shared.check("k") == local.check("k"), step


def test_bucket_expires_once_full_again(prefix: str) -> None:
    import redis

    limiter = RedisRateLimiter(60, url=URL, prefix=prefix, burst=10)
    limiter.check("idle")
    ttl_ms = redis.Redis.from_url(URL).pttl(prefix + "idle")
    assert 10_000 < ttl_ms <= 11_000  # 10 tokens at 1/s refill in 10 s, plus a second


def test_concurrent_checks_never_spend_a_token_twice(prefix: str) -> None:
    # Redis' own clock here; 1 token a minute, so nothing refills during the test.
    limiters = [RedisRateLimiter(1, url=URL, prefix=prefix, burst=10) for _ in range(2)]

    async def hammer() -> list[bool]:
        calls = [limiters[i % 2].acheck("k") for i in range(40)]
        decisions = await asyncio.gather(*calls)
        for limiter in limiters:
            await limiter.aclose()
        return [d.allowed for d in decisions]

    allowed = asyncio.run(hammer())
    assert allowed.count(True) == 10
    refused = limiters[0].check("k")
    assert not refused.allowed and 59.0 < refused.retry_after <= 60.0
    assert refused.retry_after_header == "60"


def test_unreachable_redis_limits_in_process(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter(60, url="redis://127.0.0.1:1/0", burst=2, timeout=0.2)
    with caplog.at_level(logging.WARNING, logger="engram.server"):
        decisions = [limiter.check("k").allowed for _ in range(3)]
        assert decisions == [True, True, False]  # neither open nor closed: local buckets
        assert not asyncio.run(limiter.acheck("k")).allowed
    assert limiter.degraded
    warnings = [r for r in caplog.records if "unreachable for rate limits" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request


def test_make_limiter_picks_the_backend() -> None:
    assert make_limiter(0, redis_url=URL, name="key") is None
    assert isinstance(make_limiter(10, redis_url=None, name="key"), RateLimiter)
    shared = make_limiter(10, redis_url=URL, name="key")
    assert isinstance(shared, RedisRateLimiter) and shared.prefix == "engram:ratelimit:key:"


def _settings(tmp_path: Path, **update: object) -> Settings:
    return Settings.build(
        data_dir=tmp_path, embedding_model="hash", chunk_tokens=64, redis_url=URL, **update
    )


def test_two_servers_share_a_key_budget_over_http(tmp_path: Path, prefix: str) -> None:
    settings = _settings(tmp_path, rate_limit_per_minute=3)
    with engram.open(settings=settings) as db:
        key = db.create_key(tenant="acme", scopes=["read"])[1]  # a fresh key id: its own bucket
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        codes = [c.get("/v1/collections", headers=headers).status_code for c in (one, two, one)]
        assert codes == [200, 200, 200]
        refused = two.get("/v1/collections", headers=headers)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 19 <= int(refused.headers["retry-after"]) <= 20  # one token every 20 s
        assert one.get("/v1/collections", headers=headers).status_code == 429


def test_two_servers_share_the_caches(tmp_path: Path, prefix: str) -> None:
    settings = _settings(tmp_path, rate_limit_per_minute=0, rate_limit_ip_per_minute=0)
    with engram.open(settings=settings) as db:
        key = db.create_key(tenant="acme", scopes=["write"])[1]
    headers = {"Authorization": f"Bearer {key}"}
    word = uuid.uuid4().hex  # a query no other test (sharing this Redis) has cached
    query = {"query": f"alpha {word}", "collection": "kb"}
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        doc = {"id": "a", "text": f"alpha particles {word}"}
        assert one.post("/v1/collections/kb/documents", json=doc, headers=headers).is_success
        first = one.post("/v1/search", json=query, headers=headers).json()
        assert "cache" not in first["timings_ms"] and first["data"]
        # The other server (another process, in production) answers from the result cache.
        again = two.post("/v1/search", json=query, headers=headers).json()
        assert set(again["timings_ms"]) == {"cache"} and again["data"] == first["data"]
        # A different page is a result-cache miss, but the query's embedding is shared.
        searcher = two.app.state.db.searcher  # type: ignore[attr-defined]
        hits = searcher.embedding_cache.hits
        other = two.post("/v1/search", json={**query, "k": 3}, headers=headers).json()
        assert "embed" in other["timings_ms"] and searcher.embedding_cache.hits == hits + 1


# -- key revocation across hosts -----------------------------------------------------------------
def _record() -> ApiKey:
    return ApiKey("k1", "acme", "", ("read",), "2024-01-01T00:00:00+00:00")


def test_a_revocation_reaches_servers_on_other_hosts_through_redis(
    tmp_path: Path, prefix: str
) -> None:
    # Two hosts: each server has its own data directory; they share the database and Redis.
    here, there = tmp_path / "host1", tmp_path / "host2"

    async def scenario() -> None:
        server = VerifiedKeys(revision_path(there), redis_url=URL)
        stamp = await server.stamp()
        server.lookup("egm_a", stamp)
        server.remember("egm_a", _record(), stamp)
        assert server.lookup("egm_a", await server.stamp()) == _record()
        bump_revision(here, redis_url=URL)  # `engram keys revoke` on the other host
        assert server.lookup("egm_a", await server.stamp()) is None
        await server.aclose()

    asyncio.run(scenario())
    import redis

    assert redis.Redis.from_url(URL).get(REDIS_REVISION_KEY) is not None


def test_unreachable_redis_trusts_no_remembered_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        server = VerifiedKeys(revision_path(tmp_path), redis_url="redis://127.0.0.1:1/0")
        for _ in range(3):
            stamp = await server.stamp()
            assert server.lookup("egm_a", stamp) is None
            server.remember("egm_a", _record(), stamp)  # not stored: the stamp is unknown
        assert len(server) == 0
        await server.aclose()

    with caplog.at_level(logging.WARNING, logger="engram.keys"):
        asyncio.run(scenario())
        bump_revision(tmp_path, redis_url="redis://127.0.0.1:1/0")  # logged, not raised
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable for key revocations" in m for m in messages) == 1
    assert any("could not publish the key revocation" in m for m in messages)
    assert revision_path(tmp_path).exists()  # the local stamp is written all the same
