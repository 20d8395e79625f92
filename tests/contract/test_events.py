"""Contract: analytics events (EventStore), on every backend."""

from __future__ import annotations

import pytest

from engram.store.contract import Store
from engram.store.records import EventWrite


def at(day: str, hour: int = 12) -> str:
    return f"{day}T{hour:02d}:00:00.000000+00:00"


def test_event_stats_in_the_store(store: Store) -> None:
    latencies = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0]  # p50 = 5, p95 = 10
    events = [
        EventWrite(
            "acme",
            "search",
            query=q,
            result_count=0 if q == "nothing here" else 3,
            latency_ms=ms,
            created_at=at("2024-03-01" if i < 6 else "2024-03-02", hour=i),
        )
        for i, (q, ms) in enumerate(
            zip(
                [
                    "Vacation days",
                    "vacation  DAYS",
                    " vacation days",
                    "api keys",
                    "API keys",
                    "nothing here",
                    "laptops",
                    "vacation days",
                    "api keys",
                    "nothing here",
                ],
                latencies,
            )
        )
    ]
    events += [
        EventWrite("acme", "chat", user_id="u1", created_at=at("2024-03-01")),
        EventWrite("acme", "message", user_id="u2", created_at=at("2024-03-01")),
        EventWrite("acme", "message", user_id="u1", created_at=at("2024-03-02")),
        EventWrite("acme", "rating", user_id="u3", data={"rating": 5}, created_at=at("2024-04-01")),
        # Thumbs on answers (the web chat's feedback).
        *[
            EventWrite("acme", "feedback", data={"rating": r}, created_at=at("2024-03-02"))
            for r in ("up", "up", "down", "meh")
        ],
        # Outside the window, and another tenant's: never counted.
        EventWrite("acme", "search", query="old", result_count=0, created_at=at("2024-02-28")),
        EventWrite("acme", "search", query="late", created_at=at("2024-04-03")),
        EventWrite("globex", "search", query="vacation days", created_at=at("2024-03-01")),
        EventWrite("globex", "chat", user_id="g1", created_at=at("2024-03-01")),
    ]
    store.record_events(events)
    store.record_event(
        "acme", "click", user_id="u1", data={"document": "d1"}, created_at=at("2024-03-02")
    )

    stats = store.event_stats("acme", "2024-03-01", "2024-04-02")
    assert stats["counts"] == {
        "search": 10,
        "chat": 1,
        "message": 2,
        "rating": 1,
        "click": 1,
        "feedback": 4,
    }
    assert stats["queries_per_day"] == [
        {"date": "2024-03-01", "count": 6},
        {"date": "2024-03-02", "count": 4},
    ]
    assert stats["search_latency_ms"] == {"count": 10, "p50": 5.0, "p95": 10.0}
    assert stats["zero_result_rate"] == pytest.approx(0.2)
    assert stats["top_queries"] == [
        {"query": "vacation days", "count": 4},
        {"query": "api keys", "count": 3},
        {"query": "nothing here", "count": 2},
        {"query": "laptops", "count": 1},
    ]
    assert stats["top_zero_result_queries"] == [{"query": "nothing here", "count": 2}]
    assert stats["feedback"] == {"up": 2, "down": 1}
    assert stats["active_users"] == {
        "total": 3,
        "daily": [
            {"date": "2024-03-01", "count": 2},
            {"date": "2024-03-02", "count": 1},
            {"date": "2024-04-01", "count": 1},
        ],
        "monthly": [{"month": "2024-03", "count": 2}, {"month": "2024-04", "count": 1}],
    }
    empty = store.event_stats("initech", "2024-03-01", "2024-04-02")
    assert empty["counts"] == {} and empty["zero_result_rate"] is None
    assert empty["search_latency_ms"] == {"count": 0, "p50": None, "p95": None}
    assert empty["top_zero_result_queries"] == [] and empty["feedback"] == {"up": 0, "down": 0}

    assert store.delete_user_events(tenant="acme", user_id="u1") == 3
    assert store.event_stats("acme", "2024-03-01", "2024-04-02")["active_users"]["total"] == 2
    assert store.event_stats("globex", "2024-03-01", "2024-04-02")["active_users"]["total"] == 1


def test_suggest_events_follow_successful_searches_and_erasures(store: Store) -> None:
    def search(query: str | None, *, results: int = 1, user: str | None = None, **data: str):
        return EventWrite("acme", "search", user_id=user, query=query, result_count=results,
                          data=data)  # fmt: skip

    store.record_events(
        [
            search("vacation days", collection="kb", user="u1"),
            search("nothing", results=0, collection="kb"),
            search("no collection"),
            search(None, collection="kb"),
            EventWrite("acme", "chat", query="hello", data={"collection": "kb"}),
            EventWrite("globex", "search", query="theirs", result_count=1,
                       data={"collection": "kb"}),
            search("api keys", collection="it"),
        ]
    )  # fmt: skip
    found = store.suggest_events("acme", after=0, limit=10)
    assert [(e.collection, e.query) for e in found] == [("kb", "vacation days"), ("it", "api keys")]
    assert store.suggest_events("acme", after=found[0].id, limit=10) == found[1:]
    assert store.suggest_events("acme", after=0, limit=1) == found[:1]
    assert store.delete_user_events(tenant="acme", user_id="u1") == 1
    assert store.delete_user_events(tenant="acme", user_id="nobody") == 0
    after = store.suggest_events("acme", after=0, limit=10)
    assert [(e.collection, e.query) for e in after] == [("it", "api keys"), (None, None)]
    assert after[-1].id > found[-1].id
