"""Ranking code against oracles: BM25 vs a reference, fusion vs brute force, ANN vs exact."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from engram.search.ann import HnswParams, VectorIndex
from engram.search.fusion import auto_alpha, fuse
from engram.store.records import ChunkWrite, DocumentWrite
from engram.store.sqlite import SQLiteStore

WORDS = [f"w{i}" for i in range(60)]


def reference_bm25(
    docs: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 as written in Robertson & Zaragoza (2009) (and in SQLite FTS5's docs)."""
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    scores = []
    for doc in docs:
        s = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            if df == 0:
                continue
            idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
            f = doc.count(term)
            s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(s)
    return scores


def build_corpus(seed: int, n_docs: int = 120) -> list[list[str]]:
    rng = random.Random(seed)
    # Zipf-like word frequencies, varied lengths: a realistic spread of tf, df and |D|.
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return [rng.choices(WORDS, weights, k=rng.randint(3, 60)) for _ in range(n_docs)]


def _check_against_reference(store, coll, docs: dict[str, list[str]], rng: random.Random) -> None:
    keys = sorted(docs)
    corpus = [docs[k] for k in keys]
    for _ in range(20):
        query = rng.sample(WORDS, rng.randint(1, 4))
        if rng.random() < 0.5:  # a repeated word counts once per use (query-term frequency)
            query += rng.choices(query, k=rng.randint(1, 3))
        expected = reference_bm25(corpus, query)
        hits = store.keyword_search(coll, query, k=len(corpus))
        key_of = {
            cid: rec.document_key
            for cid, rec in store.get_chunks(coll, [c for c, _ in hits]).items()
        }
        got = {key_of[cid]: score for cid, score in hits}
        for key, score in zip(keys, expected):
            assert got.get(key, 0.0) == pytest.approx(score, rel=1e-5, abs=1e-6)  # float32 index
        # Ranking agrees with an independent implementation (rank_bm25) where idf > 0.
        if all(sum(t in d for d in corpus) < len(corpus) / 2 for t in query):
            okapi = BM25Okapi(corpus, k1=1.2, b=0.75).get_scores(query)
            assert np.allclose(okapi, expected)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bm25_matches_reference(seed: int, tmp_path: Path) -> None:
    """Exact BM25 after inserts, after deletions (tombstones, then compaction) and after a
    save/load round trip of the index file."""
    rng = random.Random(seed)
    docs = {f"d{i:03d}": d for i, d in enumerate(build_corpus(seed, 300))}
    store = SQLiteStore(tmp_path / "e.db", index_dir=tmp_path / "idx")
    coll = store.create_collection("c", model_id="m", dimension=2, language="none", settings={})
    vec = np.ones(2, dtype=np.float32) / math.sqrt(2)
    writes = [
        DocumentWrite(key, "", key, [ChunkWrite(0, " ".join(d), 0, 1, "v", " ".join(d))])
        for key, d in docs.items()
    ]
    store.write_documents(coll, writes, {"v": vec})
    _check_against_reference(store, coll, docs, rng)
    gone = sorted(docs)[::5]  # a few tombstones: statistics must already exclude them
    store.delete_documents(coll, gone)
    for key in gone:
        del docs[key]
    _check_against_reference(store, coll, docs, rng)
    gone = sorted(docs)[: len(docs) // 2]  # enough to trigger compaction on save
    store.delete_documents(coll, gone)
    for key in gone:
        del docs[key]
    store.close()
    reopened = SQLiteStore(tmp_path / "e.db", index_dir=tmp_path / "idx")
    assert reopened._indexes_for(coll).keywords.seq > 0, "the saved index file was not loaded"
    _check_against_reference(reopened, coll, docs, rng)
    reopened.close()


def test_exact_match_is_never_below_fuzzy(tmp_path: Path) -> None:
    import engram

    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add(
            [
                {"id": "exact", "text": "a kitten plays"},
                {"id": "near", "text": "a warm mitten"},
                {"id": "fuzzy-only", "text": "the kittens of kitteh"},
            ]
        )
        # "mitten" is in the index: it is searched as typed, never widened to "kitten".
        resp = db.search("mitten", mode="keyword")
        assert [r.document_key for r in resp.results] == ["near"]
        assert resp.expansions == {}
        # "kiten" is nowhere: it expands to close spellings, and the document matching the
        # intended word exactly comes first.
        typo = db.search("kiten", mode="keyword")
        assert typo.expansions == {"kiten": ["kitten"]}
        assert typo.results[0].document_key in ("exact", "fuzzy-only")
        assert {r.document_key for r in typo.results} == {"exact", "fuzzy-only"}


Leg = st.lists(
    st.tuples(st.integers(0, 40), st.floats(-5, 5)), max_size=25, unique_by=lambda t: t[0]
)


@settings(max_examples=200, deadline=None)
@given(Leg, Leg, st.floats(0, 1), st.sampled_from(["dbsf", "minmax", "rrf"]))
def test_fusion_matches_brute_force(keyword, vector, alpha, method) -> None:
    keyword = sorted(keyword, key=lambda t: -t[1])
    vector = sorted(vector, key=lambda t: -t[1])
    fused = fuse(keyword, vector, method=method, alpha=alpha, rrf_k=60)
    ids = {i for i, _ in keyword} | {i for i, _ in vector}
    assert {f.id for f in fused} == ids

    def norm(leg):
        if not leg:
            return {}
        scores = np.array([s for _, s in leg])
        if method == "dbsf":
            lo, hi = scores.mean() - 3 * scores.std(), scores.mean() + 3 * scores.std()
        else:
            lo, hi = scores.min(), scores.max()
        return {i: 1.0 if hi - lo < 1e-12 else (s - lo) / (hi - lo) for i, s in leg}

    kw_rank = {i: r for r, (i, _) in enumerate(keyword, 1)}
    vec_rank = {i: r for r, (i, _) in enumerate(vector, 1)}
    kn, vn = norm(keyword), norm(vector)
    for f in fused:
        if method != "rrf":
            want = alpha * vn.get(f.id, 0) + (1 - alpha) * kn.get(f.id, 0)
        else:
            want = (alpha / (60 + vec_rank[f.id]) if f.id in vec_rank else 0) + (
                (1 - alpha) / (60 + kw_rank[f.id]) if f.id in kw_rank else 0
            )
        assert f.score == pytest.approx(want)
    assert [f.score for f in fused] == sorted((f.score for f in fused), reverse=True)


def test_hnsw_recall_against_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, dim = 20_000, 96
    centers = rng.normal(size=(100, dim))
    x = (centers[rng.integers(0, 100, n)] + rng.normal(size=(n, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = VectorIndex(tmp_path / "i.hnsw", dim, HnswParams(exact_below=0))
    index.apply({i: x[i] for i in range(n)}, [], seq=1)
    queries = x[rng.choice(n, 200, replace=False)] + 0.1 * rng.normal(size=(200, dim)).astype(
        np.float32
    )
    recalls = []
    for q in queries:
        approx = {k for k, _ in index.search(q, 10)}
        exact = {k for k, _ in index.search(q, 10, exact=True)}
        recalls.append(len(approx & exact) / 10)
    assert np.mean(recalls) >= 0.95
    # The saved file round-trips with its watermark.
    index.save()
    again = VectorIndex(tmp_path / "i.hnsw", dim, HnswParams(exact_below=0))
    assert again.load() and again.seq == 1 and len(again) == n


def test_vector_index_survives_mass_deletion_and_reload(tmp_path: Path) -> None:
    """Mass deletion (which corrupted usearch 2.25's heap on save) then compaction, save and
    load: the index answers from live vectors only."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    index = VectorIndex(tmp_path / "i.hnsw", 8, HnswParams(exact_below=0))
    index.apply({i: x[i] for i in range(3000)}, [], seq=1)
    index.apply({}, list(range(0, 3000, 5)), seq=2)
    index.apply({}, [k for k in range(1, 1500) if k % 5], seq=3)  # triggers compaction
    live = [k for k in range(3000) if k % 5 and k >= 1500]
    assert len(index) == len(live)
    index.save()
    again = VectorIndex(tmp_path / "i.hnsw", 8, HnswParams(exact_below=0))
    assert again.load() and len(again) == len(live)
    hits = again.search(x[2001], 5)
    assert hits[0][0] == 2001 and all(k in set(live) for k, _ in hits)
    again.apply({}, [2001], seq=4)
    assert 2001 not in {k for k, _ in again.search(x[2001], 5)}


def test_like_patterns_catch_every_neighbour() -> None:
    """The pigeonhole filter the PostgreSQL backend asks the database for: any word within
    max_edits of a term matches one of the term's LIKE patterns."""
    import random
    import re
    import string

    from engram.search.fuzzy import like_patterns, max_edits, pieces

    def like(pattern: str, word: str) -> bool:  # letters only: no escapes to undo
        return re.fullmatch(".*".join(map(re.escape, pattern.split("%"))), word) is not None

    rng = random.Random(5)
    for _ in range(20_000):
        term = "".join(rng.choices(string.ascii_lowercase[:6], k=rng.randint(1, 14)))
        assert "".join(pieces(term)) == term
        word = term
        for _ in range(rng.randint(0, max_edits(term))):
            i = rng.randrange(len(word) + 1)
            op = rng.choice("ids")
            if op == "i":
                word = word[:i] + rng.choice("abcdefgh") + word[i:]
            elif i < len(word):
                word = word[:i] + (rng.choice("abcdefgh") if op == "s" else "") + word[i + 1 :]
        assert any(like(p, word) for p in like_patterns(term)), (term, word)
    assert like_patterns("ab_c%d") == ["ab\\_%", "%c\\%d"]


def test_a_repeated_query_word_weighs_once_per_use(tmp_path: Path) -> None:
    """Query-term frequency: "tea tea coffee" ranks the tea document above the coffee one,
    which "tea coffee" ties; through the searcher (analyzer, typo expansion included)."""
    import engram

    with engram.open(tmp_path / "d", embedding_model="hash") as db:
        db.add(
            [
                {"id": "tea", "text": "green tea from the hills"},
                {"id": "coffee", "text": "black coffee from the hills"},
                {"id": "other", "text": "a walk in the hills"},
            ]
        )
        tie = db.search("tea coffee", mode="keyword").data
        assert tie[0].score == pytest.approx(tie[1].score)
        for query in ("tea tea coffee", "tea teaa coffee"):  # a typo of a repeat counts too
            hits = db.search(query, mode="keyword").data
            assert [h.document for h in hits[:2]] == ["tea", "coffee"], query
            assert hits[0].score > hits[1].score


def test_a_search_may_choose_its_own_fusion(tmp_path: Path) -> None:
    """fusion/alpha per query: alpha 0 ranks as the keyword leg, 1 as the vector leg, a bad
    value is refused with a hint, and the result cache keeps the variants apart."""
    import engram
    from engram.errors import InvalidInput

    with engram.open(tmp_path / "d", embedding_model="hash") as db:
        db.add([{"id": f"d{i}", "text": f"tea {'green ' * i}hills {i}"} for i in range(8)])
        query = "green tea hills"
        keyword = [h.document for h in db.search(query, mode="keyword").data]
        vector = [h.document for h in db.search(query, mode="vector").data]
        assert keyword != vector  # else the test proves nothing
        for alpha, leg in ((0.0, keyword), (1.0, vector)):
            got = db.search(query, fusion="minmax", alpha=alpha).data
            assert [h.document for h in got][: len(leg)] == leg[: len(got)]
            assert got[0].explain["fused"] == {
                "method": "minmax",
                "alpha": alpha,
                "alpha_from": "fixed",
                "score": pytest.approx(got[0].score, abs=1e-6),
            }
        default = db.search(query).data[0].explain["fused"]
        assert db.settings.fusion_alpha == "auto"
        assert (default["method"], default["alpha"], default["alpha_from"]) == (
            "dbsf",
            auto_alpha(3),
            "auto: 3 query words",
        )
        with pytest.raises(InvalidInput, match="alpha"):
            db.search(query, alpha=2.0)
        with pytest.raises(InvalidInput, match="unknown fusion") as err:
            db.search(query, fusion="max")
        assert "rrf" in (err.value.hint or "")
