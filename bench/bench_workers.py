"""Ingestion throughput of 1 vs N ``engram worker`` processes sharing one PostgreSQL.

    python bench/bench_workers.py --docs 20000 --job-size 250 --workers 1 4

A batch of synthetic documents (~120 words each, a Zipf-like vocabulary so the BM25 postings
look like real text's) is queued as jobs of ``--job-size`` documents, as the API queues a
large batch; then ``N`` real ``engram worker --burst`` processes run them all and exit. The
time is measured from spawning the workers to the last job finished (process start-up and
model loading included). Afterwards the collection is checked: exactly ``--docs`` distinct
keys, each at version 1 (nothing lost, nothing ingested twice), every job succeeded at its
first attempt, and the jobs' reports add up to ``--docs`` added documents.
``--collections C`` spreads the jobs over C collections (for comparison: writers of one
collection share its vocabulary rows and its statistics row, which each write transaction
updates at its very end; writers of different collections share nothing but the embedding
cache).

Each run uses its own collection and its own texts (tagged with the run), so the embedding
cache of one run never serves another. ``--database-url`` points at an existing database
(its role must be able to create the tables, or they exist already); without it a throwaway
pgserver (PostgreSQL 16 + pgvector) is started in a temporary directory. ``--model`` is the
embedding model of the workers: ``hash`` (default; no model cost, so the numbers measure the
store and the pipeline) or a real one such as ``bge-small-en-v1.5``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import engram
from engram.jobs import enqueue_batch


def make_docs(n: int, tag: str, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks
    p /= p.sum()
    words = rng.choice(len(vocab), size=(n, 120), p=p)
    return [
        {
            "id": f"{tag}-{i:06d}",
            "title": f"Document {i}",
            "text": f"{tag} " + " ".join(vocab[w] for w in row),
            "metadata": {"n": i, "group": i % 10},
        }
        for i, row in enumerate(words)
    ]


def run(
    url: str, data_dir: Path, docs: int, job_size: int, workers: int, model: str, collections: int
) -> dict[str, Any]:
    tag = f"r{workers}x{uuid.uuid4().hex[:6]}"
    names = [f"bench_{tag}_{c}" for c in range(collections)]
    settings = engram.Settings.build(data_dir=data_dir, database_url=url, embedding_model=model)
    batch = make_docs(docs, tag)
    with engram.Engram(settings) as db:
        t0 = time.perf_counter()
        jobs = [
            enqueue_batch(
                db.store,
                batch[i : i + job_size],
                collection=names[(i // job_size) % collections],
                tenant="bench",
            )
            for i in range(0, docs, job_size)
        ]
        enqueue_s = time.perf_counter() - t0

        env = {
            **os.environ,
            "ENGRAM_DATABASE_URL": url,
            "ENGRAM_DATA_DIR": str(data_dir),
            "ENGRAM_EMBEDDING_MODEL": model,
        }
        cmd = [sys.executable, "-c", "from engram.cli import main; main()", "worker", "--burst"]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        logs = [p.communicate()[1] for p in procs]
        elapsed = time.perf_counter() - t0
        codes = [p.returncode for p in procs]

        finished = [db.store.get_job(j.id, tenant="bench") for j in jobs]
        per_worker = [log.count(" succeeded in ") for log in logs]
        listed = [
            d for name in names for d in db.documents(name, limit=docs + 1000, tenant="bench")
        ]
        keys = {d.key for d in listed}
        versions = {d.version for d in listed}
        added = sum((j.result or {}).get("added", 0) for j in finished)
        report = {
            "workers": workers,
            "collections": collections,
            "model": model,
            "docs": docs,
            "jobs": len(jobs),
            "job_size": job_size,
            "enqueue_s": round(enqueue_s, 2),
            "elapsed_s": round(elapsed, 2),
            "docs_per_s": round(docs / elapsed, 1),
            "jobs_per_worker": per_worker,
            "exit_codes": codes,
            "documents": len(listed),
            "distinct_keys": len(keys),
            "lost": docs - len(keys),
            "duplicated": len(listed) - len(keys),
            "versions": sorted(versions),
            "jobs_succeeded": sum(j.status == "succeeded" for j in finished),
            "max_attempts": max(j.attempts for j in finished),
            "reported_added": added,
        }
        report["ok"] = (
            report["lost"] == 0
            and report["duplicated"] == 0
            and report["versions"] == [1]
            and report["jobs_succeeded"] == len(jobs)
            and report["max_attempts"] == 1
            and added == docs
            and codes == [0] * workers
        )
        if not report["ok"]:
            for log in logs:
                sys.stderr.write(log[-3000:])
        return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--job-size", type=int, default=250)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--model", default="hash")
    ap.add_argument(
        "--collections",
        type=int,
        default=1,
        help="Spread the jobs over this many collections (default: all into one).",
    )
    ap.add_argument("--database-url", default=os.environ.get("ENGRAM_DATABASE_URL"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="engram-bench-") as tmp:
        server = None
        url = args.database_url
        if not url:
            import pgserver

            server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
            server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
            server.psql("CREATE ROLE bench LOGIN PASSWORD 'bench';")
            server.psql("CREATE DATABASE bench OWNER bench;")
            server.psql("\\c bench\nCREATE EXTENSION IF NOT EXISTS vector;")
            url = server.get_uri("bench").replace("postgres:@", "bench:bench@", 1)
        results = []
        for n in args.workers:
            results.append(
                run(
                    url,
                    Path(tmp) / "data",
                    args.docs,
                    args.job_size,
                    n,
                    args.model,
                    args.collections,
                )
            )
            print(json.dumps(results[-1]), flush=True)
        if len(results) > 1:
            base = results[0]["docs_per_s"]
            for r in results[1:]:
                print(
                    f"{r['workers']} workers: {r['docs_per_s'] / base:.2f}x the throughput of"
                    f" {results[0]['workers']}"
                )
        if server is not None:
            server.cleanup()
        if not all(r["ok"] for r in results):
            sys.exit(1)


if __name__ == "__main__":
    main()
