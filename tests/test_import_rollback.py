"""Imports that can be undone: every import is a batch (what it added, updated, deleted, with
the state it replaced), and ``engram import --rollback BATCH`` puts the store back as it was:
documents, chunks and both indexes (searches return exactly what they returned before), with
no call to the embedding model. On both backends (the ``db`` fixture)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import engram
from engram.cli import cli
from engram.errors import CollectionNotFound, Conflict, NotFound
from engram.transfer.jsonl import import_jsonl

QUERIES = ["storage engines", "cats sleeping", "rollback of imports", "dogs", "zebra"]


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def long_text(topic: str, n: int = 30) -> str:
    return " ".join(f"Sentence {i} is about {topic} and more {topic}." for i in range(n))


ORIGINAL = [
    {"_id": "a", "title": "Alpha", "text": long_text("storage engines"), "lang": "en"},
    {"_id": "b", "title": "Beta", "text": "Cats sleeping in the sun all day.", "n": 1},
    {"_id": "c", "title": "Gamma", "text": "Dogs barking at the mailman.", "n": 2},
]
# The migration: a changed, b unchanged, c gone, d new.
MIGRATION = [
    {"_id": "a", "title": "Alpha 2", "text": long_text("rollback of imports"), "lang": "fr"},
    {"_id": "b", "title": "Beta", "text": "Cats sleeping in the sun all day.", "n": 1},
    {"_id": "d", "title": "Delta", "text": "A zebra crossing the road.", "n": 4},
]


def state(db: engram.Engram, collection: str = "kb", tenant: str = "default") -> dict[str, Any]:
    """Everything a reader can see of a collection: its documents (content, metadata, chunks
    as indexed) and the results of searches in every mode."""
    docs = {}
    for info in db.documents(collection, tenant=tenant, limit=1000):
        chunks = db.store.document_chunks(db.collection(collection, tenant=tenant), info.key)
        docs[info.key] = (
            info.title,
            info.content_hash,
            info.metadata,
            info.source,
            [(c.text, c.start, c.end, c.heading_path, c.page) for c in chunks],
        )
    # Results in rank order, except that equal scores are put in one order: the chunks
    # written back have new ids, by which ties are broken.
    searches = {
        (q, mode): sorted(
            (
                (-round(r.score, 5), r.document_key, r.title, r.text, json.dumps(r.metadata))
                for r in db.search(q, collection=collection, mode=mode, k=10, tenant=tenant).results
            ),
        )
        for q in QUERIES
        for mode in ("keyword", "vector", "hybrid")
    }
    return {"documents": docs, "searches": searches}


class Counting:
    """Counts the passages the embedding model is asked for."""

    def __init__(self, db: engram.Engram) -> None:
        self.passages = 0
        embedder = db.embedder()
        inner = embedder.embed_batch

        def embed_batch(texts: Sequence[str], *, kind: str = "passage") -> np.ndarray:
            if kind == "passage":
                self.passages += len(texts)
            return inner(texts, kind=kind)  # type: ignore[arg-type]

        embedder.embed_batch = embed_batch  # type: ignore[method-assign]


@pytest.fixture
def counting(db: engram.Engram) -> Iterator[Counting]:
    yield Counting(db)


def test_jsonl_sync_import_rolls_back_to_exactly_the_previous_state(
    db: engram.Engram, tmp_path: Path, counting: Counting
) -> None:
    import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb")
    before = state(db)
    versions_before = {k: db.document(k, "kb").version for k in ("a", "b", "c")}

    report = import_jsonl(
        db, write_jsonl(tmp_path / "v2.jsonl", MIGRATION), collection="kb", sync=True
    )
    batch_id = report.extra["batch"]
    assert (report.counts["added"], report.counts["updated"], report.counts["deleted"]) == (1, 1, 1)
    assert state(db) != before
    [batch] = [b for b in db.import_batches() if b.id == batch_id]
    assert batch.status == "finished" and batch.kind == "jsonl" and batch.collections == ["kb"]
    assert batch.counts == {"added": 1, "updated": 1, "deleted": 1}

    counting.passages = 0
    undone = db.rollback_import(batch_id)
    assert counting.passages == 0  # the previous chunks' vectors came back from the batch
    assert dict(undone.counts) == {"deleted": 1, "restored": 1, "re-created": 1}
    assert undone.batch.status == "rolled_back" and undone.batch.rolled_back_at
    assert state(db) == before  # documents, chunks, and every search: no stale chunk
    # The updated document came back as a new version; the deleted one was re-created.
    assert db.document("a", "kb").version == versions_before["a"] + 2
    assert db.document("b", "kb").version == versions_before["b"]

    with pytest.raises(Conflict, match="rolled back already"):
        db.rollback_import(batch_id)
    # Importing the file again works like the first time (and is a batch of its own).
    again = import_jsonl(db, tmp_path / "v2.jsonl", collection="kb", sync=True)
    assert (again.counts["added"], again.counts["updated"], again.counts["deleted"]) == (1, 1, 1)


def test_rollback_of_an_import_into_a_new_collection_removes_it(
    db: engram.Engram, tmp_path: Path
) -> None:
    report = import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="fresh")
    db.rollback_import(report.extra["batch"])
    with pytest.raises(CollectionNotFound):
        db.collection("fresh")


def test_later_writes_refuse_the_rollback_unless_forced(
    db: engram.Engram, tmp_path: Path, counting: Counting
) -> None:
    import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb")
    before = state(db)
    batch_id = import_jsonl(
        db, write_jsonl(tmp_path / "v2.jsonl", MIGRATION), collection="kb", sync=True
    ).extra["batch"]
    db.add([{"id": "a", "text": "Edited by hand after the import."}], collection="kb")
    db.add([{"id": "c", "text": "Re-created by hand after the import."}], collection="kb")
    edited = state(db)

    with pytest.raises(Conflict, match=r"2 record\(s\) were changed after the import: kb/a, kb/c"):
        db.rollback_import(batch_id)
    assert state(db) == edited  # nothing changed
    assert db.import_batches()[0].status == "finished"

    counting.passages = 0
    undone = db.rollback_import(batch_id, force=True)
    assert undone.conflicts == ["kb/a", "kb/c"]
    assert counting.passages == 0
    assert state(db) == before


def test_a_write_to_another_document_does_not_block_the_rollback(
    db: engram.Engram, tmp_path: Path
) -> None:
    import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb")
    batch_id = import_jsonl(
        db, write_jsonl(tmp_path / "v2.jsonl", MIGRATION), collection="kb"
    ).extra["batch"]
    db.add([{"id": "z", "text": "Unrelated, written later."}], collection="kb")
    db.rollback_import(batch_id)
    assert sorted(d.key for d in db.documents("kb")) == ["a", "b", "c", "z"]


def test_batches_are_tenant_scoped(db: engram.Engram, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "v1.jsonl", ORIGINAL)
    mine = import_jsonl(db, path, collection="kb", tenant="acme").extra["batch"]
    assert [b.id for b in db.import_batches(tenant="acme")] == [mine]
    assert db.import_batches(tenant="other") == []
    with pytest.raises(NotFound):
        db.rollback_import(mine, tenant="other")
    with pytest.raises(NotFound):
        db.store.get_import_batch(mine, tenant="other")
    db.rollback_import(mine, tenant="acme")
    with pytest.raises(CollectionNotFound):
        db.collection("kb", tenant="acme")


def test_dry_run_with_sync_counts_deletions(db: engram.Engram, tmp_path: Path) -> None:
    import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb")
    dry = import_jsonl(
        db, write_jsonl(tmp_path / "v2.jsonl", MIGRATION), collection="kb", sync=True, dry_run=True
    )
    assert dry.counts["would add"] == 1 and dry.counts["would update"] == 1
    assert dry.counts["would delete"] == 1 and dry.extra["would_delete_keys"] == ["c"]
    assert "batch" not in dry.extra and db.import_batches()[0].counts == {"added": 3}


def test_sync_deletes_nothing_when_a_line_failed(db: engram.Engram, tmp_path: Path) -> None:
    import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(MIGRATION[0]) + "\n{not json\n", encoding="utf-8")
    report = import_jsonl(db, path, collection="kb", sync=True)
    assert report.counts["deleted"] == 0
    assert sorted(d.key for d in db.documents("kb")) == ["a", "b", "c"]


def test_cli_batches_and_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "import"]
    v1 = write_jsonl(tmp_path / "v1.jsonl", ORIGINAL)
    v2 = write_jsonl(tmp_path / "v2.jsonl", MIGRATION)
    assert runner.invoke(cli, [*base, "--from-jsonl", str(v1), "-c", "kb"]).exit_code == 0
    res = runner.invoke(cli, [*base, "--from-jsonl", str(v2), "-c", "kb", "--sync", "--json"])
    assert res.exit_code == 0, res.output
    batch_id = json.loads(res.stdout)["batch"]

    res = runner.invoke(cli, [*base, "--batches", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [b["id"] for b in listed["data"]][0] == batch_id and listed["count"] == 2
    res = runner.invoke(cli, [*base, "--batches"])
    assert batch_id in res.stdout and "jsonl" in res.stdout

    with engram.open(tmp_path / "data", embedding_model="hash") as db:
        db.add([{"id": "a", "text": "Edited later."}], collection="kb")
    res = runner.invoke(cli, [*base, "--rollback", batch_id])
    assert res.exit_code == 1
    assert "changed after the import: kb/a" in res.output and "--force" in res.output
    res = runner.invoke(cli, [*base, "--rollback", batch_id, "--force", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"] == {"deleted": 1, "restored": 1, "re-created": 1}
    res = runner.invoke(cli, [*base, "--rollback", batch_id])
    assert res.exit_code == 1 and "rolled back already" in res.output
    res = runner.invoke(cli, [*base, "--rollback", "imp_nope"])
    assert res.exit_code == 1 and "no import batch" in res.output
    res = runner.invoke(cli, [*base, "--rollback", batch_id, "--from-jsonl", str(v1)])
    assert res.exit_code == 2


def test_export_import_rollback_removes_collections_conversations_and_memories(
    db: engram.Engram, tmp_path: Path
) -> None:
    from engram.transfer import export_data, import_data

    source = engram.open(
        tmp_path / "source", embedding_model="hash", chunk_tokens=64, chunk_overlap=8
    )
    source.add([{"id": "x", "text": "Exported text about storage engines."}], collection="kb")
    source.memory.add("Prefers tea.", user_id="u1")
    source.memory.create_conversation("u1", title="Hello")
    export_data(source.store, tmp_path / "export")
    source.close()

    db.add([{"id": "mine", "text": "Already here: cats sleeping."}], collection="other")
    mine = db.memory.add("Likes cats.", user_id="u9")
    before = state(db, "other")
    report = import_data(db.store, tmp_path / "export", mode="merge")
    [batch_id] = report.extra["batches"]
    batch = db.store.get_import_batch(batch_id, tenant="default")
    assert batch.kind == "export" and batch.counts == {
        "added": 1,
        "conversations": 1,
        "memories": 1,
    }
    assert len(db.memory.list(user_id="u1")) == 1

    undone = db.rollback_import(batch_id)
    assert undone.counts == {"deleted": 1, "conversations": 1, "memories": 1}
    with pytest.raises(CollectionNotFound):
        db.collection("kb")  # created by the import, empty again: removed
    assert db.memory.list(user_id="u1") == [] and db.memory.conversations("u1") == []
    assert [m.id for m in db.memory.list(user_id="u9")] == [mine.id]
    assert state(db, "other") == before


def test_replace_imports_are_marked_irreversible(db: engram.Engram, tmp_path: Path) -> None:
    from engram.transfer import export_data, import_data

    db.add([{"id": "x", "text": "Some text."}], collection="kb")
    export_data(db.store, tmp_path / "export")
    report = import_data(db.store, tmp_path / "export", mode="replace")
    [batch_id] = report.extra["batches"]
    with pytest.raises(Conflict, match="cannot be rolled back: it replaced collection 'kb'"):
        db.rollback_import(batch_id)


def test_chroma_import_rollback(db: engram.Engram, tmp_path: Path, counting: Counting) -> None:
    pytest.importorskip("chromadb")
    from test_chroma_import import make_chroma

    from engram.transfer.chroma import import_chroma

    make_chroma(tmp_path / "chroma", n=20)
    # "notes" exists with an older text of two records and a record of its own.
    db.add(
        [
            {"id": "n0001", "text": "An older note about dogs.", "metadata": {"old": True}},
            {"id": "n0002", "text": "Another older note."},
            {"id": "own", "text": "A record only engram has: storage engines."},
        ],
        collection="notes",
    )
    before = state(db, "notes")
    report = import_chroma(db, tmp_path / "chroma", model="hash-64")
    batch = db.store.get_import_batch(report.extra["batch"], tenant="default")
    assert batch.kind == "chroma" and sorted(batch.collections) == ["notes", "other"]
    assert batch.counts == {"added": 20, "updated": 2}  # 19 + long in notes, 1 in other

    counting.passages = 0
    undone = db.rollback_import(batch.id)
    assert counting.passages == 0
    assert undone.counts == {"deleted": 20, "restored": 2}
    assert state(db, "notes") == before
    with pytest.raises(CollectionNotFound):
        db.collection("other")


def test_http_lists_and_rolls_back_batches(tmp_path: Path) -> None:
    """GET /v1/admin/imports and POST /v1/admin/imports/{id}:rollback (admin scope, the
    caller's tenant only), as engram import --batches / --rollback."""
    from fastapi.testclient import TestClient

    from engram.config import Settings
    from engram.server.app import create_app

    settings = Settings.build(data_dir=tmp_path / "d", embedding_model="hash", chunk_tokens=64)
    with engram.open(settings=settings) as db:
        batch = import_jsonl(
            db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection="kb", tenant="acme"
        ).extra["batch"]
        keys = {
            name: db.create_key(tenant=tenant, scopes=scopes)[1]
            for name, tenant, scopes in (
                ("admin", "acme", ["admin"]),
                ("reader", "acme", ["read"]),
                ("other", "globex", ["admin"]),
            )
        }
    with TestClient(create_app(settings)) as client:

        def call(method: str, url: str, who: str) -> Any:
            return client.request(method, url, headers={"Authorization": f"Bearer {keys[who]}"})

        listed = call("GET", "/v1/admin/imports", "admin").json()
        assert [b["id"] for b in listed["data"]] == [batch] and listed["count"] == 1
        assert listed["data"][0]["status"] == "finished"
        assert call("GET", "/v1/admin/imports", "other").json()["count"] == 0
        assert call("GET", "/v1/admin/imports", "reader").status_code == 403
        url = f"/v1/admin/imports/{batch}:rollback"
        assert call("POST", url, "other").status_code == 404
        done = call("POST", url, "admin")
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["batch"]["status"] == "rolled_back" and body["counts"] == {"deleted": 3}
        again = call("POST", url, "admin")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        assert call("GET", "/v1/collections/kb", "admin").status_code == 404


def test_a_rollback_racing_writers_of_the_same_documents_and_texts(
    db: engram.Engram, tmp_path: Path
) -> None:
    """Writers rewriting a batch's documents with the very texts the rollback puts back (the
    same embeddings) while it runs: each side waits for the other, never in a cycle (on
    PostgreSQL a deadlock would abort one of them), and the rollback's documents end whole."""
    import threading

    failures: list[BaseException] = []
    for round_ in range(3):
        collection = f"race{round_}"
        import_jsonl(db, write_jsonl(tmp_path / "v1.jsonl", ORIGINAL), collection=collection)
        batch_id = import_jsonl(
            db, write_jsonl(tmp_path / "v2.jsonl", MIGRATION), collection=collection, sync=True
        ).extra["batch"]
        start = threading.Barrier(3)

        def write(
            key: str,
            source: dict[str, Any],
            collection: str = collection,
            start: threading.Barrier = start,
        ) -> None:
            try:
                start.wait()
                for _ in range(5):
                    db.add([{"id": key, "text": source["text"]}], collection=collection)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [
            threading.Thread(target=write, args=("a", ORIGINAL[2])),  # c's text into a
            threading.Thread(target=write, args=("copy", ORIGINAL[0])),  # a's text, elsewhere
        ]
        for t in threads:
            t.start()
        start.wait()
        try:
            db.rollback_import(batch_id, force=True)
        finally:
            for t in threads:
                t.join(timeout=60)
        assert not failures, failures
        coll = db.collection(collection)
        for info in db.documents(collection, limit=100):
            chunks = db.store.document_chunks(coll, info.key)
            assert chunks and all(c.version == info.version for c in chunks), info.key
        assert db.document("c", collection).title == "Gamma"  # re-created by the rollback
