"""The derived indexes built batch by batch: BM25 postings kept as numpy runs, vectors kept
flat below exact_search_below, the analyzer's remembered words. Each is checked against a
plain recomputation, through updates, deletions, compaction, files and other processes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import Stemmer

import engram
from engram.ingest.pipeline import IngestPipeline
from engram.search import analyzer as analysis
from engram.search.ann import HnswParams, VectorIndex
from engram.search.bm25 import BM25Index
from engram.search.postings import Postings

WORDS = [f"w{i}" for i in range(400)]


def _doc(rng: random.Random) -> str:
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return " ".join(rng.choices(WORDS, weights, k=rng.randint(1, 40)))


def _scores(index: BM25Index, rng: random.Random) -> list[list[tuple[int, float]]]:
    out = []
    for _ in range(40):
        query = rng.sample(WORDS[:60], rng.randint(1, 4)) + rng.sample(WORDS, 1)
        out.append(index.search(query, k=len(index) + 1))
    return out


def test_bm25_built_batch_by_batch_scores_as_one_built_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small batches (run concatenation and merges), deletions (tombstones, then
    compaction) and a save/load in between: the same scores, bit for bit, as an index built
    from the final chunks in one batch."""
    compactions = []
    compact = BM25Index._compact
    monkeypatch.setattr(BM25Index, "_compact", lambda self: compactions.append(1) or compact(self))
    rng = random.Random(5)
    live: dict[int, str] = {}
    index, next_id, seq = BM25Index(tmp_path / "k.npz"), 1, 0
    for round_ in range(60):
        adds = {}
        for _ in range(rng.randint(1, 120)):
            adds[next_id] = _doc(rng)
            next_id += 1
        removes = rng.sample(sorted(live), min(len(live), rng.randint(0, 60)))
        seq += 1
        index.apply(adds, removes, seq)
        for chunk_id in removes:
            del live[chunk_id]
        live.update(adds)
        if round_ == 30:  # files hold the merged postings; loading picks up from there
            index.save()
            index = BM25Index(tmp_path / "k.npz")
            assert index.load() and index.seq == seq
    assert compactions  # deletions piled up past the compaction threshold at least once
    fresh = BM25Index()
    fresh.apply(dict(sorted(live.items())), [], seq)
    assert len(index) == len(fresh) == len(live)
    assert _scores(index, random.Random(9)) == _scores(fresh, random.Random(9))
    assert all(index.doc_freq(t) == fresh.doc_freq(t) for t in WORDS)
    assert sorted(index.vocabulary()) == sorted(fresh.vocabulary())
    for term in WORDS[:50]:
        assert index.sample(term, 5) == fresh.sample(term, 5)


def test_postings_read_back_what_was_added() -> None:
    """Postings against a dict of lists, through runs kept apart, concatenated and merged."""
    rng = np.random.default_rng(1)
    postings, expected = Postings(), {}
    slot = 0
    for _ in range(300):
        batch = []
        for _ in range(int(rng.integers(1, 40))):
            for tid in sorted(set(rng.integers(0, 500, int(rng.integers(1, 30))).tolist())):
                batch.append((tid, slot, float(rng.integers(1, 5))))
            slot += 1
        batch.sort()
        tids, slots, tfs = (np.array(col) for col in zip(*batch))
        postings.add(tids.astype(np.int64), slots.astype(np.int32), tfs.astype(np.float32))
        for tid, s, tf in batch:
            expected.setdefault(tid, []).append((s, tf))
        if rng.random() < 0.1:
            tid = int(rng.integers(0, 500))
            got = postings.get(tid)
            assert list(zip(got[0].tolist(), got[1].tolist())) == expected.get(tid, [])
    for tid in range(510):
        got = postings.get(tid)
        assert list(zip(got[0].tolist(), got[1].tolist())) == expected.get(tid, [])
    offsets, slots, _ = postings.arrays(510)
    assert len(offsets) == 511 and offsets[-1] == len(slots) == sum(map(len, expected.values()))


def _exact(vectors: dict[int, np.ndarray], query: np.ndarray, k: int) -> list[int]:
    keys = sorted(vectors)
    matrix = np.stack([vectors[key] / np.linalg.norm(vectors[key]) for key in keys])
    sims = matrix @ (query / np.linalg.norm(query))
    return [keys[i] for i in np.lexsort((keys, -sims))[:k]]


def test_a_small_vector_index_has_no_graph_until_it_grows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = {i: rng.normal(size=16).astype(np.float32) for i in range(1, 81)}
    params = HnswParams(exact_below=50)
    index = VectorIndex(tmp_path / "v.hnsw", 16, params)
    index.apply({i: x[i] for i in range(1, 41)}, [], seq=1)
    index.apply({}, [3, 4, 5], seq=2)
    live = {i: x[i] for i in range(1, 41) if i not in (3, 4, 5)}
    assert index._index is None and len(index) == len(live)
    query = rng.normal(size=16).astype(np.float32)
    assert [k for k, _ in index.search(query, 10)] == _exact(live, query, 10)
    assert [k for k, _ in index.search(query, 5, {1, 2, 3, 7})] == _exact(
        {k: live[k] for k in (1, 2, 7)}, query, 5
    )
    index.save()
    assert json.loads((tmp_path / "v.json").read_text())["kind"] == "flat"
    again = VectorIndex(tmp_path / "v.hnsw", 16, params)
    assert again.load() and again.seq == 2 and again._index is None
    assert again.search(query, 10) == index.search(query, 10)
    # Growing past exact_below builds the graph from the flat vectors, once.
    again.apply({i: x[i] for i in range(41, 81)}, [], seq=3)
    live.update({i: x[i] for i in range(41, 81)})
    assert again._index is not None and len(again) == len(live)
    assert [k for k, _ in again.search(query, 10, exact=True)] == _exact(live, query, 10)
    approx = {k for k, _ in again.search(query, 10)}
    assert len(approx & set(_exact(live, query, 10))) >= 9
    again.save()
    assert "kind" not in json.loads((tmp_path / "v.json").read_text())
    # A flat file loaded with a lower threshold (the setting changed) gets its graph.
    index.save(tmp_path / "flat.hnsw")
    lower = VectorIndex(tmp_path / "flat.hnsw", 16, HnswParams(exact_below=10))
    assert lower.load() and lower._index is not None and len(lower) == 37


def _reference_terms(text: str, language: str) -> list[str]:
    stemmer = Stemmer.Stemmer({"en": "english", "fr": "french"}[language])
    stop = analysis.BY_LANGUAGE[language]
    out = []
    for word in analysis._WORD.findall(text):
        folded = unicodedata.normalize("NFKD", word.lower())
        folded = "".join(c for c in folded if not unicodedata.combining(c)).replace("œ", "oe")
        if folded not in stop and len(folded) <= analysis._MAX_WORD:
            out.append(stemmer.stemWord(folded))
    return out


@pytest.mark.parametrize("remembered", [200_000, 7])
def test_analyzer_terms_are_the_word_by_word_analysis(
    remembered: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remembered words, the ASCII split and the memory starting over (7 words) change
    nothing: the terms are those of each word folded, filtered and stemmed."""
    monkeypatch.setattr(analysis, "_REMEMBERED", remembered)
    rng = random.Random(3)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABC0123456789_ \n\t.,;:'-!?()/\x1f") + list(
        "éèàçœÉÀüß—’«»"
    )
    words = ["Running", "the", "Règlements", "données", "l'entreprise", "x" * 45, "ŒUVRE"]
    for language in ("en", "fr"):
        analyzer = analysis.Analyzer(language)
        for _ in range(300):
            parts = [rng.choice(words) for _ in range(rng.randint(0, 5))]
            noise = "".join(rng.choice(alphabet[:40]) for _ in range(rng.randint(0, 80)))
            if rng.random() < 0.3:
                noise += "".join(rng.choice(alphabet) for _ in range(20))
            text = " ".join(parts) + " " + noise
            assert analyzer.terms(text) == _reference_terms(text, language), text
            for word in (p for p in parts if len(analysis._WORD.findall(p)) == 1):
                ref = _reference_terms(word, language)
                assert analyzer.term(word) == (ref[0] if len(ref) == 1 else None)


_CHILD = textwrap.dedent(
    """
    import sys, engram
    root, action = sys.argv[1], sys.argv[2]
    db = engram.open(root, embedding_model="hash", cache_size=0)
    if action == "write":
        db.add([{"id": f"child-{i}", "text": f"zebra crossing number {i}"} for i in range(30)])
        db.delete(["parent-3"])
    else:
        hits = db.search("walrus", mode="keyword", k=100).results
        vec = db.search("walrus shore", mode="vector", k=100).results
        print(len(hits), len({r.document_key for r in vec if r.document_key.startswith("parent")}))
    db.close()
    """
)


def test_processes_on_one_data_directory_see_each_others_writes(tmp_path: Path) -> None:
    """Another process's ingest and deletion reach this one's indexes (flat vectors, numpy
    postings) through the change log and the index files, and the other way round."""

    def child(action: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), action],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip()

    with engram.open(tmp_path, embedding_model="hash", cache_size=0) as db:
        db.add([{"id": f"parent-{i}", "text": f"walrus shore {i}"} for i in range(20)])
        assert len(db.search("zebra", mode="keyword").results) == 0
        child("write")
        keys = [r.document_key for r in db.search("zebra", mode="keyword", k=100).results]
        assert sorted(keys) == sorted(f"child-{i}" for i in range(30))
        assert len(db.search("walrus", mode="keyword", k=100).results) == 19
        vector = db.search("zebra crossing", mode="vector", k=100).results
        assert {r.document_key for r in vector} >= {f"child-{i}" for i in range(30)}
        assert "parent-3" not in {r.document_key for r in vector}
        db.delete(["parent-4"])
    assert child("search") == "18 18"


def test_cheap_chunks_are_written_in_few_transactions(tmp_path: Path) -> None:
    """Transactions hold about half a second of work: the minimum batch when chunks are
    slow to embed, growing (up to a cap) when they are cheap, as with the hash embedder."""
    with engram.open(tmp_path, embedding_model="hash", cache_size=0) as db:
        pipeline = IngestPipeline(db.store, db.settings, db.embedder())
        minimum = pipeline.batch_chunks
        assert pipeline.next_batch(minimum, 3.0) == minimum  # a model's pace: unchanged
        assert pipeline.next_batch(minimum, 0.5) == minimum
        assert pipeline.next_batch(minimum, 0.25) == minimum * 2
        assert pipeline.next_batch(minimum, 0.0) == 2048  # the cap
        calls = []
        write = db.store.write_documents

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(len(args[1]))
            return write(*args, **kwargs)

        db.store.write_documents = counted  # type: ignore[method-assign]
        docs = [{"id": f"d{i}", "text": f"note {i} about otters"} for i in range(2000)]
        report = db.add(docs)
        assert report.added == 2000 and sum(calls) == 2000
        assert calls[0] == minimum and len(calls) < 2000 / minimum / 2
        assert len(db.search("otters", mode="keyword", k=1000).results) == 1000
