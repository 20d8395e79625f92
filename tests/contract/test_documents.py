"""Contract: documents, versions, chunks and embeddings (DocumentStore), on every backend."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from contract.kit import EMB, keys_of, make_doc, put
from engram.errors import (
    DocumentNotFound,
    InvalidInput,
)
from engram.store.contract import Store
from engram.types import Collection


def test_new_version_replaces_chunks_everywhere(store: Store, coll: Collection) -> None:
    put(store, coll, "d", "alpha beta")
    put(store, coll, "d", "gamma delta")
    assert store.keyword_search(coll, ["alpha"], k=10) == []
    assert keys_of(store, coll, store.keyword_search(coll, ["gamma"], k=10)) == ["d"]
    hits = store.vector_search(coll, EMB.embed_query("alpha beta"), k=10)
    texts = [r.text for r in store.get_chunks(coll, [i for i, _ in hits]).values()]
    assert texts == ["gamma delta"]
    assert [v.version for v in store.document_versions(coll, "d")] == [1, 2]
    assert store.get_document(coll, "d").version == 2


def test_delete_removes_every_trace(store: Store, coll: Collection) -> None:
    put(store, coll, "a", "unique zebra text")
    put(store, coll, "b", "other words here")
    assert store.delete_documents(coll, ["a", "missing"]) == 1
    assert store.keyword_search(coll, ["zebra"], k=10) == []
    assert store.term_frequencies(coll, ["zebra"]) == {"zebra": 0}
    hits = store.vector_search(coll, EMB.embed_query("unique zebra text"), k=10)
    assert keys_of(store, coll, hits) == ["b"]
    h = hashlib.sha256(b"unique zebra text").hexdigest()[:32]
    assert store.cached_embeddings(coll.model_id, [h]) == set()
    with pytest.raises(DocumentNotFound):
        store.get_document(coll, "a")


def test_shared_chunk_text_keeps_its_embedding(store: Store, coll: Collection) -> None:
    put(store, coll, "a", "shared sentence")
    put(store, coll, "b", "shared sentence")
    store.delete_documents(coll, ["a"])
    h = hashlib.sha256(b"shared sentence").hexdigest()[:32]
    assert store.cached_embeddings(coll.model_id, [h]) == {h}


def test_missing_embedding_is_refused_atomically(store: Store, coll: Collection) -> None:
    doc, _ = make_doc("x", "no vector for me")
    with pytest.raises(InvalidInput):
        store.write_documents(coll, [doc], {})
    with pytest.raises(DocumentNotFound):
        store.get_document(coll, "x")
    assert store.keyword_search(coll, ["vector"], k=5) == []


def test_bad_vector_dimension(store: Store, coll: Collection) -> None:
    with pytest.raises(InvalidInput):
        store.vector_search(coll, np.ones(7, dtype=np.float32), k=3)
    doc, _ = make_doc("x", "text")
    with pytest.raises(InvalidInput):
        store.write_documents(coll, [doc], {doc.chunks[0].text_hash: np.ones(5, dtype=np.float32)})
