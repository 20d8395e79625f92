"""Choose how a search over several collections fuses, with numbers (issue 14 #1).

    python bench/tune_multicollection.py ../shared/datasets/scifact --data-dir /tmp/mc \\
        --model bge-small-en-v1.5

A BEIR corpus is split into ``--parts`` collections (``random``: equal thirds by a hash of
the document id; ``skewed``: 70 % / 20 % / 10 %; ``topical``: by subject, k-means over the
documents' words), and also ingested whole into one collection
(``all``, the reference: what a search over the union should approach). Each leg runs once
per query and per collection, then every way of searching the list is scored offline on the
same candidates (as bench/tune_fusion.py does), with the default fusion (dbsf, alpha 0.85):

- ``per-collection``: each collection fused on its own (its scores normalised over its own
  candidates), then merged by fused score. Option (a) of the issue.
- ``pooled``: the raw leg candidates of every collection pooled (BM25 scores merged as they
  are, as Elasticsearch merges shards' scores; cosine similarities are comparable anyway),
  cut to ``--depth`` per leg, then fused once. Option (b).
- ``pooled-uncut``: the same without the cut (``parts × depth`` candidates per leg).
- ``rrf``: the per-collection rankings merged by reciprocal rank (k = 60). Option (c).
- keyword mode: raw BM25 merged, or each collection's scores min-max / dbsf normalised first.

Only the ``all`` collection is embedded with ``--model``; the parts are embedded with the
hash embedder (their keyword leg does not depend on it; they are chunked in ``--model``'s
tokens, as ``all`` is) and their vector leg is the ``all``
collection's, kept to each part's documents: cosine similarity does not depend on the
collection, so that is exactly what the part would return (ties aside). Prints one JSON line
per (split, mode, option) with nDCG@10 and Recall@10.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import engram
from engram.eval.beir import iter_corpus, load_beir
from engram.eval.metrics import evaluate
from engram.search.analyzer import analyzer_for
from engram.search.fusion import Fused, fuse, normalise

Leg = list[tuple[int, float]]
Key = tuple[str, int]  # (document key, chunk start): a chunk, whichever collection holds it
DEPTH = 150  # --depth
SPLITS = {"random": (1 / 3, 1 / 3, 1 / 3), "skewed": (0.7, 0.2, 0.1), "topical": (0.0, 0.0, 0.0)}


def part_of(key: str, shares: tuple[float, ...]) -> int:
    x = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    total = 0.0
    for i, share in enumerate(shares):
        total += share
        if x < total:
            return i
    return len(shares) - 1


def topics(records: list[dict], parts: int, rounds: int = 20) -> dict[str, int]:
    """Each document's cluster among ``parts``, by k-means over its words (hash-embedder
    vectors: a bag of words): collections by subject, whose vocabularies, hence BM25
    statistics, differ most."""
    from engram.providers import get_embedder

    vectors = get_embedder("hash").embed_batch([r["title"] + " " + r["text"] for r in records])
    rng = np.random.default_rng(0)
    centres = vectors[rng.choice(len(vectors), parts, replace=False)]
    for _ in range(rounds):
        labels = np.argmax(vectors @ centres.T, axis=1)
        for i in range(parts):
            if (labels == i).any():
                centre = vectors[labels == i].mean(axis=0)
                centres[i] = centre / (np.linalg.norm(centre) or 1.0)
    return {r["id"]: int(label) for r, label in zip(records, labels)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", default="hash", help="embedding model of the reference")
    ap.add_argument("--depth", type=int, default=150, help="candidates per leg (ENGRAM_CANDIDATES)")
    ap.add_argument("--alpha", type=float, default=0.85)
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    args = ap.parse_args()
    ds = load_beir(args.dataset)
    records = [  # Cranfield has an empty document
        {"id": d.key, "title": d.title, "text": d.text}
        for d in iter_corpus(ds.corpus_path)
        if d.text.strip()
    ]
    global DEPTH
    depth = DEPTH = args.depth
    with engram.open(args.data_dir, embedding_model=args.model, cache_size=0) as db:
        if not any(c.name == "all" and c.document_count == len(records) for c in db.collections()):
            db.add(records, collection="all")
        ref = db.collection("all")
        analyzer = analyzer_for(ref)
        queries = {qid: ds.queries[qid] for qid in ds.qrels if qid in ds.queries}
        qvecs = {qid: db.searcher.embed_query(ref, text) for qid, text in queries.items()}
        ref_legs: dict[str, tuple[Leg, Leg]] = {}
        for qid, text in queries.items():
            terms = analyzer.terms(text)
            kw = db.searcher.keyword_leg(ref, terms, depth)[0] if terms else []
            # Deep enough that each part's own top `depth` is among it.
            vec = db.store.vector_search(ref, qvecs[qid], k=depth * 10)
            ref_legs[qid] = (kw, vec)
        ids = {i for kw, vec in ref_legs.values() for i, _ in kw + vec}
        ref_key = {
            cid: (r.document_key, r.start)
            for cid, r in db.store.get_chunks(ref, sorted(ids)).items()
        }
        chunker = db.embedder()
    for split in args.splits:
        shares = SPLITS[split]
        names = [f"{split}-{i}" for i in range(len(shares))]
        if split == "topical":
            cluster = topics(records, len(shares))
            assign = cluster.__getitem__
        else:
            assign = partial(part_of, shares=shares)
        with engram.open(args.data_dir, embedding_model="hash", cache_size=0) as db:
            # Chunked as the reference is (in its model's tokens), so that a chunk of a part
            # is a chunk of the reference: same document key, same start.
            hashed = db.embedder()
            for name in ("token_offsets", "token_offsets_batch", "count_tokens"):
                setattr(hashed, name, getattr(chunker, name))
            existing = {c.name: c.document_count for c in db.collections()}
            for i, name in enumerate(names):
                part = [r for r in records if assign(r["id"]) == i]
                if existing.get(name) != len(part):  # absent, or cut short by an earlier run
                    db.add(part, collection=name)
            parts = [db.collection(name) for name in names]
            legs: dict[str, list[tuple[Leg, Leg]]] = {}
            keys: dict[int, Key] = {}
            for qid, text in queries.items():
                terms = analyzer.terms(text)
                per = []
                for coll in parts:
                    kw = db.searcher.keyword_leg(coll, terms, depth)[0] if terms else []
                    per.append(kw)
                legs[qid] = [(kw, []) for kw in per]
            ids_by_part = {
                i: {i2 for q in legs.values() for i2, _ in q[i][0]} for i in range(len(shares))
            }
            for i, coll in enumerate(parts):
                for cid, r in db.store.get_chunks(coll, sorted(ids_by_part[i])).items():
                    keys[cid] = (r.document_key, r.start)
        # Each part's vector leg: the reference's, kept to the part's documents, in the
        # reference's chunk ids mapped to keys (the parts' own ids are not needed for it).
        run_legs: dict[str, list[tuple[list[tuple[Key, float]], list[tuple[Key, float]]]]] = {}
        for qid in queries:
            kw_ref, vec_ref = ref_legs[qid]
            per_part = []
            for i in range(len(shares)):
                kw = [(keys[c], s) for c, s in legs[qid][i][0]]
                vec = [(ref_key[c], s) for c, s in vec_ref if assign(ref_key[c][0]) == i]
                per_part.append((kw, vec[:depth]))
            run_legs[qid] = per_part
        ref_runs = {
            qid: (
                [(ref_key[c], s) for c, s in kw],
                [(ref_key[c], s) for c, s in vec[:depth]],
            )
            for qid, (kw, vec) in ref_legs.items()
        }
        for mode in ("keyword", "hybrid"):
            options = OPTIONS[mode]
            for option, merge in options.items():
                run: dict[str, dict[str, float]] = {}
                for qid in queries:
                    if option == "reference (one collection)":
                        kw, vec = ref_runs[qid]
                        ranked = single(mode, kw, vec, args.alpha)
                    else:
                        ranked = merge(run_legs[qid], args.alpha)
                    docs: dict[str, float] = {}
                    for pos, ((doc, _), _) in enumerate(ranked):
                        docs.setdefault(doc, float(len(ranked) - pos))
                    run[qid] = docs
                scores = evaluate(run, ds.qrels, ks=(10,))
                line = {
                    "dataset": ds.name,
                    "model": args.model,
                    "split": split,
                    "mode": mode,
                    "option": option,
                    "ndcg@10": round(scores["ndcg@10"], 4),
                    "recall@10": round(scores["recall@10"], 4),
                }
                print(json.dumps(line), flush=True)


# -- the options ------------------------------------------------------------------------------
KLeg = list[tuple[Key, float]]
Parts = list[tuple[KLeg, KLeg]]


def _fused(kw: KLeg, vec: KLeg, method: str, alpha: float) -> list[tuple[Key, float]]:
    index = {key: n for n, key in enumerate(dict.fromkeys([k for k, _ in kw + vec]))}
    back = {n: key for key, n in index.items()}
    out: list[Fused] = fuse(
        [(index[k], s) for k, s in kw], [(index[k], s) for k, s in vec], method=method, alpha=alpha
    )
    return [(back[f.id], f.score) for f in out]


def single(mode: str, kw: KLeg, vec: KLeg, alpha: float) -> list[tuple[Key, float]]:
    return kw if mode == "keyword" else _fused(kw, vec, "dbsf", alpha)


def _by_score(lists: list[list[tuple[Key, float]]]) -> list[tuple[Key, float]]:
    return sorted((x for one in lists for x in one), key=lambda x: -x[1])


def _pool(legs: list[KLeg], cut: int | None) -> KLeg:
    return _by_score(legs)[:cut] if cut else _by_score(legs)


def _normalised(leg: KLeg, method: str) -> KLeg:
    index = {key: n for n, (key, _) in enumerate(leg)}
    norm = normalise([(index[k], s) for k, s in leg], method)
    return [(k, norm[index[k]]) for k, _ in leg]


def _rrf(lists: list[list[tuple[Key, float]]]) -> list[tuple[Key, float]]:
    scored = [(k, 1 / (60 + rank)) for one in lists for rank, (k, _) in enumerate(one, 1)]
    return sorted(scored, key=lambda x: -x[1])


Merge = Callable[[Parts, float], list[tuple[Key, float]]]
OPTIONS: dict[str, dict[str, Any]] = {
    "keyword": {
        "reference (one collection)": None,
        "raw BM25 merged": lambda p, a: _by_score([kw for kw, _ in p]),
        "min-max per collection": lambda p, a: _by_score(
            [_normalised(kw, "minmax") for kw, _ in p]
        ),
        "dbsf per collection": lambda p, a: _by_score([_normalised(kw, "dbsf") for kw, _ in p]),
        "rrf": lambda p, a: _rrf([kw for kw, _ in p]),
    },
    "hybrid": {
        "reference (one collection)": None,
        "per-collection dbsf, merged": lambda p, a: _by_score(
            [_fused(kw, vec, "dbsf", a) for kw, vec in p]
        ),
        "per-collection minmax, merged": lambda p, a: _by_score(
            [_fused(kw, vec, "minmax", a) for kw, vec in p]
        ),
        "pooled legs, cut to depth, dbsf": lambda p, a: _fused(
            _pool([kw for kw, _ in p], DEPTH), _pool([v for _, v in p], DEPTH), "dbsf", a
        ),
        "pooled legs, uncut, dbsf": lambda p, a: _fused(
            _pool([kw for kw, _ in p], None), _pool([v for _, v in p], None), "dbsf", a
        ),
        "rrf of per-collection rankings": lambda p, a: _rrf(
            [_fused(kw, vec, "dbsf", a) for kw, vec in p]
        ),
    },
}


if __name__ == "__main__":
    main()
