"""The same calls on the SQLite and the PostgreSQL store give the same answers: memories and
their candidates, conversations, exports, event statistics and job order (an oracle test on
top of the contract tests, which check each backend on its own)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engram.memory.service import content_hash
from engram.memory.types import MemoryScope, MemoryWrite
from engram.store.contract import Store
from engram.store.records import EventWrite
from engram.store.sqlite import SQLiteStore

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[Store, Store]]:
    from engram.store.postgres import PostgresStore

    lite, pg = SQLiteStore(":memory:"), PostgresStore(pg_url, pool_size=2)
    yield lite, pg
    lite.close()
    pg.close()


def both(stores: tuple[Store, Store], call: Any) -> tuple[Any, Any]:
    return call(stores[0]), call(stores[1])


def shape(value: Any) -> str:
    """JSON text with every timestamp masked (the two stores ran at different instants) but
    key order kept: the two must serialise identically."""
    return TIMESTAMP.sub("<ts>", json.dumps(value, ensure_ascii=False))


def populate(store: Store) -> None:
    rng = np.random.default_rng(3)
    texts = [
        "Prefers green tea in the morning",
        "Has a border collie named Rex",
        "Works on the billing team",
        "Allergic to peanuts",
        "Prefers the aisle seat on long flights",
        "Lives in Lyon",
        "The dog Rex likes long walks",
        "   ",  # no terms: never a keyword candidate
    ]
    for i, text in enumerate(texts):
        scope = MemoryScope("acme", "ann", agent_id="coach" if i % 3 == 0 else None)
        vec = rng.normal(size=16).astype(np.float32)
        meta = {"z": i, "a": {"nested": [1, {"y": 2, "b": 3}]}, "topic": "t" * (i % 4)}
        store.add_memory(
            f"m{i}", scope, MemoryWrite(text, content_hash(text), vec, "hash-16", meta)
        )
    store.add_memory(  # same text, other user and other tenant
        "other",
        MemoryScope("globex", "ann"),
        MemoryWrite(texts[0], content_hash(texts[0]), rng.normal(size=16), "hash-16"),
    )
    store.update_memory(
        "m2",
        tenant="acme",
        write=MemoryWrite(
            "Works on the payments team", content_hash("payments"), rng.normal(size=16), "hash-16"
        ),
    )
    store.delete_memory("m5", tenant="acme")
    for c in range(3):
        conv = f"c{c}"
        store.create_conversation(
            conv, tenant="acme", user_id="ann", title=f"chat {c}", metadata={"b": 1, "a": c}
        )
        for n in range(3):
            store.append_message(
                conv, tenant="acme", role="user", content=f"message {n}", metadata={"n": n}
            )
    store.append_message("c0", tenant="acme", role="assistant", content="the last word")


def test_memories_conversations_and_exports_match(stores: tuple[Store, Store]) -> None:
    for store in stores:
        populate(store)
    ann = MemoryScope("acme", "ann")
    calls = {
        "list": lambda s: [m.to_dict() for m in s.list_memories(ann, include_deleted=True)],
        "list_agent": lambda s: [
            m.id for m in s.list_memories(MemoryScope("acme", "ann", "coach"))
        ],
        "list_exact": lambda s: [
            m.id for m in s.list_memories(MemoryScope("acme", "ann", exact_agent=True))
        ],
        "page": lambda s: [m.id for m in s.list_memories(ann, limit=2, offset=1)],
        "by_hash": lambda s: s.find_memory_by_hash(
            ann, content_hash("Allergic to peanuts")
        ).to_dict(),
        "get_many": lambda s: sorted(s.get_memories(["m1", "m5", "other", "nope"], tenant="acme")),
        "history": lambda s: [e.to_dict() for e in s.memory_history("m2", tenant="acme")],
        "keyword": lambda s: s.memory_keyword_candidates(
            ann, ["rex", "long", "prefer"], language="en", k=10
        ),
        "conversations": lambda s: [
            c.to_dict() for c in s.list_conversations(tenant="acme", user_id="ann")
        ],
        "messages": lambda s: [m.to_dict() for m in s.list_messages("c0", tenant="acme", last=2)],
        "export": lambda s: {
            k: v
            for k, v in s.export_user(tenant="acme", user_id="ann").items()
            if k != "exported_at"
        },
    }
    for name, call in calls.items():
        lite, pg = both(stores, call)
        assert shape(pg) == shape(lite), name

    query = np.random.default_rng(9).normal(size=16).astype(np.float32)
    lite, pg = both(
        stores, lambda s: s.memory_vector_candidates(ann, query, model_id="hash-16", k=5)
    )
    assert [m for m, _ in pg] == [m for m, _ in lite]
    assert np.allclose([x for _, x in pg], [x for _, x in lite], atol=1e-6)

    lite, pg = both(stores, lambda s: s.erase_user(tenant="acme", user_id="ann"))
    assert pg == lite


def test_event_statistics_match(stores: tuple[Store, Store]) -> None:
    rng = np.random.default_rng(5)
    events = [
        EventWrite(
            "acme",
            ["search", "search", "chat", "click"][i % 4],
            user_id=f"u{rng.integers(6)}" if i % 5 else None,
            query=["Vacation days", "api keys", "laptop", "VPN", "b", "a"][rng.integers(6)],
            result_count=int(rng.integers(3)),
            latency_ms=float(rng.integers(1, 400)) if i % 7 else None,
            created_at=f"2024-0{1 + i % 3}-{1 + i % 28:02d}T{i % 24:02d}:00:00.000000+00:00",
        )
        for i in range(300)
    ]
    for store in stores:
        store.record_events(events)
    for window in [("2024-01-01", "2024-04-01"), ("2024-02", "2024-03-15T12:00:00+00:00")]:
        lite, pg = both(stores, lambda s, w=window: s.event_stats("acme", *w))
        assert pg == lite and shape(pg) == shape(lite), window


def test_event_insights_and_export_match(stores: tuple[Store, Store]) -> None:
    """Retention, cohorts, per-collection and per-user breakdowns and the export are the same
    on both backends (the same SQL over different day arithmetic and JSON access)."""
    rng = np.random.default_rng(7)
    events = [
        EventWrite(
            "acme" if i % 9 else "globex",
            ["search", "chat", "click", "signup"][int(rng.integers(4))],
            user_id=f"u{rng.integers(40)}" if i % 6 else None,
            query=["Vacation days", "api keys", None][int(rng.integers(3))],
            result_count=int(rng.integers(3)),
            latency_ms=float(rng.integers(1, 400)),
            data={"collection": ["kb", "hr", "Zeta", "alpha"][i % 4]} if i % 5 else {"x": i},
            created_at=f"2024-0{1 + i % 4}-{1 + (i * 7) % 28:02d}T{i % 24:02d}:{i % 60:02d}"
            ":00.000000+00:00",
        )
        for i in range(600)
    ]
    for store in stores:
        store.record_events(events)
    windows = [("2024-01-01", "2024-05-01"), ("2024-02", "2024-03-15T12:00:00+00:00")]
    for window in windows:
        lite, pg = both(stores, lambda s, w=window: s.event_insights("acme", *w))
        assert pg == lite and shape(pg) == shape(lite), window
        assert lite["cohorts"] and lite["by_collection"] and lite["by_user"]
        lite, pg = both(stores, lambda s, w=window: list(s.export_events("acme", *w)))
        strip = [{k: v for k, v in e.items() if k != "id"} for e in lite]
        assert [{k: v for k, v in e.items() if k != "id"} for e in pg] == strip


def test_job_order_matches(stores: tuple[Store, Store]) -> None:
    for store in stores:
        for i in range(6):
            store.create_job(
                f"j{i}",
                tenant="acme",
                kind="k",
                payload={"b": 1, "a": i},
                progress={"z": 0, "a": 1},
            )
    lite, pg = both(stores, lambda s: [j.id for j in s.list_jobs(tenant="acme", limit=4)])
    assert pg == lite == ["j5", "j4", "j3", "j2"]
    lite, pg = both(stores, lambda s: s.claim_job())
    assert pg.id == lite.id == "j0" and pg.payload == lite.payload
    assert shape(pg.payload) == shape(lite.payload) and shape(pg.progress) == shape(lite.progress)
    lite, pg = both(stores, lambda s: s.pending_jobs())
    assert pg == lite == {"queued": 5, "running": 1}
