"""Ingestion throughput next to the raw model throughput on the same texts, re-ingest speed
of unchanged documents, and peak RSS.

    python bench/bench_ingest.py --docs 1000              # first 1000 SciFact documents
    python bench/bench_ingest.py --docs 0                 # the whole corpus

1. raw model: embed exactly the chunk texts the pipeline embeds (same batching: sorted by
   length, batch size from the settings), timed alone;
2. pipeline: ``db.add(...)`` into an empty data directory (load, hash, chunk, analyze,
   embed, write, index), timed end to end;
3. re-ingest: the same documents again, all unchanged (hash check only).
Overhead = pipeline time / raw model time - 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import engram
from engram.ingest.chunking import chunk_document
from engram.ingest.loaders import load_path
from engram.ingest.pipeline import embedding_text

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=DATA)
    ap.add_argument("--docs", type=int, default=1000, help="0 = all")
    ap.add_argument("--model", default="bge-small-en-v1.5")
    args = ap.parse_args()
    corpus = args.dataset / "corpus.jsonl"
    docs = load_path(corpus, key=corpus.name)
    if args.docs:
        docs = docs[: args.docs]

    root = Path(tempfile.mkdtemp(prefix="engram-ingest-"))
    with engram.open(root, embedding_model=args.model) as db:
        embedder = db.embedder()
        s = db.settings
        texts = list(
            dict.fromkeys(
                embedding_text(d.title, span.heading_path, span.text)
                for d in docs
                for span in chunk_document(
                    d,
                    embedder.token_offsets,
                    max_tokens=s.chunk_tokens,
                    overlap_tokens=s.chunk_overlap,
                )
            )
        )
        embedder.embed_batch(texts[:8])  # load the model outside the timings
        t0 = time.perf_counter()
        size = max(s.embed_batch_size * 4, 32)
        for i in range(0, len(texts), size):
            embedder.embed_batch(texts[i : i + size])
        raw = time.perf_counter() - t0

    root = Path(tempfile.mkdtemp(prefix="engram-ingest-"))
    with engram.open(root, embedding_model=args.model) as db:
        db.embedder().embed_batch(["warm up"])
        t0 = time.perf_counter()
        first = db.add(docs, collection="bench")
        pipeline = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = db.add(docs, collection="bench")
        reingest = time.perf_counter() - t0
    assert again.unchanged == len(docs), again
    result = {
        "docs": len(docs),
        "chunks": len(texts),
        "raw_model_s": round(raw, 2),
        "raw_model_chunks_per_s": round(len(texts) / raw, 1),
        "pipeline_s": round(pipeline, 2),
        "pipeline_docs_per_s": round(len(docs) / pipeline, 1),
        "pipeline_chunks_per_s": round(first.chunks_embedded / pipeline, 1),
        "pipeline_model_s": round(first.model_seconds, 2),
        "overhead_vs_raw_model": round(pipeline / raw - 1, 3),
        "reingest_unchanged_docs_per_s": round(len(docs) / reingest, 0),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
