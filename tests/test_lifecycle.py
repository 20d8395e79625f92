"""Ingest → update → delete → sync, with no stale chunk left in either index."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from dbtools import raw_rows

import engram
from engram.config import Settings
from engram.store.sqlite import SQLiteStore


def index_state(db: engram.Engram, collection: str = "default") -> dict[str, set[str]]:
    """Which document keys each index can reach: keyword (BM25), vector (HNSW)."""
    coll = db.collection(collection)
    store = db.store
    vec_hits = store.vector_search(coll, db.embedder().embed_query("anything"), k=10_000)
    keys = lambda ids: {r.document_key for r in store.get_chunks(coll, ids).values()}  # noqa: E731
    rows = raw_rows(db, "SELECT count(*) FROM chunks WHERE collection_id = ?", (coll.id,))[0][0]
    if isinstance(store, SQLiteStore):
        indexes = store._catch_up(coll)
        kw_ids = list(indexes.keywords._slot_of)
        sizes = (len(kw_ids), len(indexes.keywords), len(indexes.vectors), len(vec_hits))
    else:  # PostgreSQL: the postings table, and the BM25 statistics kept with the collection
        kw_ids = [
            i
            for (i,) in raw_rows(
                db, "SELECT DISTINCT chunk_id FROM postings WHERE collection_id = ?", (coll.id,)
            )
        ]
        stats = raw_rows(db, "SELECT chunk_count FROM collections WHERE id = ?", (coll.id,))
        sizes = (len(kw_ids), stats[0][0], len(vec_hits), len(vec_hits))
    assert sizes == (rows,) * 4, f"an index disagrees with the chunks table: {sizes} vs {rows}"
    return {"keyword": keys(kw_ids), "vector": keys([i for i, _ in vec_hits])}


def test_ingest_update_delete_sync(db: engram.Engram, corpus: Path) -> None:
    first = db.ingest(corpus)
    assert (first.added, first.failed) == (5, 0)
    assert first.chunks_embedded > 0
    keys = {"cats.md", "dogs.txt", "sub/birds.html", "r1", "r2"}
    assert index_state(db) == {"keyword": keys, "vector": keys}

    again = db.ingest(corpus)
    assert (again.unchanged, again.added, again.updated, again.chunks_embedded) == (5, 0, 0, 0)

    # Change one paragraph of a two-chunk document: one new version, only the changed chunk
    # is embedded, and the old text is unreachable from both indexes.
    cats = corpus / "cats.md"
    cats.write_text(cats.read_text().replace("twice a day", "three times a day with wet food"))
    upd = db.ingest(corpus)
    assert (upd.updated, upd.unchanged) == (1, 4)
    assert db.document("cats.md").version == 2
    assert [v.version for v in db.versions("cats.md")] == [1, 2]
    assert upd.chunks_embedded >= 1 and upd.chunks_reused >= 1
    assert db.search("twice", mode="keyword").results == []
    assert db.search("wet food", mode="keyword").results[0].document_key == "cats.md"

    (corpus / "dogs.txt").unlink()
    plain = db.ingest(corpus)  # without --sync nothing is deleted
    assert plain.deleted == 0 and db.document("dogs.txt")
    synced = db.ingest(corpus, sync=True)
    assert synced.deleted == 1
    keys.discard("dogs.txt")
    assert index_state(db) == {"keyword": keys, "vector": keys}
    assert db.search("loyal companions", mode="keyword").results == []

    assert db.delete(["r1", "nope"]) == 1
    keys.discard("r1")
    assert index_state(db) == {"keyword": keys, "vector": keys}
    orphans = raw_rows(
        db,
        "SELECT count(*) FROM embeddings e WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = e.text_hash)"
        " AND NOT EXISTS (SELECT 1 FROM version_chunks v WHERE v.text_hash = e.text_hash)",
    )[0][0]
    # (A vector a kept past version uses stays, so that restoring it calls no model.)
    assert orphans == 0, "a deleted document left its vectors behind"


def test_sync_keeps_documents_whose_file_fails_to_parse(db: engram.Engram, corpus: Path) -> None:
    db.ingest(corpus)
    (corpus / "dogs.txt").write_bytes(b"\x00\x01\x02 binary garbage \xff\xfe" * 50)
    report = db.ingest(corpus, sync=True)
    assert report.failed == 1 and report.deleted == 0
    assert "dogs.txt" in report.errors[0][0]
    assert db.document("dogs.txt").version == 1  # the last good version is still searchable
    assert db.search("loyal", mode="keyword").results[0].document_key == "dogs.txt"


def test_sigkill_mid_ingest_leaves_a_consistent_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    corpus = tmp_path / "big.jsonl"
    with corpus.open("w") as fh:
        for i in range(3000):
            fh.write(
                f'{{"_id": "d{i}", "title": "doc {i}", "text": "word{i} common text number {i} of the corpus"}}\n'
            )
    script = textwrap.dedent(
        f"""
        import time, engram
        from engram.providers.embedders.fake import HashEmbedder
        slow = HashEmbedder.embed_batch
        def embed(self, texts, kind="passage"):
            time.sleep(0.2)  # a slow model, so the kill lands mid-ingest
            return slow(self, texts, kind=kind)
        HashEmbedder.embed_batch = embed
        db = engram.open({str(data)!r}, embedding_model="hash", embed_batch_size=16)
        db.ingest({str(corpus)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    db_path = data / "engram.db"
    deadline = time.time() + 60
    committed = 0
    while time.time() < deadline and committed < 300:
        time.sleep(0.1)
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=1) as conn:
                    committed = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < committed < 3000, "the kill should land mid-ingest"

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    # Every committed document is whole: its chunks and keyword rows are all there.
    assert (
        conn.execute(
            "SELECT count(*) FROM documents d WHERE (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
            " != (SELECT chunk_count FROM document_versions v WHERE v.document_id = d.id AND v.version = d.version)"
        ).fetchone()[0]
        == 0
    )
    conn.close()

    with engram.open(data, embedding_model="hash") as db:
        report = db.ingest(corpus)
        assert report.unchanged == docs and report.added == 3000 - docs and report.failed == 0
        assert db.collection().document_count == 3000
        index_state(db)  # vector index caught up with every chunk, none extra
        assert db.search("word2999", mode="keyword").results[0].document_key == "d2999"


def test_language_detection_for_new_collections(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add(
            [
                {
                    "id": "fr",
                    "text": "Les salariés peuvent travailler à distance, après accord de leur responsable.",
                }
            ],
            collection="fr",
        )
        db.add(
            [{"id": "en", "text": "Employees can work remotely after their manager agrees."}],
            collection="en",
        )
        assert db.collection("fr").language == "fr"
        assert db.collection("en").language == "en"
        # Accent folding + French stemming: "salarie" (no accent, singular) finds "salariés".
        assert db.search("salarie", collection="fr", mode="keyword").results[0].document_key == "fr"


def test_settings_from_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path / "env-dir"))
    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "99")
    s = Settings.build()
    assert s.data_dir == tmp_path / "env-dir" and s.chunk_tokens == 99


def test_tenants_never_see_each_other(db: engram.Engram, corpus: Path) -> None:
    db.ingest(corpus, tenant="acme")
    db.add([{"id": "g1", "text": "globex quarterly numbers"}], tenant="globex")
    assert db.search("parrots", tenant="acme", mode="keyword").results
    assert [c.name for c in db.collections(tenant="globex")] == ["default"]
    assert db.collection(tenant="globex").document_count == 1
    assert db.search("parrots", tenant="globex", mode="keyword").results == []
    assert db.search("quarterly", tenant="acme", mode="keyword").results == []
    assert db.delete(["sub/birds.html"], tenant="globex") == 0
    assert db.document("sub/birds.html", tenant="acme").version == 1


def test_adding_documents_reads_only_their_own_hashes(tmp_path: Path) -> None:
    """Re-ingest skips unchanged documents by content hash; an add looks up only the keys it
    brings (not every document of the collection), a sync reads them all to delete the rest."""
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add([{"id": f"d{i}", "text": f"document number {i}"} for i in range(300)])
        calls: list[object] = []
        real = db.store.document_hashes

        def spy(collection: object, *, keys: object = None) -> dict[str, str]:
            calls.append(keys)
            return real(collection, keys=keys)  # type: ignore[arg-type]

        db.store.document_hashes = spy  # type: ignore[method-assign]
        report = db.add([{"id": "d1", "text": "document number 1"}, {"id": "new", "text": "x"}])
        assert (report.unchanged, report.added) == (1, 1)
        assert calls == [["d1", "new"]]
        calls.clear()
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "a.txt").write_text("alpha")
        db.ingest([tmp_path / "docs"], collection="files", sync=True)
        assert calls == [None]
