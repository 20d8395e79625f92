"""Token-bucket rate limiter, driven by a fake clock."""

from engram.server.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(60, burst=3, clock=clock)
    assert [limiter.check("k").allowed for _ in range(3)] == [True, True, True]
    refused = limiter.check("k")
    assert not refused.allowed and refused.retry_after == 1.0 and refused.retry_after_header == "1"
    clock.now = 1.0  # one token refilled
    assert limiter.check("k").allowed
    assert not limiter.check("k").allowed


def test_keys_are_independent_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(60, burst=1, max_keys=100, clock=clock)
    assert limiter.check("a").allowed and not limiter.check("a").allowed
    assert limiter.check("b").allowed
    for i in range(1000):
        limiter.check(f"ip-{i}")
    assert len(limiter._buckets) == 100


def test_long_idle_does_not_exceed_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(600, burst=5, clock=clock)
    clock.now = 3600.0
    results = [limiter.check("k").allowed for _ in range(6)]
    assert results == [True] * 5 + [False]
