"""Contract: import batches (ImportStore), on every backend: a batch keeps what its writes
replaced, in their transaction, and a rollback puts it back in every index."""

from __future__ import annotations

import pytest

from contract.kit import EMB, keys_of, make_doc, put
from engram.errors import Conflict, NotFound
from engram.store.contract import Store
from engram.types import Collection


def _import(store: Store, coll: Collection, batch: str) -> None:
    store.begin_import(batch, tenant="default", kind="test", source="s", collections=["c"])
    doc, vecs = make_doc("a", "gamma delta", metadata={"new": 1})
    new, new_vecs = make_doc("n", "epsilon")
    store.write_documents(coll, [doc, new], {**vecs, **new_vecs}, batch=batch)
    assert store.delete_documents(coll, ["gone"], batch=batch) == 1
    store.finish_import(
        batch, tenant="default", status="finished", counts={"added": 1}, collections=["c"]
    )


def test_rollback_restores_every_index(store: Store, coll: Collection) -> None:
    put(store, coll, "a", "alpha beta", metadata={"old": 1})
    put(store, coll, "gone", "zeta eta")
    _import(store, coll, "b1")
    # The replaced version is kept (versions keep every version by default), its vector
    # with it; the batch holds its own copy either way.
    old = make_doc("a", "alpha beta")[0].chunks[0].text_hash
    assert store.cached_embeddings(coll.model_id, [old]) == {old}

    report = store.rollback_import("b1", tenant="default")
    assert dict(report.counts) == {"deleted": 1, "restored": 1, "re-created": 1}
    assert sorted(store.document_hashes(coll)) == ["a", "gone"]
    assert store.get_document(coll, "a").metadata == {"old": 1}
    assert [v.version for v in store.document_versions(coll, "a")] == [1, 2, 3]
    assert keys_of(store, coll, store.keyword_search(coll, ["alpha"], k=10)) == ["a"]
    assert keys_of(store, coll, store.keyword_search(coll, ["zeta"], k=10)) == ["gone"]
    assert store.keyword_search(coll, ["gamma"], k=10) == []
    assert store.keyword_search(coll, ["epsilon"], k=10) == []
    hits = store.vector_search(coll, EMB.embed_query("gamma delta"), k=10)
    texts = sorted(r.text for r in store.get_chunks(coll, [i for i, _ in hits]).values())
    assert texts == ["alpha beta", "zeta eta"]
    assert store.get_import_batch("b1", tenant="default").status == "rolled_back"
    with pytest.raises(Conflict):
        store.rollback_import("b1", tenant="default")


def test_rollback_refuses_later_writes_unless_forced(store: Store, coll: Collection) -> None:
    put(store, coll, "a", "alpha beta")
    put(store, coll, "gone", "zeta eta")
    _import(store, coll, "b2")
    put(store, coll, "n", "written later")
    with pytest.raises(Conflict, match="c/n"):
        store.rollback_import("b2", tenant="default")
    assert sorted(store.document_hashes(coll)) == ["a", "n"]
    report = store.rollback_import("b2", tenant="default", force=True)
    assert report.conflicts == ["c/n"]
    assert sorted(store.document_hashes(coll)) == ["a", "gone"]


def test_batches_are_listed_per_tenant(store: Store, coll: Collection) -> None:
    store.begin_import("x1", tenant="default", kind="jsonl", source="f", collections=[])
    store.begin_import("x2", tenant="acme", kind="jsonl", source="f", collections=[])
    done = store.finish_import(
        "x1", tenant="default", status="finished", counts={"added": 2}, collections=["c"]
    )
    assert (done.status, done.counts, done.collections) == ("finished", {"added": 2}, ["c"])
    assert [b.id for b in store.import_batches(tenant="default")] == ["x1"]
    assert [b.id for b in store.import_batches(tenant="acme")] == ["x2"]
    with pytest.raises(NotFound):
        store.get_import_batch("x2", tenant="default")
    with pytest.raises(Conflict, match="still running"):
        store.rollback_import("x2", tenant="acme")
