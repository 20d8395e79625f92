"""One search over collections of two embedding models (engram.search.multi): is pooling
the models' standardised vector candidates as good as one model?

    python bench/bench_mixed_models.py ../shared/datasets/fr-cnil-faq --data-dir /tmp/mixed

The corpus is split in two halves (documents alternately), each half ingested once with
each model (bge-small-en-v1.5, multilingual-e5-small); then every query searches two
collections, one per half, as one ranking: both halves of one model, or one half of each
(with the standardised pooling engram does, and with raw cosines pooled as for one model).
Prints nDCG@10 and Recall@100 per pairing and mode, as JSON lines.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import engram
from engram.cache import make_cache
from engram.eval.beir import load_beir
from engram.eval.metrics import evaluate
from engram.eval.runner import EVAL_DEPTH
from engram.search import multi

MODELS = {"bge": "bge-small-en-v1.5", "e5": "multilingual-e5-small"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--limit", type=int, help="first N queries only")
    ap.add_argument("--modes", default="hybrid,vector")
    args = ap.parse_args()
    ds = load_beir(args.dataset)
    queries = list(ds.queries.items())[: args.limit] if args.limit else list(ds.queries.items())
    qrels = {qid: ds.qrels[qid] for qid, _ in queries}
    with engram.open(args.data_dir, cache_size=4096) as db:
        # Query vectors cached, results not: the same query is searched with both poolings.
        db.searcher.result_cache = make_cache("search", size=0, redis_url=None, ttl=1)
        docs = list(ds.iter_corpus())
        halves = [docs[0::2], docs[1::2]]
        for (short, model), (h, half) in itertools.product(MODELS.items(), enumerate(halves)):
            name = f"h{h}-{short}"
            report = db.add(half, collection=name, model=model, language="fr")
            assert db.collection(name).model_id == model, name
            print(json.dumps({"ingested": name, "added": report.added}), flush=True)
        pairings = [("e5", "e5"), ("bge", "bge"), ("bge", "e5"), ("e5", "bge")]
        standardised = multi._pooled_models  # noqa: SLF001
        for mode in args.modes.split(","):
            for first, second in pairings:
                for pooling in ("standardised", "raw") if first != second else ("one model",):
                    multi._pooled_models = (  # type: ignore[assignment]
                        standardised
                        if pooling != "raw"
                        else lambda _c, legs, depth: multi._pooled(legs, depth)
                    )
                    names = [f"h0-{first}", f"h1-{second}"]
                    run: dict[str, dict[str, float]] = {}
                    for qid, text in queries:
                        response = db.search(
                            text, collection=names, k=EVAL_DEPTH, mode=mode, highlight=False
                        )
                        n = len(response.results)
                        scores: dict[str, float] = {}
                        for position, r in enumerate(response.results):
                            scores.setdefault(r.document_key, float(n - position))
                        run[qid] = scores
                    metrics = evaluate(run, qrels, ks=(10, 100))
                    print(
                        json.dumps(
                            {
                                "mode": mode,
                                "collections": names,
                                "pooling": pooling,
                                "ndcg@10": round(metrics["ndcg@10"], 4),
                                "recall@100": round(metrics["recall@100"], 4),
                                "queries": len(queries),
                            }
                        ),
                        flush=True,
                    )
        multi._pooled_models = standardised  # type: ignore[assignment]


if __name__ == "__main__":
    main()
