"""engram export / import: the portable format, round trips across backends, refusals.

The acceptance test: export(SQLite) -> import into the ``store`` backend -> export -> import
into SQLite -> export gives the same bytes three times (content, vectors, metadata, versions,
timestamps), and the imported store searches like the original.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import CollectionNotFound, Conflict, InvalidInput, ModelMismatch
from engram.memory.types import MemoryScope, MemoryWrite
from engram.store.contract import Store
from engram.store.sqlite import SQLiteStore
from engram.transfer import export_data, import_data
from engram.transfer import format as fmt

VOLATILE = ("created_at", "source", "engram_version")


def _settings(path: Path) -> Settings:
    return Settings.build(data_dir=path, embedding_model="hash", chunk_tokens=64, chunk_overlap=8)


def populate(db: engram.Engram, docs: Path) -> None:
    """Two tenants; versions, deletions, headings, pages of text, odd metadata; memories with
    every kind of history; conversations; analytics events."""
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "guide.md").write_text(
        "# Guide\n\nIntro paragraph about engram and its storage.\n\n"
        "## Keys\n\nRotate API keys every ninety days. " + "Keys are secrets. " * 30 + "\n\n"
        "## Backups\n\nBack up the database nightly; restore it to verify.\n"
    )
    (docs / "notes.txt").write_text("Plain notes: refunds take five days.\n")
    db.ingest(docs)
    (docs / "notes.txt").write_text("Plain notes: refunds take seven days now.\n")  # version 2
    db.ingest(docs)
    db.add(
        [
            {
                "id": "é-unicode",
                "text": "Café crème, naïve façade — 東京 ✓",
                "title": "Unicode ✓",
                "metadata": {"z": 1, "a": {"nested": [1, 2.5, None, True]}, "ratio": 0.1},
            },
            {"id": "big", "text": "Numbers everywhere. " * 5, "metadata": {"n": 10**15, "f": 1e-7}},
            {"id": "gone", "text": "This document will be deleted."},
            {"id": "A-upper", "text": "Upper case keys sort before lower case ones."},
        ],
        collection="kb",
    )
    db.add([{"id": "big", "text": "Numbers changed. " * 6, "metadata": {"n": 2}}], collection="kb")
    db.delete(["gone"], collection="kb")
    db.add([{"id": "acme-1", "text": "Acme private data."}], collection="kb", tenant="acme")

    m1 = db.memory.add("Prefers answers in French.", user_id="u1", metadata={"k": "v"})
    db.memory.update(m1.id, "Prefers answers in French, briefly.")
    db.memory.add("Prefers answers in French, briefly!", user_id="u1")  # merged
    m2 = db.memory.add("Lives in Lyon.", user_id="u1", agent_id="travel")
    db.memory.delete(m2.id)
    db.memory.add("Has a cat named Tom.", user_id="u2", tenant="acme")
    conv = db.memory.create_conversation("u1", title="Support", metadata={"channel": "web"})
    db.memory.append(conv.id, "user", "How long do refunds take?")
    db.memory.append(conv.id, "assistant", "Seven days.", metadata={"cited": ["notes.txt"]})
    db.memory.create_conversation("u2", tenant="acme")
    db.store.record_event(
        "default", "search", query="Refund  Delay", result_count=2, latency_ms=12.5
    )
    db.store.record_event("default", "click", user_id="u1", data={"rank": 1})
    db.store.record_event("acme", "search", query="cat", result_count=0, latency_ms=3.0)


@pytest.fixture
def source(tmp_path: Path) -> engram.Engram:
    db = engram.open(settings=_settings(tmp_path / "source"))
    populate(db, tmp_path / "docs")
    yield db
    db.close()


def read_export(path: Path) -> tuple[dict[str, bytes], dict]:
    """Every data file's bytes, and the manifest without what legitimately differs."""
    files = {
        f.relative_to(path).as_posix(): f.read_bytes()
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name != fmt.MANIFEST
    }
    manifest = json.loads((path / fmt.MANIFEST).read_text())
    for key in VOLATILE:
        manifest.pop(key)
    return files, manifest


def search_keys(db: engram.Engram, query: str, **kw) -> list[tuple[str, int, float]]:
    hits = db.search(query, collection="kb", k=5, **kw).results
    return [(h.document_key, h.version, round(h.score, 5)) for h in hits]


# -- the acceptance test ----------------------------------------------------------------------
def test_round_trip_through_every_backend_is_identical(
    source: engram.Engram, store: Store, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    report = export_data(source.store, first)
    assert report.counts["collections"] == 3 and report.counts["documents"] == 6
    assert report.counts["memories"] == 3 and report.counts["messages"] == 2
    assert report.counts["events"] == 3

    imported = import_data(store, first)
    assert dict(imported.counts) == dict(report.counts)
    second = tmp_path / "second"
    export_data(store, second)

    back = SQLiteStore(tmp_path / "back.db", index_dir=tmp_path / "back-idx")
    try:
        import_data(back, second)
        third = tmp_path / "third"
        export_data(back, third)
    finally:
        back.close()

    files1, manifest1 = read_export(first)
    files2, manifest2 = read_export(second)
    files3, manifest3 = read_export(third)
    assert sorted(files1) == sorted(files2) == sorted(files3)
    for name in files1:
        assert files1[name] == files2[name] == files3[name], name
    assert manifest1 == manifest2 == manifest3

    # The imported store answers like the original: same versions, same ranking.
    copy = engram.Engram(source.settings, store=store)
    assert copy.versions("notes.txt") == source.versions("notes.txt")
    assert [v.version for v in copy.versions("notes.txt")] == [1, 2]
    for mode in ("keyword", "vector", "hybrid"):
        assert search_keys(copy, "refunds days keys", mode=mode) == search_keys(
            source, "refunds days keys", mode=mode
        )
    assert copy.memory.history(source.memory.list("u1", include_deleted=True)[0].id)


def test_postgres_import_builds_the_vector_index_once(
    source: engram.Engram, pg_url: str, tmp_path: Path
) -> None:
    """The staging copy is loaded without its HNSW index, which is built at the end (valid,
    same definition as create_collection's, on the collection that bears the name)."""
    import psycopg

    from engram.store.postgres import PostgresStore

    export_data(source.store, tmp_path / "e")
    store = PostgresStore(pg_url, pool_size=2)
    try:
        reference = store.create_collection(
            "reference", model_id="hash-64", dimension=64, language="en", settings={}
        )
        import_data(store, tmp_path / "e")
        kb = store.get_collection("kb")
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'chunks_vec_%'"
        ).fetchall()
    defs = {name: (valid, definition) for name, valid, definition in rows}
    assert defs[f"chunks_vec_{kb.id}"][0] is True
    expected = (
        defs[f"chunks_vec_{reference.id}"][1]
        .replace(f"chunks_vec_{reference.id} ", f"chunks_vec_{kb.id} ")
        .replace(f"collection_id = {reference.id})", f"collection_id = {kb.id})")
    )
    assert defs[f"chunks_vec_{kb.id}"][1] == expected


def test_export_files_are_the_documented_format(source: engram.Engram, tmp_path: Path) -> None:
    export_data(source.store, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / fmt.MANIFEST).read_text())
    assert manifest["format"] == "engram-export" and manifest["format_version"] == 1
    assert manifest["source"] == {"backend": "sqlite"}
    kb = next(c for c in manifest["collections"] if c["name"] == "kb" and c["tenant"] == "default")
    assert kb["model_id"] == "hash-64" and kb["dimension"] == 64
    folder = tmp_path / "out" / kb["path"]
    keys = [
        json.loads(line)["key"] for line in (folder / "documents.jsonl").read_text().splitlines()
    ]
    assert keys == sorted(keys) == ["A-upper", "big", "é-unicode"]  # bytewise order
    big = json.loads((folder / "documents.jsonl").read_text().splitlines()[1])
    assert big["version"] == 2 and [v["version"] for v in big["versions"]] == [1, 2]
    assert "id" not in big  # backend ids are never exported
    vector = json.loads((folder / "embeddings.jsonl").read_text().splitlines()[0])
    stored = source.store.snapshot()
    with stored as snap:
        coll = next(c for c in snap.collections("default") if c.name == "kb")
        first_hash, blob = next(iter(snap.embeddings(coll)))
    assert vector["text_hash"] == first_hash
    assert fmt.vector_from_b64(vector["vector"], 64, "t").tobytes() == blob  # exact bytes
    docs_text = (folder / "documents.jsonl").read_text(encoding="utf-8")
    chunks_text = (folder / "chunks.jsonl").read_text(encoding="utf-8")
    assert "Unicode ✓" in docs_text and "Café crème" in chunks_text  # UTF-8, not escapes
    assert "\\u" not in docs_text + chunks_text
    assert "api_keys" not in json.dumps(manifest)


# -- refusals, replace, merge, atomicity -------------------------------------------------------
def test_existing_collection_is_refused_replaced_or_merged(
    source: engram.Engram, store: Store, tmp_path: Path
) -> None:
    export_data(source.store, tmp_path / "e")
    import_data(store, tmp_path / "e")
    with pytest.raises(Conflict, match="already exists") as err:
        import_data(store, tmp_path / "e")
    assert "--replace" in (err.value.hint or "")

    # Replace: the new collection takes the name atomically; the old one is gone entirely.
    kb = store.get_collection("kb")
    store.delete_documents(kb, ["big"])
    replaced = import_data(store, tmp_path / "e", mode="replace", memories=False, events=False)
    assert replaced.counts["collections"] == 3
    kb2 = store.get_collection("kb")
    assert kb2.id != kb.id and kb2.document_count == 3
    assert sorted(c.name for c in store.list_collections()) == ["default", "kb"]

    # Merge: only what the collection lacks is added; changed documents keep the target's.
    store.delete_documents(kb2, ["A-upper"])
    merged = import_data(store, tmp_path / "e", collections=["kb"], mode="merge")
    assert merged.counts["documents"] == 1
    assert merged.skipped["documents (unchanged)"] == 3  # kb of both tenants
    assert store.get_document(store.get_collection("kb"), "A-upper").version == 1


def test_failed_import_leaves_nothing_behind(
    source: engram.Engram, store: Store, tmp_path: Path
) -> None:
    export_data(source.store, tmp_path / "e", collections=["default"])
    path = json.loads((tmp_path / "e" / fmt.MANIFEST).read_text())["collections"][0]["path"]
    lines = (tmp_path / "e" / path / "embeddings.jsonl").read_bytes().splitlines(keepends=True)
    rewrite(tmp_path / "e", f"{path}/embeddings.jsonl", b"".join(lines[:-1]), embeddings=-1)
    with pytest.raises(InvalidInput, match="no vector for text hash"):
        import_data(store, tmp_path / "e")
    assert store.list_collections() == []  # neither the collection nor its staging copy

    # With --replace, a failed import leaves the existing collection untouched.
    good = tmp_path / "good"
    export_data(source.store, good, collections=["default"])
    import_data(store, good)
    before = store.document_hashes(store.get_collection("default"))
    chunks = (good / path / "chunks.jsonl").read_text().splitlines(keepends=True)
    chunks[-1] = chunks[-1].replace('"version":', '"version":99,"was":')
    rewrite(good, f"{path}/chunks.jsonl", "".join(chunks).encode())
    with pytest.raises(InvalidInput, match="chunk of version 99"):
        import_data(store, good, mode="replace")
    assert [c.name for c in store.list_collections()] == ["default"]
    assert store.document_hashes(store.get_collection("default")) == before


def rewrite(root: Path, name: str, data: bytes, **count_changes: int) -> None:
    """Replace a file of an export and fix the manifest, so only the import can notice."""
    import hashlib

    (root / name).write_bytes(data)
    manifest = json.loads((root / fmt.MANIFEST).read_text())
    manifest["files"][name] = {
        "bytes": len(data),
        "records": data.count(b"\n"),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    for entry in manifest["collections"]:
        if name.startswith(entry["path"] + "/"):
            for key, change in count_changes.items():
                entry[key] += change
    (root / fmt.MANIFEST).write_text(json.dumps(manifest))


def test_leftover_of_an_interrupted_import_is_removed(
    source: engram.Engram, tmp_path: Path
) -> None:
    export_data(source.store, tmp_path / "e", collections=["kb"])
    target = SQLiteStore(":memory:")
    target.create_collection(
        fmt.STAGING_PREFIX + "kb", model_id="hash-64", dimension=64, language="en", settings={}
    )
    report = import_data(target, tmp_path / "e", tenants=["default"])
    assert any("interrupted import" in n for n in report.notes)
    assert [c.name for c in target.list_collections()] == ["kb"]
    # Staging collections are never exported.
    target.create_collection(
        fmt.STAGING_PREFIX + "x", model_id="hash-64", dimension=64, language="en", settings={}
    )
    again = export_data(target, tmp_path / "again")
    assert again.counts["collections"] == 1


def test_merge_refuses_another_model(source: engram.Engram, tmp_path: Path) -> None:
    export_data(source.store, tmp_path / "e", collections=["kb"], tenants=["default"])
    target = SQLiteStore(":memory:")
    target.create_collection("kb", model_id="other", dimension=8, language="en", settings={})
    with pytest.raises(ModelMismatch, match="'other'"):
        import_data(target, tmp_path / "e", mode="merge")


def test_conversations_and_memories_conflicts(source: engram.Engram, tmp_path: Path) -> None:
    export_data(source.store, tmp_path / "e")
    target = SQLiteStore(":memory:")
    import_data(target, tmp_path / "e")
    with pytest.raises(Conflict, match="conversations or memories"):
        import_data(target, tmp_path / "e", collections=[], tenants=["acme"])

    merged = import_data(target, tmp_path / "e", mode="merge")
    assert merged.counts["conversations"] == 0 and merged.counts["memories"] == 0
    assert merged.skipped["memories (already present)"] == 3
    assert merged.skipped["events (tenant already has events)"] == 3  # events are not merged

    memory = target.list_memories(MemoryScope("default", "u1"))[0]
    target.update_memory(
        memory.id,
        tenant="default",
        write=MemoryWrite("changed", "h", np.ones(64, np.float32), "hash-64"),
    )
    replaced = import_data(target, tmp_path / "e", mode="replace", tenants=["default"])
    assert replaced.counts["memories"] == 2 and replaced.counts["conversations"] == 1
    assert target.get_memory(memory.id, tenant="default").content != "changed"
    assert [e.event for e in target.memory_history(memory.id, tenant="default")] == [
        e.event for e in source.memory.history(memory.id)
    ]


def test_selection_by_tenant_and_collection(source: engram.Engram, tmp_path: Path) -> None:
    report = export_data(source.store, tmp_path / "acme", tenants=["acme"])
    assert report.counts["collections"] == 1 and report.counts["memories"] == 1
    only = export_data(
        source.store, tmp_path / "kb", collections=["kb"], memories=False, events=False
    )
    assert only.counts["collections"] == 2 and not only.counts["memories"]  # kb of both tenants
    target = SQLiteStore(":memory:")
    import_data(target, tmp_path / "kb", tenants=["acme"])
    assert [c.name for c in target.list_collections(tenant="acme")] == ["kb"]
    assert target.list_collections() == []
    with pytest.raises(InvalidInput, match="tenant 'nobody'"):
        export_data(source.store, tmp_path / "x", tenants=["nobody"])
    with pytest.raises(CollectionNotFound):
        export_data(source.store, tmp_path / "y", collections=["nope"])
    with pytest.raises(CollectionNotFound, match="no collection named 'nope'"):
        import_data(target, tmp_path / "kb", collections=["nope"])


# -- the format is checked before anything is written -----------------------------------------
def test_bad_exports_are_refused_clearly(source: engram.Engram, tmp_path: Path) -> None:
    target = SQLiteStore(":memory:")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="no manifest.json"):
        import_data(target, empty)

    export_data(source.store, tmp_path / "e")
    manifest_path = tmp_path / "e" / fmt.MANIFEST
    manifest = json.loads(manifest_path.read_text())

    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(InvalidInput, match="format version 99") as err:
        import_data(target, tmp_path / "e")
    assert "upgrade engram" in (err.value.hint or "")

    manifest_path.write_text(json.dumps({**manifest, "format": "something-else"}))
    with pytest.raises(InvalidInput, match="not an engram export"):
        import_data(target, tmp_path / "e")

    escape = {**manifest["collections"][0], "path": "../../outside"}
    manifest_path.write_text(json.dumps({**manifest, "collections": [escape]}))
    with pytest.raises(InvalidInput, match="not a path inside the export"):
        import_data(target, tmp_path / "e")

    manifest_path.write_text(json.dumps(manifest))
    chunks = tmp_path / "e" / manifest["collections"][0]["path"] / "chunks.jsonl"
    chunks.write_bytes(chunks.read_bytes()[:-10])
    with pytest.raises(InvalidInput, match="does not match the manifest"):
        import_data(target, tmp_path / "e")
    assert target.list_collections() == [] and target.list_collections(tenant="acme") == []

    with pytest.raises(InvalidInput, match="neither an export folder"):
        import_data(target, manifest_path)


def test_bad_line_names_file_and_line(source: engram.Engram, tmp_path: Path) -> None:
    export_data(source.store, tmp_path / "e", collections=["default"])
    manifest = json.loads((tmp_path / "e" / fmt.MANIFEST).read_text())
    name = manifest["collections"][0]["path"] + "/documents.jsonl"
    lines = (tmp_path / "e" / name).read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"version":', '"version":"two","was":')
    rewrite(tmp_path / "e", name, "".join(lines).encode())
    with pytest.raises(InvalidInput, match=r"documents.jsonl:2: field 'version'"):
        import_data(SQLiteStore(":memory:"), tmp_path / "e")


def test_archives(source: engram.Engram, tmp_path: Path) -> None:
    export_data(source.store, tmp_path / "dir")
    for name in ("e.tar", "e.tar.gz"):
        report = export_data(source.store, tmp_path / name)
        assert tarfile.is_tarfile(tmp_path / name)
        assert report.bytes > 0
        target = SQLiteStore(":memory:")
        import_data(target, tmp_path / name)
        export_data(target, tmp_path / f"{name}.check")
        assert read_export(tmp_path / f"{name}.check") == read_export(tmp_path / "dir")
    with pytest.raises(InvalidInput, match="exists"):
        export_data(source.store, tmp_path / "e.tar")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        export_data(source.store, tmp_path / "dir")
    export_data(source.store, tmp_path / "dir", force=True)


def test_export_streams_a_large_collection(tmp_path: Path) -> None:
    """Memory stays flat: the peak Python allocation while exporting 1,500 documents is a
    small fraction of their size on disk. (The import's own buffers are bounded the same way;
    what grows with the collection there is the target store's in-memory BM25/HNSW index.)"""
    import tracemalloc

    db = engram.open(settings=_settings(tmp_path / "big"))
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    db.add(
        (
            {"id": f"doc-{i:05d}", "text": " ".join(words[(i + j) % 9] for j in range(120))}
            for i in range(1500)
        ),
        collection="big",
    )
    tracemalloc.start()
    try:
        report = export_data(db.store, tmp_path / "e", memories=False, events=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        db.close()
    assert report.counts["documents"] == 1500
    assert report.bytes > 3_000_000
    assert peak < report.bytes / 10, (peak, report.bytes)


# -- the command line --------------------------------------------------------------------------
def test_cli_export_import(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "64")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    assert run("--data-dir", src, "ingest", str(corpus)).exit_code == 0
    res = run("--data-dir", src, "export", str(tmp_path / "e.tar.gz"), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["counts"]["documents"] == 5 and out["bytes"] > 0 and "seconds" in out

    res = run("--data-dir", dst, "import", str(tmp_path / "e.tar.gz"))
    assert res.exit_code == 0, res.output
    assert "import: 1 collections, 5 documents, 7 chunks, 7 embeddings" in res.stdout

    res = run("--data-dir", dst, "import", str(tmp_path / "e.tar.gz"))
    assert res.exit_code == 1
    assert "Error: collection 'default' already exists" in res.output
    assert "Hint: pass --replace" in res.output
    res = run("--data-dir", dst, "import", str(tmp_path / "e.tar.gz"), "--replace", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["counts"]["documents"] == 5
    res = run("--data-dir", dst, "import", str(tmp_path / "e.tar.gz"), "--merge", "--replace")
    assert res.exit_code == 2 and "exclude each other" in res.output
    res = run("--data-dir", dst, "search", "parrots speech", "--json", "-k", "1")
    assert json.loads(res.output)["data"][0]["document"] == "sub/birds.html"

    res = run("--data-dir", dst, "import", str(tmp_path / "nothing"))
    assert res.exit_code == 1 and "no such file or directory" in res.output


# -- JSON Lines from other stores (mongoexport) -----------------------------------------------
MONGO = [
    '{"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "title": "Refunds", "body": "Refunds take'
    ' five days.", "created": {"$date": "2024-01-02T03:04:05Z"}, "stats": {"views":'
    ' {"$numberLong": "12"}, "score": {"$numberDouble": "4.5"}}, "tags": ["billing", "faq"]}',
    '{"_id": {"$oid": "65a1b2c3d4e5f60718293a4c"}, "title": "Keys", "body": "Rotate keys'
    ' yearly.", "created": {"$date": {"$numberLong": "1704164645123"}}, "stats": {"views":'
    ' {"$numberInt": "3"}}}',
    "this line is not JSON",
    '{"_id": {"$oid": "65a1b2c3d4e5f60718293a4d"}, "title": "", "body": ""}',
    "",
]


def test_jsonl_from_mongoexport(db: engram.Engram, tmp_path: Path) -> None:
    from engram.transfer.jsonl import import_jsonl

    path = tmp_path / "mongo.jsonl"
    path.write_text("\n".join(MONGO) + "\n")
    dry = import_jsonl(db, path, collection="faq", text_fields=["body"], dry_run=True)
    assert dry.counts["would add"] == 2 and dry.skipped["failed"] == 2
    reasons = [e["reason"] for e in dry.extra["errors"]]
    assert reasons[0].startswith("invalid record") and reasons[1].startswith("no text")
    assert [e["source"] for e in dry.extra["errors"]] == [f"{path}:3", f"{path}:4"]
    with pytest.raises(CollectionNotFound):
        db.collection("faq")  # a dry run writes nothing, not even the collection

    done = import_jsonl(db, path, collection="faq", text_fields=["body"])
    assert done.counts["added"] == 2 and done.skipped["failed"] == 2
    doc = db.document("65a1b2c3d4e5f60718293a4b", "faq")
    assert doc.title == "Refunds"
    assert doc.metadata == {
        "created": "2024-01-02T03:04:05Z",
        "stats": {"views": 12, "score": 4.5},
        "tags": ["billing", "faq"],
    }
    other = db.document("65a1b2c3d4e5f60718293a4c", "faq")
    assert other.metadata["created"] == "2024-01-02T03:04:05.123Z"
    found = db.documents("faq", where={"stats.views": {"$gte": 10}})
    assert [d.key for d in found] == ["65a1b2c3d4e5f60718293a4b"]

    MONGO_CHANGED = [MONGO[0].replace("five", "seven"), MONGO[1], '{"_id": "new", "body": "New."}']
    path.write_text("\n".join(MONGO_CHANGED))
    again = import_jsonl(db, path, collection="faq", text_fields=["body"], dry_run=True)
    assert dict(again.counts) == {"would add": 1, "would update": 1, "unchanged": 1}
    assert again.extra["would_update_keys"] == ["65a1b2c3d4e5f60718293a4b"]
    assert db.document("65a1b2c3d4e5f60718293a4b", "faq").version == 1  # nothing written

    only = import_jsonl(
        db, path, collection="faq2", text_fields=["body"], metadata_fields=["stats"]
    )
    assert only.counts["added"] == 3
    assert db.document("65a1b2c3d4e5f60718293a4c", "faq2").metadata == {"stats": {"views": 3}}


def test_cli_jsonl(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    path = tmp_path / "mongo.jsonl"
    path.write_text("\n".join(MONGO))
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "import", "--from-jsonl", str(path)]
    res = runner.invoke(cli, [*base, "-c", "faq", "--text-field", "body", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"] == {"would add": 2}
    res = runner.invoke(
        cli, [*base, "-c", "faq", "--text-field", "body", "--metadata-fields", "tags,created"]
    )
    assert res.exit_code == 0, res.output
    assert "added" in res.stdout and "failed: " in res.output
    res = runner.invoke(cli, [*base, "--text-field", "body"])
    assert res.exit_code == 2 and "needs one --collection" in res.output
    (tmp_path / "bad.jsonl").write_text("not json\n[1, 2]\n")
    bad = [
        "--data-dir",
        str(tmp_path / "data"),
        "import",
        "--from-jsonl",
        str(tmp_path / "bad.jsonl"),
    ]
    res = runner.invoke(cli, [*bad, "-c", "faq"])
    assert res.exit_code == 1  # every record failed
    assert "bad.jsonl:2: invalid record (expected an object, got list)" in res.output
