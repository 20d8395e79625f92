"""Contract: conversations, messages and memories (MemoryStore), on every backend."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import numpy as np
import pytest

from engram.errors import (
    ConversationNotFound,
    ModelMismatch,
)
from engram.memory import MemoryScope
from engram.memory.service import content_hash
from engram.memory.types import MemoryWrite, MessageWrite
from engram.search.bm25 import BM25Index
from engram.store.contract import Store


def _write(text: str, vector: np.ndarray, model_id: str = "m") -> MemoryWrite:
    return MemoryWrite(text, content_hash(text), vector.astype(np.float32), model_id)


def test_store_vector_candidates_are_exact_cosine(store: Store) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    scope = MemoryScope("t", "u")
    for i, vec in enumerate(vectors):
        store.add_memory(f"m{i:02d}", scope, _write(f"memory {i}", vec))
    store.add_memory("elsewhere", MemoryScope("t", "v"), _write("other user", vectors[0]))
    query = rng.normal(size=8).astype(np.float32)
    got = store.memory_vector_candidates(scope, query, model_id="m", k=5)
    cos = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    expected = [f"m{i:02d}" for i in np.argsort(-cos)[:5]]
    assert [m for m, _ in got] == expected
    assert np.allclose([s for _, s in got], np.sort(cos)[::-1][:5], atol=1e-5)
    with pytest.raises(ModelMismatch):
        store.memory_vector_candidates(scope, query, model_id="another", k=5)


def test_store_keyword_candidates_are_bm25(store: Store) -> None:
    texts = ["red apples and green apples", "green tea", "apple pie recipe", "the and of"]
    scope = MemoryScope("t", "u")
    for i, text in enumerate(texts):
        store.add_memory(f"m{i}", scope, _write(text, np.ones(4)))
    got = store.memory_keyword_candidates(scope, ["appl", "green"], language="en", k=10)
    reference = BM25Index()  # the same BM25 the document search uses, over the same terms
    reference.apply({0: "red appl green appl", 1: "green tea", 2: "appl pie recip"}, [], 0)
    assert got == [(f"m{i}", s) for i, s in reference.search(["appl", "green"], 10)]
    assert store.memory_keyword_candidates(scope, [], language="en", k=10) == []


def test_store_appends_a_turn_whole_or_not_at_all(store: Store) -> None:

    store.create_conversation("c1", tenant="t", user_id="u")
    user, answer = store.append_messages(
        "c1",
        tenant="t",
        messages=[MessageWrite("user", "Q?"), MessageWrite("assistant", "A.", {"n": 1})],
    )
    assert (user.role, answer.role, answer.metadata) == ("user", "assistant", {"n": 1})
    assert user.id < answer.id and user.created_at == answer.created_at
    listed = store.list_messages("c1", tenant="t")
    assert [(m.role, m.content) for m in listed] == [("user", "Q?"), ("assistant", "A.")]
    with pytest.raises(ConversationNotFound):  # another tenant's conversation: nothing written
        store.append_messages("c1", tenant="other", messages=[MessageWrite("user", "x")])
    assert len(store.list_messages("c1", tenant="t")) == 2


def test_store_keeps_a_given_time_and_speaker(store: Store) -> None:
    store.create_conversation("c1", tenant="t", user_id="u")
    said = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)
    m = store.append_messages(
        "c1", tenant="t", messages=[MessageWrite("user", "hi", speaker="Ana", created_at=said)]
    )[0]
    assert (m.speaker, m.created_at) == ("Ana", "2026-03-05T17:30:00.000000+00:00")
    assert store.list_messages("c1", tenant="t")[0] == m


def test_store_selects_a_users_message_ids_by_column(store: Store) -> None:
    store.create_conversation("c1", tenant="t", user_id="u")
    store.create_conversation("c2", tenant="t", user_id="u")
    day = datetime(2026, 3, 1, tzinfo=UTC)
    a, b = store.append_messages(
        "c1",
        tenant="t",
        messages=[
            MessageWrite("user", "a", speaker="Ana", created_at=day),
            MessageWrite("assistant", "b", created_at=day.replace(day=5)),
        ],
    )
    (c,) = store.append_messages(
        "c2", tenant="t", messages=[MessageWrite("user", "c", created_at=day.replace(day=9))]
    )
    pick = functools.partial(store.message_ids, tenant="t", user_id="u")
    assert pick() == [a.id, b.id, c.id]
    assert pick(conversation_id="c2") == [c.id]
    assert pick(role="user") == [a.id, c.id]
    assert pick(speaker="Ana") == [a.id]
    assert pick(since=day.replace(day=5)) == [b.id, c.id]
    assert pick(until=day.replace(day=5)) == [a.id]
    assert pick(since=day.replace(day=2), until=day.replace(day=9), role="assistant") == [b.id]


def test_store_hands_out_unindexed_messages_until_marked(store: Store) -> None:
    store.create_conversation("c1", tenant="t", user_id="u")
    store.create_conversation("c2", tenant="t", user_id="v")
    store.create_conversation("c3", tenant="other", user_id="u")
    a, b = store.append_messages(
        "c1", tenant="t", messages=[MessageWrite("user", "one"), MessageWrite("user", "two")]
    )
    store.append_messages("c2", tenant="t", messages=[MessageWrite("user", "v's")])
    store.append_messages("c3", tenant="other", messages=[MessageWrite("user", "other's")])
    pending = store.unindexed_messages(tenant="t", user_id="u", limit=10)
    assert [(m.id, before) for m, before in pending] == [(a.id, None), (b.id, "one")]
    assert len(store.unindexed_messages(tenant="t", user_id="u", limit=1)) == 1
    store.mark_messages_indexed([a.id], tenant="t")
    assert [m.id for m, _ in store.unindexed_messages(tenant="t", user_id="u", limit=10)] == [b.id]
    store.mark_messages_indexed([b.id], tenant="t")
    assert store.unindexed_messages(tenant="t", user_id="u", limit=10) == []
    store.mark_messages_unindexed(tenant="t", user_id="u")
    assert len(store.unindexed_messages(tenant="t", user_id="u", limit=10)) == 2
    assert len(store.unindexed_messages(tenant="t", user_id="v", limit=10)) == 1
    assert len(store.unindexed_messages(tenant="t", user_id="v", limit=10)) == 1
    assert len(store.unindexed_messages(tenant="other", user_id="u", limit=10)) == 1


def test_store_reads_messages_around_a_hit_for_their_user_only(store: Store) -> None:
    store.create_conversation("c1", tenant="t", user_id="u")
    ms = store.append_messages(
        "c1", tenant="t", messages=[MessageWrite("user", str(i)) for i in range(6)]
    )
    ids = [m.id for m in ms]
    around = store.messages_around([ids[2], ids[0]], tenant="t", user_id="u", before=1, after=2)
    assert [m.id for m in around[ids[2]]] == ids[1:5]
    assert [m.id for m in around[ids[0]]] == ids[0:3]
    assert store.messages_around([ids[2]], tenant="t", user_id="v", before=1, after=1) == {}
    assert store.messages_around([ids[2]], tenant="x", user_id="u", before=1, after=1) == {}
    assert store.conversation_message_ids("c1", tenant="t") == ids
    assert store.message_ids(tenant="t", user_id="u") == ids
    assert store.message_ids(tenant="t", user_id="v") == []
    assert store.message_ids(tenant="x", user_id="u") == []
    assert store.message_ids(tenant="t", user_id="u", conversation_id="c9") == []
    with pytest.raises(ConversationNotFound):
        store.conversation_message_ids("c1", tenant="x")


def test_store_lists_users_by_page_and_prefix(store: Store) -> None:
    vec = np.ones(4)
    for user in ("bob", "ann", "alex"):
        store.create_conversation(f"c-{user}", tenant="t", user_id=user)
        store.create_conversation(f"c2-{user}", tenant="t", user_id=user)
    store.add_memory("m1", MemoryScope("t", "carl"), _write("only a memory", vec))
    store.add_memory("m2", MemoryScope("t", "ann"), _write("both", vec))
    store.create_conversation("other", tenant="t2", user_id="zed")
    assert store.list_users(tenant="t") == ["alex", "ann", "bob", "carl"]
    assert store.list_users(tenant="t", limit=2) == ["alex", "ann"]
    assert store.list_users(tenant="t", after="ann", limit=2) == ["bob", "carl"]
    assert store.list_users(tenant="t", prefix="a") == ["alex", "ann"]
    assert store.list_users(tenant="t", prefix="a", after="alex") == ["ann"]
    assert store.list_users(tenant="t", prefix="x") == []
    assert store.list_users(tenant="t2") == ["zed"]
