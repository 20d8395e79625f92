"""Choose the hybrid fusion with numbers: run each leg once per query, then score fusion
variants offline on the same candidates.

    python bench/tune_fusion.py ../shared/datasets/scifact --data-dir /tmp/evaldata

The dataset must already be ingested (``engram eval`` does it) in ``--data-dir``. Prints
nDCG@10 for keyword, vector, the two convex fusions (dbsf: mean ± 3σ normalisation; minmax)
over alpha, and weighted RRF over alpha and k, as JSON lines. Use the same --depth as the
default ``candidates`` setting so the numbers are those of ``engram eval``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engram import open as open_db
from engram.eval.beir import load_beir
from engram.eval.metrics import evaluate
from engram.eval.runner import collection_name, model_of
from engram.search.analyzer import analyzer_for
from engram.search.fusion import fuse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--depth", type=int, default=150, help="candidates per leg")
    args = ap.parse_args()
    ds = load_beir(args.dataset)
    with open_db(args.data_dir) as db:
        coll = db.store.get_collection(collection_name(ds, model_of(db, ds)))
        analyzer = analyzer_for(coll)
        legs = {}
        for qid, text in ds.queries.items():
            terms = analyzer.query_terms(text)
            kw = db.searcher.keyword_leg(coll, terms, args.depth)[0] if terms else []
            vec = db.store.vector_search(coll, db.searcher.embed_query(coll, text), k=args.depth)
            legs[qid] = (kw, vec)
        ids = {i for kw, vec in legs.values() for i, _ in kw + vec}
        doc_of = {
            cid: rec.document_key for cid, rec in db.store.get_chunks(coll, sorted(ids)).items()
        }

    def score(variant: dict) -> float:
        run = {}
        for qid, (kw, vec) in legs.items():
            if variant["method"] == "keyword":
                ranked = [i for i, _ in kw]
            elif variant["method"] == "vector":
                ranked = [i for i, _ in vec]
            else:
                fused = fuse(
                    kw,
                    vec,
                    method=variant["method"],
                    alpha=variant["alpha"],
                    rrf_k=variant.get("k", 60),
                )
                ranked = [f.id for f in fused]
            docs: dict[str, float] = {}
            for pos, cid in enumerate(ranked):
                docs.setdefault(doc_of[cid], float(len(ranked) - pos))
            run[qid] = docs
        return evaluate(run, ds.qrels, ks=(10,))["ndcg@10"]

    variants = [{"method": "keyword"}, {"method": "vector"}]
    alphas = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
    variants += [{"method": m, "alpha": a} for m in ("dbsf", "minmax") for a in alphas]
    variants += [
        {"method": "rrf", "alpha": a / 10, "k": k} for a in (3, 5, 6, 7, 8) for k in (10, 60)
    ]
    for v in variants:
        print(json.dumps({"dataset": ds.name, **v, "ndcg@10": round(score(v), 4)}), flush=True)


if __name__ == "__main__":
    main()
