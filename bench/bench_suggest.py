"""Suggest (autocomplete) latency at ~100k chunks, on the embedded backend or PostgreSQL.

The corpus is SciFact's 5,183 abstracts (``/work/shared/datasets/scifact/corpus.jsonl``,
read in place), ingested ``--copies`` times under distinct keys with 64-token chunks: a real
scientific vocabulary (~30k terms) at 100k chunks, with titles. The past searches are
SciFact's queries, recorded as ``search`` events (each asked 1-5 times). Prefixes are cut
from the corpus's words (2-8 letters, one word in five after one or two whole words) and a
fifth of those of 4+ letters get a typo (a letter replaced, dropped, doubled or swapped), so
that the one-edit path is measured too. The hash embedder keeps ingestion fast (suggest does
not embed). Prints JSON: p50/p95/p99 in ms of ``Engram.suggest`` in-process, overall, for
prefixes as typed and for typos, and of the CPU time the calling thread spent in it (on a
shared machine the wall time also holds the waits for a core; on PostgreSQL the server's
work is not in it).

    python bench/bench_suggest.py                # embedded (SQLite) backend
    python bench/bench_suggest.py --postgres     # a throwaway pgserver (PostgreSQL + pgvector)
    python bench/bench_suggest.py --keep /tmp/s  # keep the data (and the pgserver) in /tmp/s:
                                                 # a second run with it skips the ingestion

On PostgreSQL the ingestion runs inside ``Store.bulk_load`` (the HNSW index is built once at
the end instead of maintained row by row), which is what made it take over 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import engram
from engram.config import Settings
from engram.store.records import EventWrite

DATA = Path("/work/shared/datasets/scifact")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    at = lambda p: ordered[min(len(ordered) - 1, int(p * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(at(0.95), 3),
        "p99": round(at(0.99), 3),
    }


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word))
    kind = rng.choice(["replace", "drop", "double", "swap"])
    if kind == "replace":
        return word[:i] + rng.choice("aeiourstln") + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :] if i > 0 else word


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=4, help="Times the corpus is ingested.")
    ap.add_argument("--prefixes", type=int, default=2000)
    ap.add_argument("--postgres", action="store_true", help="Start a throwaway pgserver.")
    ap.add_argument("--database-url", default=None, help="An existing PostgreSQL database.")
    ap.add_argument("--keep", type=Path, default=None, help="Keep (and reuse) the data here.")
    args = ap.parse_args()
    rng = random.Random(14)
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (
        nullcontext(str(args.keep))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="bench-suggest-")
    ) as tmp:
        url = args.database_url
        server = None
        if args.postgres and not url:
            import pgserver

            fresh = not (Path(tmp) / "pg").exists()
            server = pgserver.get_server(
                Path(tmp) / "pg", cleanup_mode=None if args.keep else "stop"
            )
            if fresh:
                server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
                server.psql("CREATE ROLE bench LOGIN PASSWORD 'bench';")
                server.psql("CREATE DATABASE bench OWNER bench;")
                server.psql("\\c bench\nCREATE EXTENSION IF NOT EXISTS vector;")
            url = server.get_uri("bench").replace("postgres:@", "bench:bench@", 1)
        settings = Settings.build(
            data_dir=Path(tmp) / "data", embedding_model="hash", chunk_tokens=64,
            chunk_overlap=8, database_url=url,
        )  # fmt: skip
        with engram.open(settings=settings) as db:
            reused = any(c.name == "scifact" for c in db.collections())
            started = time.perf_counter()
            if not reused:
                db.create_collection("scifact", language="en")
                with db.store.bulk_load(db.collection("scifact")):
                    for copy in range(args.copies):
                        batch = [
                            {"id": f"{copy}/{d['_id']}", "title": d["title"], "text": d["text"]}
                            for d in docs
                        ]
                        db.add(batch, collection="scifact")
            ingest_s = time.perf_counter() - started
            chunks = db.collection("scifact").chunk_count
            events = [
                EventWrite("default", "search", query=" ".join(q.lower().split()),
                           result_count=10, data={"collection": "scifact"})
                for q in queries
                for _ in range(rng.randint(1, 5))
            ]  # fmt: skip
            if not reused:
                db.store.record_events(events)
            words = [w for d in docs[:2000] for w in re.findall(r"[A-Za-z]{3,}", d["text"])]
            prefixes: list[tuple[str, bool]] = []
            while len(prefixes) < args.prefixes:
                word = rng.choice(words)
                cut = word[: rng.randint(2, min(8, len(word)))]
                if len(cut) >= 4 and rng.random() < 0.2:
                    prefixes.append((typo(cut, rng), True))
                    continue
                if rng.random() < 0.2:
                    cut = " ".join(rng.sample(words, rng.randint(1, 2))) + " " + cut
                prefixes.append((cut, False))
            for prefix, _ in prefixes[:200]:  # warm up: caches, analyzer, code paths
                db.suggest(prefix, collection="scifact")
            timings: dict[bool, list[float]] = {False: [], True: []}
            empty = 0
            cpu: list[float] = []  # this thread's CPU time: the work, without the waits
            for prefix, is_typo in prefixes:
                c0, t0 = time.thread_time(), time.perf_counter()
                found = db.suggest(prefix, collection="scifact")
                timings[is_typo].append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
                empty += not found
        if server is not None and not args.keep:
            server.cleanup()
    print(
        json.dumps(
            {
                "backend": "postgres" if url else "sqlite",
                "chunks": chunks,
                "documents": args.copies * len(docs),
                "past_queries": len(queries),
                "ingest_s": None if reused else round(ingest_s, 1),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "all_ms": percentiles(timings[False] + timings[True]),
                "as_typed_ms": percentiles(timings[False]),
                "typo_ms": percentiles(timings[True]),
                "client_cpu_ms": percentiles(cpu),
                "without_suggestion": empty,
                "ok": True,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
