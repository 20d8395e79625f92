"""Search latency per mode at a given collection size, query embedding excluded.

    python bench/bench_search.py --chunks 10000 100000 --queries 300
    python bench/bench_search.py --chunks 100000 --database-url postgresql://u:p@host/db


Passages are built from SciFact sentences (so BM25 sees real term statistics: 3-6 random
sentences each, one chunk per passage); vectors come from the deterministic hash embedder
(384-d), i.e. synthetic, which is what the 100k-scale test allows. The query embedding is
timed apart and excluded from the search latency (see --real-model to time it with bge).
Prints one JSON line per (size, mode) and the peak RSS. With --database-url the collection
lives in PostgreSQL (``bench_<size>``); one that already holds the right number of chunks is
reused, since ingesting 100k chunks takes minutes there.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import engram

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def sentences(corpus: Path) -> list[str]:
    out = []
    with corpus.open() as fh:
        for line in fh:
            text = json.loads(line)["text"]
            out.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 30)
    return out


def passages(pool: list[str], n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"id": f"p{i}", "text": " ".join(rng.sample(pool, rng.randint(3, 6)))} for i in range(n)
    ]


class Writer(threading.Thread):
    """Replaces a random passage with a new text every ``interval`` seconds, through its own
    engram instance (as another process would): the collection keeps its size."""

    def __init__(self, root: Path, args: argparse.Namespace, name: str, pool: list[str], size: int):
        super().__init__(daemon=True)
        self.db = engram.open(
            root,
            embedding_model="hash-384",
            chunk_tokens=512,
            cache_size=0,
            database_url=args.database_url,
        )
        self.name_, self.pool, self.size, self.interval = name, pool, size, args.write_interval
        self.count = 0
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        rng = random.Random()  # not seeded: a text stored by an earlier run would be unchanged
        while not self.done.wait(self.interval):
            text = " ".join(rng.sample(self.pool, rng.randint(3, 6)))
            self.db.add(
                [{"id": f"p{rng.randrange(self.size)}", "text": text}], collection=self.name_
            )
            self.count += 1

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--dataset", type=Path, default=DATA)
    ap.add_argument("--data-dir", type=Path, default=None, help="reuse a directory (default: temp)")
    ap.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite)")
    ap.add_argument(
        "--postings-cache-mb",
        type=int,
        default=256,
        help="PostgreSQL: memory for cached posting lists (0: every query reads them all)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="untimed queries first (other queries than the timed ones)",
    )
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["keyword", "vector", "hybrid"],
        choices=["keyword", "vector", "hybrid"],
        help="modes to time, in this order (each one warms caches for the next)",
    )
    ap.add_argument(
        "--write-interval",
        type=float,
        default=0.0,
        help="while measuring, replace one passage with a new version every this many seconds"
        " from a second engram instance (the posting lists it touches go stale in the cache)",
    )
    args = ap.parse_args()

    pool = sentences(args.dataset / "corpus.jsonl")
    every = [json.loads(line)["text"] for line in (args.dataset / "queries.jsonl").open()]
    queries = every[: args.queries]
    # Warm-up queries come after the timed ones: a cache warmed by them helps the timed
    # queries only through what they share (frequent terms), not by having seen them.
    warmup = every[args.queries : args.queries + args.warmup]
    for size in args.chunks:
        root = args.data_dir or Path(tempfile.mkdtemp(prefix="engram-bench-"))
        # cache_size=0: every query is computed (the result cache would hide the search cost).
        name = f"bench_{size}" if args.database_url else "bench"
        with engram.open(
            root / f"n{size}",
            embedding_model="hash-384",
            chunk_tokens=512,
            cache_size=0,
            database_url=args.database_url,
            postings_cache_mb=args.postings_cache_mb,
        ) as db:
            names = {c.name: c.chunk_count for c in db.collections()}
            ingest_s, added = None, None
            if names.get(name) != size:
                if name in names:
                    db.delete_collection(name)
                t0 = time.perf_counter()
                docs = passages(pool, size)
                added = db.add(docs[:1], collection=name).added
                # A fresh collection nobody searches yet: PostgreSQL builds its HNSW index
                # once at the end instead of maintaining it row by row (as an import does).
                with db.store.bulk_load(db.collection(name)):
                    added += db.add(docs[1:], collection=name).added
                ingest_s = round(time.perf_counter() - t0, 1)
                if args.database_url:  # what autovacuum would do shortly after a bulk load
                    import psycopg

                    with psycopg.connect(args.database_url, autocommit=True) as conn:
                        conn.execute("VACUUM ANALYZE chunks, postings, vocabulary, documents")
            assert db.collection(name).chunk_count == size, db.collection(name)
            # Warm up: loads the HNSW index and the vocabulary, fills caches.
            for q in warmup:
                db.search(q, collection=name, mode="hybrid")
            writer = (
                Writer(root / f"n{size}", args, name, pool, size)
                if args.write_interval > 0
                else None
            )
            for mode in args.modes:
                lat, embed = [], []
                for q in queries:
                    t = time.perf_counter()
                    resp = db.search(q, collection=name, mode=mode, k=10)
                    total = (time.perf_counter() - t) * 1000
                    e = resp.timings_ms.get("embed", 0.0)
                    lat.append(total - e)
                    embed.append(e)
                p = np.percentile(lat, [50, 95, 99])
                cache = getattr(db.store, "postings_cache", None)
                extra = (
                    {
                        "postings_cache_mb": args.postings_cache_mb,
                        "cached_lists": len(cache),
                        "cached_mb": round(cache.nbytes / 2**20, 1),
                        "list_hits": cache.hits,
                        "list_reads": cache.misses,
                    }
                    if args.database_url and cache is not None
                    else {"postings_cache_mb": 0}
                    if args.database_url
                    else {}
                )
                print(
                    json.dumps(
                        {
                            "chunks": size,
                            "mode": mode,
                            "p50_ms": round(float(p[0]), 2),
                            "p95_ms": round(float(p[1]), 2),
                            "p99_ms": round(float(p[2]), 2),
                            "hash_embed_p50_ms": round(float(np.median(embed)), 3),
                            "ingest_s": ingest_s,
                            "added": added,
                            "backend": "postgres" if args.database_url else "sqlite",
                            **extra,
                            **({"writes": writer.count} if writer else {}),
                        }
                    ),
                    flush=True,
                )
            if writer:
                writer.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(rss_mb, 1), "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
