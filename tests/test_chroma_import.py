"""engram import --from-chroma: a real Chroma persistent directory, made by chromadb itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import engram
from engram.cli import cli
from engram.errors import InvalidInput
from engram.transfer.chroma import canonical_model, chroma_model, import_chroma

chromadb = pytest.importorskip("chromadb")

LONG = " ".join(
    f"Sentence number {i} talks about storage engines and their trade-offs." for i in range(40)
)


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_chroma(path: Path, *, metadata: dict | None = None, n: int = 300) -> dict[str, dict]:
    """A Chroma directory with a collection 'notes': ``n`` short records with random 64-d
    vectors (so a kept vector is told apart from engram's own), one long record, one
    without a document, and a second collection 'other'. Returns the records by id."""
    rng = np.random.default_rng(7)
    client = chromadb.PersistentClient(
        path=str(path), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    notes = client.create_collection("notes", embedding_function=None, metadata=metadata)
    records: dict[str, dict] = {}
    for i in range(n):
        records[f"n{i:04d}"] = {
            "document": f"Note {i}: the {['cat', 'dog', 'bird'][i % 3]} sleeps in room {i}.",
            "metadata": {
                "i": i,
                "kind": ["cat", "dog", "bird"][i % 3],
                "ok": i % 2 == 0,
                "w": i / 4,
            },
            "embedding": _unit(rng, 64),
        }
    records["long"] = {"document": LONG, "metadata": {"kind": "long"}, "embedding": _unit(rng, 64)}
    records["empty"] = {"document": None, "metadata": {"kind": "none"}, "embedding": _unit(rng, 64)}
    ids = list(records)
    notes.add(
        ids=ids,
        documents=[records[i]["document"] for i in ids],
        metadatas=[records[i]["metadata"] for i in ids],
        embeddings=np.stack([records[i]["embedding"] for i in ids]),
    )
    other = client.create_collection("other", embedding_function=None)
    other.add(ids=["o1"], documents=["Other collection."], embeddings=[_unit(rng, 64).tolist()])
    return records


def stored_vectors(db: engram.Engram, name: str) -> dict[str, bytes]:
    with db.store.snapshot() as snap:
        collection = next(c for c in snap.collections("default") if c.name == name)
        return dict(snap.embeddings(collection))


def chunk_hashes(db: engram.Engram, name: str) -> dict[str, list[str]]:
    with db.store.snapshot() as snap:
        collection = next(c for c in snap.collections("default") if c.name == name)
        return {d.key: [c.text_hash for c in d.chunks] for d in snap.documents(collection)}


def test_imports_every_record_and_keeps_vectors_of_the_same_model(
    db: engram.Engram, tmp_path: Path
) -> None:
    records = make_chroma(tmp_path / "chroma")
    report = import_chroma(db, tmp_path / "chroma", collections=["notes"], model="hash-64")
    assert report.counts["documents"] == 301  # every record with a text
    assert report.skipped["failed"] == 1  # 'empty' has no document
    assert any("empty" in n and "no document text" in n for n in report.notes)

    docs = {d.key: d for d in db.documents("notes", limit=1000)}
    assert set(docs) == set(records) - {"empty"}
    for key, doc in docs.items():
        assert doc.metadata == records[key]["metadata"]
        assert doc.source == f"chroma:notes/{key}"

    # Short records are one chunk carrying Chroma's exact vector; the long one is chunked
    # by engram and its pieces embedded by engram's model.
    vectors = stored_vectors(db, "notes")
    hashes = chunk_hashes(db, "notes")
    assert report.counts["vectors kept"] == 300
    for key in records:
        if key.startswith("n"):
            assert len(hashes[key]) == 1
            assert vectors[hashes[key][0]] == records[key]["embedding"].tobytes()
    assert len(hashes["long"]) > 1
    embedder = db.embedder()
    assert report.counts["chunks embedded"] == len(hashes["long"])
    long_vectors = [np.frombuffer(vectors[h], dtype=np.float32) for h in hashes["long"]]
    assert not any(np.allclose(v, records["long"]["embedding"]) for v in long_vectors)
    first = db.store.snapshot()
    with first as snap:
        coll = next(c for c in snap.collections("default") if c.name == "notes")
        chunk = next(d for d in snap.documents(coll) if d.key == "long").chunks[0]
    np.testing.assert_allclose(long_vectors[0], embedder.embed_batch([chunk.text])[0], atol=1e-6)

    # Searchable, filters work on the imported metadata, and a rerun changes nothing.
    hit = db.search("bird sleeps room 5", collection="notes", k=3, mode="keyword").results[0]
    assert hit.document_key == "n0005"
    dogs = db.documents("notes", where={"kind": "dog", "i": {"$lt": 10}}, limit=100)
    assert sorted(d.key for d in dogs) == ["n0001", "n0004", "n0007"]
    again = import_chroma(db, tmp_path / "chroma", collections=["notes"], model="hash-64")
    assert again.counts["documents"] == 0 and again.skipped["documents (unchanged)"] == 301


def test_vectors_of_another_model_are_replaced(db: engram.Engram, tmp_path: Path) -> None:
    records = make_chroma(tmp_path / "chroma", n=5)
    report = import_chroma(db, tmp_path / "chroma")  # no model given, none in the metadata
    assert report.counts["collections"] == 2
    assert report.counts.get("vectors kept", 0) == 0
    assert any("were not kept" in n and "--model" in n for n in report.notes)
    vectors = stored_vectors(db, "notes")
    hashes = chunk_hashes(db, "notes")
    embedder = db.embedder()
    own = embedder.embed_batch([records["n0001"]["document"]])[0]
    assert vectors[hashes["n0001"][0]] == own.tobytes()
    assert [d.key for d in db.documents("other")] == ["o1"]


def test_model_is_detected_from_collection_metadata(db: engram.Engram, tmp_path: Path) -> None:
    records = make_chroma(tmp_path / "chroma", metadata={"embedding_model": "hash-64"}, n=3)
    report = import_chroma(db, tmp_path / "chroma", collections=["notes"])
    assert report.counts["vectors kept"] == 3
    vectors = stored_vectors(db, "notes")
    assert vectors[chunk_hashes(db, "notes")["n0002"][0]] == records["n0002"]["embedding"].tobytes()


def test_model_names_and_configuration() -> None:
    assert canonical_model("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert canonical_model("BAAI/bge-small-en-v1.5") == "bge-small-en-v1.5"
    assert chroma_model({"model": "x"}, None) == "x"
    assert chroma_model(None, {"embedding_function": {"name": "default"}}) == "all-minilm-l6-v2"
    config = {"embedding_function": {"name": "sentence_transformer", "config": {"model_name": "m"}}}
    assert chroma_model({}, config) == "m"
    assert chroma_model({}, {"embedding_function": None}) is None


def test_bad_directories_and_names(db: engram.Engram, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a Chroma persistent directory"):
        import_chroma(db, tmp_path)
    make_chroma(tmp_path / "chroma", n=1)
    with pytest.raises(InvalidInput, match="no collection 'nope'") as err:
        import_chroma(db, tmp_path / "chroma", collections=["nope"])
    assert "notes" in (err.value.hint or "")
    client = chromadb.PersistentClient(
        path=str(tmp_path / "c8"), settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    small = client.create_collection("small", embedding_function=None)
    small.add(ids=["x"], documents=["tiny"], embeddings=[[0.5] * 8])
    with pytest.raises(InvalidInput, match="8-d vectors") as err:
        import_chroma(db, tmp_path / "c8", model="hash-64")
    assert "--model" in (err.value.hint or "")


def test_cli(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    make_chroma(tmp_path / "chroma", n=4)
    runner = CliRunner()
    data = str(tmp_path / "data")
    res = runner.invoke(
        cli,
        [
            "--data-dir",
            data,
            "import",
            "--from-chroma",
            str(tmp_path / "chroma"),
            "-c",
            "notes",
            "--model",
            "hash-64",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["counts"]["documents"] == 5 and out["counts"]["vectors kept"] == 4
    assert out["collections"][0]["records"] == 6
    res = runner.invoke(cli, ["--data-dir", data, "import", "--from-chroma", str(tmp_path)])
    assert res.exit_code == 1 and "not a Chroma persistent directory" in res.output
