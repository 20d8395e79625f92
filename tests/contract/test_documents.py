"""Contract: documents, versions, chunks and embeddings (DocumentStore), on every backend."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from contract.kit import AN, EMB, keys_of, make_doc, put
from engram.errors import (
    DocumentNotFound,
    InvalidInput,
)
from engram.store.contract import Store
from engram.store.records import StampedDocument
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


def test_one_batch_of_new_documents_and_updates(store: Store, coll: Collection) -> None:
    """A batch mixing new keys, a key given twice and a stored key: each ends at its last
    text, versions numbered in order, the indexes holding exactly the current chunks."""
    put(store, coll, "old", "stored apple text")
    made = [
        make_doc("a", "first banana words", "second banana words"),
        make_doc("twice", "early cherry text"),
        make_doc("old", "fresh apple text"),
        make_doc("twice", "late cherry text"),
        make_doc("b", "plain date text"),
    ]
    docs = [d for d, _ in made]
    vectors = {h: v for _, vecs in made for h, v in vecs.items()}
    written = store.write_documents(coll, docs, vectors)
    assert written == [("a", 1), ("twice", 1), ("old", 2), ("twice", 2), ("b", 1)]
    assert keys_of(store, coll, store.keyword_search(coll, AN.terms("cherry"), k=10)) == ["twice"]
    [(cid, _)] = store.keyword_search(coll, AN.terms("cherry"), k=10)
    assert store.get_chunks(coll, [cid])[cid].text == "late cherry text"
    assert store.keyword_search(coll, ["stored"], k=10) == []
    assert keys_of(store, coll, store.keyword_search(coll, AN.terms("banana"), k=10)) == ["a", "a"]
    assert [v.version for v in store.document_versions(coll, "twice")] == [1, 2]
    assert store.get_document(coll, "old").version == 2
    hits = store.vector_search(coll, EMB.embed_query("early cherry text"), k=10)
    texts = {r.text for r in store.get_chunks(coll, [i for i, _ in hits]).values()}
    assert "early cherry text" not in texts and "late cherry text" in texts


def test_chunk_ids_are_never_reused(store: Store, coll: Collection) -> None:
    """A chunk id names one chunk forever (the derived indexes replay the log by id),
    even after the newest chunks and documents are deleted."""
    put(store, coll, "a", "one text")
    put(store, coll, "b", "two text", "three text")
    before = {i for i, _ in store.keyword_search(coll, ["text"], k=10)}
    store.delete_documents(coll, ["b"])
    put(store, coll, "c", "four text")
    after = {i for i, _ in store.keyword_search(coll, ["text"], k=10)}
    new = after - before
    assert len(new) == 1 and min(new) > max(before)
    assert keys_of(store, coll, store.keyword_search(coll, ["four"], k=10)) == ["c"]


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


def test_file_stamps_are_found_by_source_and_set_only_on_the_version_they_describe(
    store: Store, coll: Collection
) -> None:
    def write(key: str, text: str, source: str, stamp: str | None) -> str:
        doc, vectors = make_doc(key, text)
        doc.source, doc.file_stamp = source, stamp
        store.write_documents(coll, [doc], vectors)
        return doc.content_hash

    h1 = write("r1", "first record", "data/a.jsonl", "s1")
    h2 = write("r2", "second record", "data/a.jsonl", "s1")
    write("b", "a note", "data/b.md", "s2")
    write("c", "no file", "data/c.md", None)  # not stamped: not listed
    found = store.file_stamps(coll, ["data/a.jsonl", "data/c.md", "data/missing.md"])
    assert {s: sorted(rows) for s, rows in found.items()} == {
        "data/a.jsonl": [StampedDocument("r1", h1, "s1"), StampedDocument("r2", h2, "s1")]
    }
    assert store.file_stamps(coll, []) == {}
    # A stamp is set where the content hash still matches, and only where it changes.
    stale = StampedDocument("r2", "an older version's hash", "s3")
    assert store.set_file_stamps(coll, [StampedDocument("r1", h1, "s3"), stale]) == 1
    assert store.set_file_stamps(coll, [StampedDocument("r1", h1, "s3")]) == 0
    assert store.set_file_stamps(coll, []) == 0
    found = store.file_stamps(coll, ["data/a.jsonl"])
    assert sorted(found["data/a.jsonl"]) == [
        StampedDocument("r1", h1, "s3"),
        StampedDocument("r2", h2, "s1"),
    ]
    # A new version without a stamp (a document added by other means) drops out.
    write("r1", "first record, edited", "data/a.jsonl", None)
    assert store.file_stamps(coll, ["data/a.jsonl"])["data/a.jsonl"] == [
        StampedDocument("r2", h2, "s1")
    ]
    store.delete_documents(coll, ["r2"])
    assert store.file_stamps(coll, ["data/a.jsonl"]) == {}


def test_document_chunks_in_text_order(store: Store, coll: Collection) -> None:
    put(store, coll, "d", "first part", "second part")
    put(store, coll, "d", "new first", "new second", "new third")
    chunks = store.document_chunks(coll, "d")
    assert [c.text for c in chunks] == ["new first", "new second", "new third"]
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert {c.version for c in chunks} == {2} and {c.document_key for c in chunks} == {"d"}
    with pytest.raises(DocumentNotFound):
        store.document_chunks(coll, "missing")


def test_list_documents_by_key_or_title_contents(store: Store, coll: Collection) -> None:
    put(store, coll, "guides/Setup.md", "install it", title="Getting started")
    put(store, coll, "notes/a.txt", "meeting notes", title="Weekly SETUP review", metadata={"n": 1})
    put(store, coll, "notes/b.txt", "other words", title="Élan")
    listed = store.list_documents(coll, contains="setup")
    assert [d.key for d in listed] == ["guides/Setup.md", "notes/a.txt"]  # key, then title
    assert [d.key for d in store.list_documents(coll, contains="NOTES/", limit=1)] == [
        "notes/a.txt"
    ]
    assert [d.key for d in store.list_documents(coll, contains="setup", offset=1)] == [
        "notes/a.txt"
    ]
    assert store.list_documents(coll, contains="setup", where={"n": 2}) == []
    assert [d.key for d in store.list_documents(coll, contains="Élan")] == ["notes/b.txt"]
    assert store.list_documents(coll, contains="zebra") == []
