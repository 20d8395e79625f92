"""Compare HNSW libraries on this machine: build time, query latency, recall@10 vs exact.

    python bench/bench_ann.py --n 100000 --dim 384 --queries 500

Vectors are synthetic but clustered (a Gaussian mixture, L2-normalised) so neighbourhoods
look like those of sentence embeddings rather than uniform noise. Libraries that are not
installed are skipped.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def data(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(n // 200, 8), dim)).astype(np.float32)
    labels = rng.integers(0, len(centers), size=n + queries)
    x = centers[labels] + 0.9 * rng.normal(size=(n + queries, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def exact(base: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = q @ base.T
    return np.argsort(-sims, axis=1)[:, :k]


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)])
    )


def timed_queries(search, q: np.ndarray) -> tuple[list[np.ndarray], dict[str, float]]:
    out, lat = [], []
    for v in q:
        t0 = time.perf_counter()
        out.append(np.asarray(search(v)))
        lat.append((time.perf_counter() - t0) * 1000)
    p = np.percentile(lat, [50, 95, 99])
    return out, {
        "p50_ms": round(float(p[0]), 3),
        "p95_ms": round(float(p[1]), 3),
        "p99_ms": round(float(p[2]), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--ef-search", type=int, default=128)
    args = ap.parse_args()
    base, q = data(args.n, args.dim, args.queries)
    truth = exact(base, q, 10)
    rows = []

    try:
        from usearch.index import Index

        t0 = time.perf_counter()
        idx = Index(
            ndim=args.dim,
            metric="cos",
            dtype="f32",
            connectivity=args.m,
            expansion_add=args.ef_construction,
            expansion_search=args.ef_search,
        )
        idx.add(np.arange(args.n), base)
        build = time.perf_counter() - t0
        found, lat = timed_queries(lambda v: idx.search(v, 10).keys, q)
        rows.append(
            {
                "lib": "usearch",
                "build_s": round(build, 1),
                "recall@10": round(recall(found, truth), 4),
                **lat,
            }
        )
    except ImportError:
        pass
    try:
        import hnswlib

        t0 = time.perf_counter()
        h = hnswlib.Index(space="cosine", dim=args.dim)
        h.init_index(max_elements=args.n, ef_construction=args.ef_construction, M=args.m)
        h.add_items(base, np.arange(args.n))
        h.set_ef(args.ef_search)
        build = time.perf_counter() - t0
        found, lat = timed_queries(lambda v: h.knn_query(v, k=10)[0][0], q)
        rows.append(
            {
                "lib": "hnswlib",
                "build_s": round(build, 1),
                "recall@10": round(recall(found, truth), 4),
                **lat,
            }
        )
    except ImportError:
        pass
    try:
        import faiss

        t0 = time.perf_counter()
        f = faiss.IndexHNSWFlat(args.dim, args.m, faiss.METRIC_INNER_PRODUCT)
        f.hnsw.efConstruction = args.ef_construction
        f.add(base)
        f.hnsw.efSearch = args.ef_search
        build = time.perf_counter() - t0
        found, lat = timed_queries(lambda v: f.search(v[None, :], 10)[1][0], q)
        rows.append(
            {
                "lib": "faiss",
                "build_s": round(build, 1),
                "recall@10": round(recall(found, truth), 4),
                **lat,
            }
        )
    except ImportError:
        pass
    t0 = time.perf_counter()
    found, lat = timed_queries(lambda v: np.argpartition(-(base @ v), 10)[:10], q)
    rows.append(
        {"lib": "numpy-exact", "build_s": 0.0, "recall@10": round(recall(found, truth), 4), **lat}
    )
    print(f"n={args.n} dim={args.dim} M={args.m} efC={args.ef_construction} efS={args.ef_search}")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
