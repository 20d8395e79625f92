"""Contract: kept versions (DocumentStore.document_version, purge_versions and the retention
of write_documents), on every backend."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from contract.kit import EMB, keys_of, make_doc
from engram.errors import DocumentNotFound, InvalidInput
from engram.store.contract import Store
from engram.types import Collection


def write(store: Store, coll: Collection, key: str, *texts: str, keep: int = 0, **kw) -> int:
    doc, vectors = make_doc(key, *texts, **kw)
    doc = replace(doc, text=" ".join(texts), keep_versions=keep)
    return store.write_documents(coll, [doc], vectors)[0][1]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def test_every_version_is_kept_with_its_content(store: Store, coll: Collection) -> None:
    write(store, coll, "d", "alpha beta", "second chunk", metadata={"team": "a"}, title="One")
    write(store, coll, "d", "gamma delta", metadata={"team": "b"}, title="Two")
    old = store.document_version(coll, "d", 1)
    assert (old.version, old.current, old.title) == (1, False, "One")
    assert old.text == "alpha beta second chunk"
    assert old.metadata == {"team": "a"}
    assert [(c.start, c.end, c.text_hash) for c in old.chunks] == [
        (0, 10, digest("alpha beta")),
        (11, 23, digest("second chunk")),
    ]
    now = store.document_version(coll, "d")
    assert (now.version, now.current, now.text) == (2, True, "gamma delta")
    versions = store.document_versions(coll, "d")
    assert [(v.version, v.kept) for v in versions] == [(1, True), (2, True)]
    with pytest.raises(DocumentNotFound):
        store.document_version(coll, "d", 3)
    with pytest.raises(DocumentNotFound):
        store.document_version(coll, "missing", 1)


def test_past_versions_are_never_searched(store: Store, coll: Collection) -> None:
    write(store, coll, "d", "zebra stripes")
    write(store, coll, "d", "lion mane")
    assert store.keyword_search(coll, ["zebra"], k=10) == []
    hits = store.vector_search(coll, EMB.embed_query("zebra stripes"), k=10)
    assert [r.text for r in store.get_chunks(coll, [i for i, _ in hits]).values()] == ["lion mane"]
    assert keys_of(store, coll, store.keyword_search(coll, ["lion"], k=10)) == ["d"]


def test_kept_versions_keep_their_embeddings(store: Store, coll: Collection) -> None:
    write(store, coll, "d", "old words here")
    write(store, coll, "d", "new words here")
    assert store.cached_embeddings(coll.model_id, [digest("old words here")]) == {
        digest("old words here")
    }
    # Restoring writes the old chunks again, with no vector given: the cache has them.
    doc, _ = make_doc("d", "old words here")
    assert store.write_documents(coll, [replace(doc, restored_from=1)], {}) == [("d", 3)]
    assert store.document_versions(coll, "d")[-1].restored_from == 1
    assert keys_of(store, coll, store.keyword_search(coll, ["old"], k=10)) == ["d"]


def test_retention_drops_the_oldest_versions_and_their_vectors(
    store: Store, coll: Collection
) -> None:
    for i in range(4):
        write(store, coll, "d", f"text number {i}", keep=2)
    assert [v.version for v in store.document_versions(coll, "d")] == [3, 4]
    assert store.cached_embeddings(coll.model_id, [digest("text number 0")]) == set()
    assert store.cached_embeddings(coll.model_id, [digest("text number 2")]) == {
        digest("text number 2")
    }
    with pytest.raises(DocumentNotFound):
        store.document_version(coll, "d", 1)


def test_purge_keeps_the_newest(store: Store, coll: Collection) -> None:
    for i in range(3):
        write(store, coll, "a", f"a text {i}")
        write(store, coll, "b", f"b text {i}")
    assert store.purge_versions(coll, keep=2, keys=["a"]) == 1
    assert [v.version for v in store.document_versions(coll, "a")] == [2, 3]
    assert [v.version for v in store.document_versions(coll, "b")] == [1, 2, 3]
    assert store.purge_versions(coll, keep=1) == 3
    assert [v.version for v in store.document_versions(coll, "a")] == [3]
    assert [v.version for v in store.document_versions(coll, "b")] == [3]
    assert store.cached_embeddings(coll.model_id, [digest("b text 1")]) == set()
    assert store.document_version(coll, "b").text == "b text 2"
    assert keys_of(store, coll, store.keyword_search(coll, ["text"], k=10)) in (
        ["a", "b"],
        ["b", "a"],
    )
    assert store.purge_versions(coll, keep=1) == 0
    with pytest.raises(InvalidInput):
        store.purge_versions(coll, keep=0)


def test_delete_removes_every_version(store: Store, coll: Collection) -> None:
    write(store, coll, "d", "first secret")
    write(store, coll, "d", "second secret")
    assert store.delete_documents(coll, ["d"]) == 1
    with pytest.raises(DocumentNotFound):
        store.document_version(coll, "d", 1)
    gone = [digest("first secret"), digest("second secret")]
    assert store.cached_embeddings(coll.model_id, gone) == set()
    write(store, coll, "d", "again")
    assert [v.version for v in store.document_versions(coll, "d")] == [1]


def test_delete_collection_drops_kept_vectors(store: Store, coll: Collection) -> None:
    write(store, coll, "d", "collection secret")
    write(store, coll, "d", "replacement")
    store.delete_collection("c")
    assert store.cached_embeddings(coll.model_id, [digest("collection secret")]) == set()


def test_versions_belong_to_their_tenant(store: Store) -> None:
    mine = store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="a"
    )
    theirs = store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="b"
    )
    write(store, mine, "d", "tenant a text")
    write(store, mine, "d", "tenant a text again")
    with pytest.raises(DocumentNotFound):
        store.document_version(theirs, "d", 1)
    assert store.purge_versions(theirs, keep=1) == 0
    assert [v.version for v in store.document_versions(mine, "d")] == [1, 2]
