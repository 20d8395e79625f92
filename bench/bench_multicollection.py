"""Latency of one search over several collections against one collection holding it all.

    python bench/bench_multicollection.py                          # SQLite, 3 × 30,000 chunks
    python bench/bench_multicollection.py --backend postgres       # a throwaway pgserver
    python bench/bench_multicollection.py --database-url postgresql://u:p@host/db

The same passages (SciFact sentences, 3-6 at random per passage, one chunk each: BM25 sees
real term statistics) are ingested twice: into ``part-0`` … ``part-<n-1>`` (``--chunks``
each, passage i in part i mod n) and into ``all`` (all of them). Vectors come from the
deterministic hash embedder (384-d), i.e. synthetic; the query embedding costs ~0 and is
excluded. The result cache is off, so every query is computed. Prints one JSON line per
(backend, mode, target) with p50/p95/p99 in ms: ``all`` is ``collection="all"``, ``list``
is ``collection=["part-0", …]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_search import DATA, passages, sentences

import engram


def ingest(db: engram.Engram, name: str, docs: list[dict], url: str | None) -> float | None:
    """Ingest ``docs`` into ``name`` unless it already holds them; seconds taken."""
    have = {c.name: c.chunk_count for c in db.collections()}
    if have.get(name) == len(docs):
        return None
    if name in have:
        db.delete_collection(name)
    t0 = time.perf_counter()
    db.add(docs[:1], collection=name)
    with db.store.bulk_load(db.collection(name)):  # PostgreSQL: HNSW built once at the end
        db.add(docs[1:], collection=name)
    if url:  # what autovacuum would do shortly after a bulk load
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE chunks, postings, vocabulary, documents")
    return round(time.perf_counter() - t0, 1)


def pg_url(tmp: Path) -> tuple[str, object]:
    """A database on a throwaway pgserver (PostgreSQL 16 + pgvector) and its handle."""
    import pgserver

    server = pgserver.get_server(tmp / "pg", cleanup_mode="stop")
    server.psql("CREATE ROLE bench LOGIN PASSWORD 'bench';")
    server.psql("CREATE DATABASE bench OWNER bench;")
    server.psql("\\c bench\nCREATE EXTENSION IF NOT EXISTS vector;")
    return server.get_uri("bench").replace("postgres:@", "bench:bench@", 1), server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=30_000, help="chunks per collection")
    ap.add_argument("--parts", type=int, default=3, help="collections searched as one")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=["hybrid", "keyword"])
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--database-url", default=None, help="PostgreSQL URL (else pgserver)")
    ap.add_argument("--data-dir", type=Path, default=None, help="reuse a directory")
    args = ap.parse_args()

    pool = sentences(DATA / "corpus.jsonl")
    every = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()]
    queries, warmup = every[: args.queries], every[args.queries : args.queries + args.warmup]
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="engram-bench-mc-"))
    url, server = args.database_url, None
    if args.backend == "postgres" and url is None:
        url, server = pg_url(root)
    backend = "postgres" if url else "sqlite"
    docs = passages(pool, args.chunks * args.parts)
    names = [f"part-{i}" for i in range(args.parts)]
    with engram.open(
        root / "data", embedding_model="hash-384", chunk_tokens=512, cache_size=0, database_url=url
    ) as db:
        seconds = {"all": ingest(db, "all", docs, url)}
        for i, name in enumerate(names):
            seconds[name] = ingest(db, name, docs[i :: args.parts], url)
        targets: dict[str, str | list[str]] = {"all": "all", "list": names}
        for target in targets.values():
            for q in warmup:
                db.search(q, collection=target)
        for mode in args.modes:
            for label, target in targets.items():
                lat = []
                for q in queries:
                    t = time.perf_counter()
                    resp = db.search(q, collection=target, mode=mode, k=10)
                    lat.append((time.perf_counter() - t) * 1000 - resp.timings_ms.get("embed", 0))
                p = np.percentile(lat, [50, 95, 99])
                line = {
                    "backend": backend,
                    "mode": mode,
                    "target": label,
                    "collections": 1 if label == "all" else args.parts,
                    "chunks": args.chunks * args.parts,
                    "p50_ms": round(float(p[0]), 2),
                    "p95_ms": round(float(p[1]), 2),
                    "p99_ms": round(float(p[2]), 2),
                    "ingest_s": seconds,
                }
                print(json.dumps(line), flush=True)
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
