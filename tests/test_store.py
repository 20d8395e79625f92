"""The store contract, run unchanged on every backend (see the ``store`` fixture)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engram.errors import (
    CollectionNotFound,
    Conflict,
    DocumentNotFound,
    InvalidInput,
    MigrationError,
)
from engram.providers.embedders.fake import HashEmbedder
from engram.search.analyzer import get_analyzer
from engram.store.base import ChunkWrite, DocumentWrite, Store
from engram.store.sqlite import SQLiteStore
from engram.types import Collection

EMB = HashEmbedder(dimension=32)
AN = get_analyzer("en")


def make_doc(
    key: str, *texts: str, metadata: dict | None = None, title: str = ""
) -> tuple[DocumentWrite, dict]:
    chunks, vectors = [], {}
    pos = 0
    for i, text in enumerate(texts):
        h = hashlib.sha256(text.encode()).hexdigest()[:32]
        chunks.append(ChunkWrite(i, text, pos, pos + len(text), h, " ".join(AN.terms(text))))
        vectors[h] = EMB.embed_batch([text])[0]
        pos += len(text) + 1
    content = hashlib.sha256("|".join(texts).encode()).hexdigest()
    return DocumentWrite(key, title or key, content, chunks, metadata or {}), vectors


def put(store: Store, coll: Collection, key: str, *texts: str, **kw) -> None:
    doc, vecs = make_doc(key, *texts, **kw)
    store.write_documents(coll, [doc], vecs)


@pytest.fixture
def coll(store: Store) -> Collection:
    return store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )


def keys_of(store: Store, coll: Collection, hits: list[tuple[int, float]]) -> list[str]:
    records = store.get_chunks(coll, [i for i, _ in hits])
    return [records[i].document_key for i, _ in hits]


def test_collections_crud(store: Store) -> None:
    c = store.create_collection("a", model_id="m", dimension=4, language="fr", settings={"x": 1})
    assert (c.name, c.model_id, c.dimension, c.language, c.settings) == (
        "a",
        "m",
        4,
        "fr",
        {"x": 1},
    )
    with pytest.raises(Conflict):
        store.create_collection("a", model_id="m", dimension=4, language="en", settings={})
    assert [x.name for x in store.list_collections()] == ["a"]
    store.delete_collection("a")
    with pytest.raises(CollectionNotFound):
        store.get_collection("a")


def test_write_search_and_fetch(store: Store, coll: Collection) -> None:
    put(store, coll, "cats", "cats purr and sleep", "cats chase mice")
    put(store, coll, "dogs", "dogs bark at the mailman")
    hits = store.keyword_search(coll, ["cat"], k=10)
    assert keys_of(store, coll, hits) == ["cats", "cats"]
    assert all(score > 0 for _, score in hits)
    vec = EMB.embed_query("dogs bark")
    assert keys_of(store, coll, store.vector_search(coll, vec, k=1)) == ["dogs"]
    doc = store.get_document(coll, "cats")
    assert (doc.version, doc.chunk_count) == (1, 2)
    assert store.get_collection("c").chunk_count == 3


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


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"year": 2021}, ["a"]),
        ({"year": "2021"}, ["a"]),
        ({"field": {"$ne": "physics"}}, ["b", "c"]),
        ({"field": {"$in": ["physics", "biology"]}}, ["a", "b"]),
        ({"year": {"$gte": 2020}}, ["a"]),
        ({"year": {"$lt": 2021}}, ["b"]),
        ({"date": {"$gte": "2024-01-01", "$lt": "2025-01-01"}}, ["c"]),
        ({"field": {"$exists": False}}, ["c"]),
        ({"field": {"$exists": True}, "year": {"$lte": 2019}}, ["b"]),
        ({"tags.kind": "review"}, ["a"]),
    ],
)
def test_filters(store: Store, coll: Collection, where: dict, expected: list[str]) -> None:
    put(
        store,
        coll,
        "a",
        "common text one",
        metadata={"year": 2021, "field": "physics", "tags": {"kind": "review"}},
    )
    put(store, coll, "b", "common text two", metadata={"year": 2019, "field": "biology"})
    put(store, coll, "c", "common text three", metadata={"date": "2024-05-01"})
    kw = sorted(keys_of(store, coll, store.keyword_search(coll, ["common"], k=10, where=where)))
    vec = sorted(
        keys_of(
            store,
            coll,
            store.vector_search(coll, EMB.embed_query("common text"), k=10, where=where),
        )
    )
    docs = sorted(d.key for d in store.list_documents(coll, where=where))
    assert kw == vec == docs == expected


def test_bad_vector_dimension(store: Store, coll: Collection) -> None:
    with pytest.raises(InvalidInput):
        store.vector_search(coll, np.ones(7, dtype=np.float32), k=3)
    doc, _ = make_doc("x", "text")
    with pytest.raises(InvalidInput):
        store.write_documents(coll, [doc], {doc.chunks[0].text_hash: np.ones(5, dtype=np.float32)})


def test_vector_index_catches_up_and_rebuilds(tmp_path: Path) -> None:
    path, index_dir = tmp_path / "e.db", tmp_path / "vectors"
    s1 = SQLiteStore(path, index_dir=index_dir)
    c = s1.create_collection("c", model_id=EMB.model_id, dimension=32, language="en", settings={})
    put(s1, c, "a", "apples and pears")
    s1.close()  # saves the index file and prunes the log
    s2 = SQLiteStore(path, index_dir=index_dir)
    put(s2, c, "b", "bananas and kiwis")  # s2 appends to the log, and is killed without saving
    s2._conn.close()
    for lost in index_dir.glob(f"{c.id}.*.hnsw"):  # and the index file is lost too
        lost.unlink()
    s3 = SQLiteStore(path, index_dir=index_dir)
    hits = s3.vector_search(c, EMB.embed_query("bananas and kiwis"), k=2)
    assert sorted(keys_of(s3, c, hits)) == ["a", "b"]
    s3.close()


def test_migrations_are_recorded_and_hash_checked(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    SQLiteStore(path).close()
    SQLiteStore(path).close()  # re-opening applies nothing twice
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
    conn.execute("UPDATE schema_migrations SET sha256 = 'tampered' WHERE version = 1")
    conn.commit()
    conn.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        SQLiteStore(path)


def test_numeric_filters_accept_numbers_stored_as_text(store: Store, coll: Collection) -> None:
    put(store, coll, "csv", "row text", metadata={"year": "2024"})
    put(store, coll, "json", "row text", metadata={"year": 2019})
    put(store, coll, "junk", "row text", metadata={"year": "n/a"})
    found = lambda where: sorted(d.key for d in store.list_documents(coll, where=where))  # noqa: E731
    assert found({"year": {"$gte": 2020}}) == ["csv"]
    assert found({"year": {"$lt": 2020}}) == ["json"]
    assert found({"year": {"$gt": 0}}) == ["csv", "json"]


def test_two_processes_share_one_data_directory(tmp_path: Path) -> None:
    """A second handle whose indexes are behind a log another handle pruned reloads the
    other's saved index files instead of missing the pruned changes."""
    path, index_dir = tmp_path / "e.db", tmp_path / "idx"
    writer = SQLiteStore(path, index_dir=index_dir)
    coll = writer.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
    put(writer, coll, "a", "alpha words")
    reader = SQLiteStore(path, index_dir=index_dir)
    assert keys_of(reader, coll, reader.keyword_search(coll, ["alpha"], k=5)) == [
        "a"
    ]  # reader at seq 1
    put(writer, coll, "b", "beta words")
    writer.delete_documents(coll, ["a"])
    writer.sync()  # saves files and prunes the log past the reader's position
    assert writer._read("SELECT count(*) FROM chunk_log")[0][0] == 0
    assert keys_of(reader, coll, reader.keyword_search(coll, ["word"], k=5)) == ["b"]
    hits = reader.vector_search(coll, EMB.embed_query("beta words"), k=5)
    assert keys_of(reader, coll, hits) == ["b"]
    writer.close()
    reader.close()


def test_collections_are_scoped_by_tenant(store: Store) -> None:
    a = store.create_collection(
        "kb", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="acme"
    )
    b = store.create_collection(
        "kb", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="globex"
    )
    assert a.id != b.id and (a.tenant, b.tenant) == ("acme", "globex")
    put(store, a, "secret", "acme launch plans")
    assert [c.name for c in store.list_collections(tenant="acme")] == ["kb"]
    assert store.list_collections(tenant="initech") == []
    with pytest.raises(CollectionNotFound):
        store.get_collection("kb", tenant="initech")
    other = store.get_collection("kb", tenant="globex")
    assert store.keyword_search(other, ["launch"], k=5) == []
    assert store.list_documents(other) == []
    store.delete_collection("kb", tenant="globex")
    acme = store.get_collection("kb", tenant="acme")
    assert keys_of(store, acme, store.keyword_search(acme, ["launch"], k=5)) == ["secret"]


def test_spelling_candidates_hold_every_neighbour(store: Store, coll: Collection) -> None:
    """Typo candidates: every indexed term within reach is offered (the caller measures the
    distance), terms of deleted documents are not; LIKE's wildcards in terms change nothing."""
    from rapidfuzz.distance import Levenshtein

    from engram.search.fuzzy import closest

    words = [
        "kitten",
        "kitchen",
        "mitten",
        "bitten",
        "sitting",
        "kittens",
        "written",
        "smitten",
        "configuration",
        "configurations",
        "conflagration",
        "figuration",
        "constellation",
        "snake_case",
        "snakescase",
        "snake%case",
        "walkd",
        "walke",
        "walka",
        "walkb",
        "walkc",
    ]
    # Stored as-is (a chunk's terms are the analyzer's business, not the store's).
    doc = DocumentWrite("w", "w", "h", [ChunkWrite(0, "x", 0, 1, "h0", " ".join(words))], {})
    store.write_documents(coll, [doc], {"h0": EMB.embed_batch(["x"])[0]})
    put(store, coll, "gone", "kittxn")
    store.delete_documents(coll, ["gone"])
    vocab = store.vocabulary(coll)
    assert "kittxn" not in vocab
    queries = ["kiten", "kittxn", "confguration", "snake_cose", "snakexcase", "walkx", "zzzz"]
    found = store.spelling_candidates(coll, queries)
    assert set(found) == set(queries)
    for query in queries:
        edits = 1 if len(query) <= 7 else 2
        near = {t for t in vocab if Levenshtein.distance(query, t) <= edits}
        assert near <= set(found[query]), query
        assert "kittxn" not in found[query]
    assert closest("kiten", found["kiten"]) == ["kitten"]
    near = closest("snake_cose", found["snake_cose"])
    assert near == ["snake_case", "snake%case", "snakescase"]
    assert closest("walkx", found["walkx"]) == ["walka", "walkb", "walkc"]
    assert closest("zzzz", found["zzzz"]) == []


def test_keyword_ties_at_the_cut_go_to_the_lowest_chunk_ids(store: Store, coll: Collection) -> None:
    """Equal scores straddling the k-th place: every backend keeps the same chunks."""
    rng = np.random.default_rng(3)
    for i in rng.permutation(60):  # ids in another order than keys
        put(store, coll, f"d{i:02d}", "identical words here", "other text")
    for i in range(5):
        put(store, coll, f"top{i}", "identical identical words")
    everything = store.keyword_search(coll, ["ident"], k=100)
    assert len({score for _, score in everything}) == 2
    for k in (6, 7, 20, 33):
        hits = store.keyword_search(coll, ["ident"], k=k)
        expected = sorted(everything, key=lambda h: (-h[1], h[0]))[:k]
        assert hits == expected, k
