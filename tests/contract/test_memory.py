"""Contract: conversations, messages and memories (MemoryStore), on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from engram.errors import (
    ConversationNotFound,
    ModelMismatch,
)
from engram.memory import MemoryScope
from engram.memory.service import content_hash
from engram.memory.types import MemoryWrite
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
        "c1", tenant="t", messages=[("user", "Q?", None), ("assistant", "A.", {"n": 1})]
    )
    assert (user.role, answer.role, answer.metadata) == ("user", "assistant", {"n": 1})
    assert user.id < answer.id and user.created_at == answer.created_at
    listed = store.list_messages("c1", tenant="t")
    assert [(m.role, m.content) for m in listed] == [("user", "Q?"), ("assistant", "A.")]
    with pytest.raises(ConversationNotFound):  # another tenant's conversation: nothing written
        store.append_messages("c1", tenant="other", messages=[("user", "x", None)])
    assert len(store.list_messages("c1", tenant="t")) == 2
