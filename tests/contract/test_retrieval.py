"""Contract: keyword and vector retrieval, filters, spelling candidates (RetrievalStore), on
every backend."""

from __future__ import annotations

import numpy as np
import pytest

from contract.kit import EMB, keys_of, put
from engram.search.filters import matches, normalize_where
from engram.store.contract import Store
from engram.store.records import ChunkWrite, DocumentWrite
from engram.types import Collection


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
    assert store.keyword_chunks(coll) == 3  # BM25's N
    assert store.term_frequencies(coll, ["cat", "bark", "owl"]) == {"cat": 2, "bark": 1, "owl": 0}
    put(store, coll, "dogs", "dogs bark")  # a new version replaces the chunk
    assert store.keyword_chunks(coll) == 3


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
        ({"$or": [{"year": 2021}, {"date": {"$exists": True}}]}, ["a", "c"]),
        ({"$or": [{"year": {"$gte": 2020}}, {"field": "biology"}], "year": {"$lt": 2020}}, ["b"]),
        ({"$not": {"field": "physics"}}, ["b", "c"]),  # a missing field is not "physics"
        ({"$not": {"$or": [{"year": 2021}, {"year": 2019}]}}, ["c"]),
        ({"field": {"$contains": "SICS"}}, ["a"]),  # ASCII case ignored
        ({"field": {"$contains": "o"}}, ["b"]),
        ({"year": {"$contains": "20"}}, []),  # strings only
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
    # The same filter evaluated in Python (agent state's filters) agrees with the SQL.
    records = {
        "a": {"year": 2021, "field": "physics", "tags": {"kind": "review"}},
        "b": {"year": 2019, "field": "biology"},
        "c": {"date": "2024-05-01"},
    }
    python = sorted(k for k, meta in records.items() if matches(normalize_where(where), meta))
    assert kw == vec == docs == python == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"$keys": ["a", "c"]}, ["a", "c"]),
        ({"$keys": ["c", "nope"], "year": 2021}, []),
        ({"$keys": ["a", "b"], "year": {"$gte": 2020}}, ["a"]),
        ({"$or": [{"$keys": ["b"]}, {"year": 2021}]}, ["a", "b"]),
        ({"$not": {"$keys": ["a"]}}, ["b", "c"]),
        ({"$keys": []}, []),
    ],
)
def test_key_filters(store: Store, coll: Collection, where: dict, expected: list[str]) -> None:
    """``$keys`` narrows a search to documents by key (conversation recall narrows a user's
    index with it), alone or combined with metadata conditions."""
    put(store, coll, "a", "common text one", metadata={"year": 2021})
    put(store, coll, "b", "common text two", metadata={"year": 2019})
    put(store, coll, "c", "common text three")
    kw = sorted(keys_of(store, coll, store.keyword_search(coll, ["common"], k=10, where=where)))
    vec = sorted(
        keys_of(
            store,
            coll,
            store.vector_search(coll, EMB.embed_query("common text"), k=10, where=where),
        )
    )
    assert kw == vec == expected


def test_key_filters_are_checked() -> None:
    from engram.errors import InvalidInput

    for bad in ({"$keys": "a"}, {"$keys": [1]}, {"$keys": [""]}):
        with pytest.raises(InvalidInput, match=r"\$keys"):
            normalize_where(bad)


def test_numeric_filters_accept_numbers_stored_as_text(store: Store, coll: Collection) -> None:
    put(store, coll, "csv", "row text", metadata={"year": "2024"})
    put(store, coll, "json", "row text", metadata={"year": 2019})
    put(store, coll, "junk", "row text", metadata={"year": "n/a"})
    found = lambda where: sorted(d.key for d in store.list_documents(coll, where=where))  # noqa: E731
    assert found({"year": {"$gte": 2020}}) == ["csv"]
    assert found({"year": {"$lt": 2020}}) == ["json"]
    assert found({"year": {"$gt": 0}}) == ["csv", "json"]


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


def test_complete_terms_by_prefix(store: Store, coll: Collection) -> None:
    """Autocompletion's terms: by prefix (several at once, each a range), most frequent first,
    ties in code point order, live terms only, with texts of chunks holding each."""
    put(store, coll, "a", "telework rules", "telework and telephone", "teleport")
    put(store, coll, "b", "telework at home")
    put(store, coll, "c", "telegram")
    found = store.complete_terms(coll, ["tele"], limit=10, samples=2)
    assert [(t.term, t.df) for t in found] == [
        ("telework", 3), ("telegram", 1), ("telephon", 1), ("teleport", 1)
    ]  # fmt: skip
    assert len(found[0].texts) == 2 and all("telework" in t for t in found[0].texts)
    assert found[1].texts == ["telegram"]
    again = store.complete_terms(coll, ["tele"], limit=10, samples=2, known={"telework"})
    assert [(t.term, t.df) for t in again] == [(t.term, t.df) for t in found]
    assert again[0].texts in ([], found[0].texts) and again[1].texts == ["telegram"]
    assert [t.term for t in store.complete_terms(coll, ["tele"], limit=2, samples=0)] == [
        "telework",
        "telegram",
    ]
    several = store.complete_terms(coll, ["telep", "rul", "zz"], limit=10, samples=0)
    assert [t.term for t in several] == ["rule", "telephon", "teleport"]
    exact = store.complete_terms(coll, ["zz"], limit=10, samples=0, exact=["home", "hom", "x"])
    assert [(t.term, t.df) for t in exact] == [("home", 1)]
    store.delete_documents(coll, ["c"])
    assert "telegram" not in [t.term for t in store.complete_terms(coll, ["t"], limit=9, samples=0)]
    put(store, coll, "d", "home office", title="Home")
    put(store, coll, "e", "home sweet home", title="Home")
    assert store.document_titles(coll) == {"a": 1, "b": 1, "Home": 2}  # the key, by default
