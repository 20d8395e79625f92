"""Choose how the cross-encoder's scores enter the ranking, with numbers: run the legs and the
cross-encoder ONCE per query, cache them, then score reranking variants offline.

    python bench/tune_rerank.py score ../shared/datasets/scifact --data-dir /tmp/evaldata \\
        --limit 100 --cache /tmp/rerank-cache
    python bench/tune_rerank.py variants /tmp/rerank-cache/*.jsonl

``score`` (slow: the cross-encoder) needs the dataset ingested in ``--data-dir`` (``engram
eval`` does it). For each query it runs the keyword and vector legs at the eval depth, fuses
them as the collection does, and has the cross-encoder score the union of the top
``--depth`` candidates of the three modes (hybrid, keyword, vector). One JSON line per query
goes to ``CACHE/<dataset>.jsonl`` (legs, model scores, chunk → document), appended as it
goes: a run that stops resumes where it was.

``variants`` (seconds) scores, per dataset and mode, nDCG@10 without rerank and with each
variant: the model alone, rank blends ``w/(k + model rank) + (1 - w)/(k + fused rank)``,
score interpolation (min-max normalised model and fused scores: what engram does, by its own
``engram.search.rerank.blend``), and gating by leg
disagreement (hybrid only: a single-leg search has no second leg to disagree with), each at
depth 10, 20, 30. Documents are ranked by their best chunk, as ``engram eval`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engram import open as open_db
from engram.eval.beir import load_beir
from engram.eval.metrics import evaluate_per_query
from engram.eval.runner import EVAL_DEPTH, collection_name
from engram.search.analyzer import analyzer_for
from engram.search.rerank import blend
from engram.search.searcher import _passage

MODES = ("hybrid", "keyword", "vector")
Leg = list[tuple[int, float]]


def score_main(args: argparse.Namespace) -> None:
    ds = load_beir(args.dataset)
    args.cache.mkdir(parents=True, exist_ok=True)
    out = args.cache / f"{ds.name}.jsonl"
    done = set()
    if out.exists():
        done = {json.loads(line)["qid"] for line in out.read_text().splitlines() if line}
    queries = [(q, t) for q, t in ds.queries.items() if q in ds.qrels][: args.limit]
    with open_db(args.data_dir) as db, out.open("a") as fh:
        coll = db.store.get_collection(collection_name(ds, db.embedder().model_id))
        analyzer = analyzer_for(coll)
        method, alpha = db.searcher.fusion_of(coll)
        depth = max(db.settings.candidates, EVAL_DEPTH)
        reranker = db.reranker()
        cpu0, t_all = time.process_time(), time.perf_counter()
        pairs_total = 0
        for n, (qid, text) in enumerate(queries, 1):
            if qid in done:
                continue
            terms = analyzer.terms(text)
            kw = db.searcher.keyword_leg(coll, terms, depth)[0] if terms else []
            vec = db.store.vector_search(coll, db.searcher.embed_query(coll, text), k=depth)
            head: dict[int, None] = {}
            for mode in MODES:
                fused = db.searcher._fuse(mode, kw, vec, method, alpha)  # type: ignore[arg-type]
                head.update(dict.fromkeys(f.id for f in fused[: args.depth]))
            ids = sorted({i for i, _ in kw + vec})
            records = db.store.get_chunks(coll, ids)
            scored = [i for i in head if i in records]
            t0 = time.process_time()
            logits = reranker.rerank(
                text, [_passage(records[i].title, records[i].text) for i in scored]
            )
            pairs_total += len(scored)
            row = {
                "qid": qid,
                "kw": kw,
                "vec": vec,
                "model": {str(i): s for i, s in zip(scored, logits)},
                "doc": {str(i): r.document_key for i, r in records.items()},
                "fusion": [method, alpha],
                "cpu_s": round(time.process_time() - t0, 3),
            }
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(
                f"{ds.name} {n}/{len(queries)} pairs={len(scored)} cpu={row['cpu_s']}s",
                file=sys.stderr,
                flush=True,
            )
        wall = time.perf_counter() - t_all
        print(
            json.dumps(
                {
                    "dataset": ds.name,
                    "pairs": pairs_total,
                    "cpu_s": round(time.process_time() - cpu0, 1),
                    "wall_s": round(wall, 1),
                }
            )
        )


# -- offline variants -------------------------------------------------------------------------

Ranker = Callable[[list[int], dict[int, float], dict[int, float], dict[str, Any]], list[int]]


def _fuse(mode: str, kw: Leg, vec: Leg, method: str, alpha: float) -> list[tuple[int, float]]:
    from engram.search.fusion import fuse

    if mode == "hybrid":
        return [(f.id, f.score) for f in fuse(kw, vec, method=method, alpha=alpha)]
    return list(kw if mode == "keyword" else vec)


def rerank_variant(
    fused: list[tuple[int, float]], model: dict[int, float], v: dict[str, Any]
) -> list[int]:
    """The ids of ``fused`` reordered by variant ``v`` over its top ``v['depth']``."""
    head = [(i, s) for i, s in fused[: v["depth"]] if i in model]
    tail = [i for i, _ in fused[v["depth"] :]]
    ids = [i for i, _ in head]
    if v["kind"] == "model":
        order = sorted(ids, key=lambda i: -model[i])
    elif v["kind"] == "rank":
        by_model = sorted(ids, key=lambda i: -model[i])
        mrank = {i: r for r, i in enumerate(by_model, 1)}
        w, k = v["w"], v["k"]
        rrf = {i: w / (k + mrank[i]) + (1 - w) / (k + r) for r, i in enumerate(ids, 1)}
        order = sorted(ids, key=lambda i: -rrf[i])  # stable: ties keep the fused order
    elif v["kind"] == "score":  # what engram does (engram.search.rerank.blend)
        positions, _, _ = blend([s for _, s in head], [model[i] for i in ids], v["w"])
        order = [ids[p] for p in positions]
    else:
        raise ValueError(v["kind"])
    return order + tail


def _disagree(kw: Leg, vec: Leg, gate: str) -> bool:
    """Whether the two legs disagree enough to ask the cross-encoder (``gate``: top1 — their
    first hits differ; jN — fewer than N of their top 10 are shared)."""
    if not kw or not vec:
        return True
    if gate == "top1":
        return kw[0][0] != vec[0][0]
    shared = len({i for i, _ in kw[:10]} & {i for i, _ in vec[:10]})
    return shared < int(gate[1:])


def variants_main(args: argparse.Namespace) -> None:
    variants: list[dict[str, Any]] = [{"kind": "none"}]
    for d in (10, 20, 30):
        variants.append({"kind": "model", "depth": d})
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            for k in (1, 5, 10, 60):
                variants.append({"kind": "rank", "depth": d, "w": w, "k": k})
            variants.append({"kind": "score", "depth": d, "w": w})
        for gate in ("top1", "j3", "j5"):
            variants.append({"kind": "model", "depth": d, "gate": gate})
            variants.append({"kind": "rank", "depth": d, "w": 0.5, "k": 5, "gate": gate})
            variants.append({"kind": "score", "depth": d, "w": 0.5, "gate": gate})
    results: dict[str, dict[str, Any]] = {}
    for path in args.caches:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
        ds_name = Path(path).stem
        ds = load_beir(Path(args.datasets) / ds_name)
        qrels = {r["qid"]: ds.qrels[r["qid"]] for r in rows}
        for r in rows:
            r["kw"] = [(int(i), float(s)) for i, s in r["kw"]]
            r["vec"] = [(int(i), float(s)) for i, s in r["vec"]]
            r["model"] = {int(i): s for i, s in r["model"].items()}
        for mode in MODES:
            per_variant: dict[str, dict[str, float]] = {}
            fused_of = {
                r["qid"]: _fuse(mode, r["kw"], r["vec"], *r["fusion"])[:EVAL_DEPTH] for r in rows
            }
            for v in variants:
                run = {}
                for r in rows:
                    kw, vec, model = r["kw"], r["vec"], r["model"]
                    fused = fused_of[r["qid"]]
                    gated = "gate" in v and mode == "hybrid" and not _disagree(kw, vec, v["gate"])
                    if v["kind"] == "none" or gated:
                        ranked = [i for i, _ in fused]
                    else:
                        ranked = rerank_variant(fused, model, v)
                    docs: dict[str, float] = {}
                    for pos, cid in enumerate(ranked):
                        docs.setdefault(r["doc"][str(cid)], float(len(ranked) - pos))
                    run[r["qid"]] = docs
                per_q = evaluate_per_query(run, qrels, ks=(10,))
                per_variant[json.dumps(v, sort_keys=True)] = {
                    q: m["ndcg@10"] for q, m in per_q.items()
                }
            results[f"{ds_name}/{mode}"] = per_variant
    _report(results, args.out)


def _report(results: dict[str, dict[str, dict[str, float]]], out: Path | None) -> None:
    """One line per variant: nDCG@10 delta vs no rerank per dataset/mode, worst and mean."""
    cells = list(results)
    names = list(next(iter(results.values())))
    base_key = json.dumps({"kind": "none"}, sort_keys=True)
    table = []
    for name in names:
        deltas = {}
        for cell in cells:
            base = results[cell][base_key]
            got = results[cell][name]
            deltas[cell] = sum(got[q] - base[q] for q in base) / len(base)
        table.append((name, min(deltas.values()), sum(deltas.values()) / len(deltas), deltas))
    table.sort(key=lambda t: -t[1])
    print("baseline nDCG@10: " + ", ".join(f"{c}={_mean(results[c][base_key]):.4f}" for c in cells))
    for name, worst, mean, deltas in table:
        print(
            f"{name:70s} worst={worst:+.4f} mean={mean:+.4f} "
            + " ".join(f"{c}={d:+.4f}" for c, d in deltas.items())
        )
    if out:
        out.write_text(json.dumps({"cells": cells, "results": results}))


def _mean(xs: dict[str, float]) -> float:
    return sum(xs.values()) / len(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="run the legs and the cross-encoder once per query")
    s.add_argument("dataset", type=Path)
    s.add_argument("--data-dir", type=Path, required=True)
    s.add_argument("--cache", type=Path, required=True, help="directory of <dataset>.jsonl")
    s.add_argument("--limit", type=int, default=None, help="first N queries with qrels")
    s.add_argument("--depth", type=int, default=30, help="candidates scored per mode")
    v = sub.add_parser("variants", help="score reranking variants from the cached scores")
    v.add_argument("caches", nargs="+", type=Path)
    v.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    v.add_argument("--out", type=Path, default=None, help="per-query nDCG@10 as JSON")
    args = ap.parse_args()
    score_main(args) if args.cmd == "score" else variants_main(args)


if __name__ == "__main__":
    main()
