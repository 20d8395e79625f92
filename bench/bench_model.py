"""Raw throughput of the bundled ONNX models on SciFact passages.

Embeds the first N SciFact passages (title + " " + text) at several sequence caps and batch
sizes, and scores (query, passage) pairs with the cross-encoder. Prints a table and one JSON
line (for tracking over time). Run from the repository root::

    python bench/bench_model.py                    # ../shared/datasets, N=1000
    python bench/bench_model.py /data/beir -n 300 --pairs 100
    python bench/bench_model.py -n 200 --model multilingual-e5-small --batch-sizes 1,16 --pairs 0

The machine's load average is recorded: on a shared box other work skews the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing

from engram.providers import DEFAULT_EMBEDDER, DEFAULT_RERANKER  # noqa: E402
from engram.providers.embedders.onnx import OnnxEmbedder  # noqa: E402
from engram.providers.rerankers.onnx import OnnxCrossEncoder  # noqa: E402


def load_scifact(datasets: Path, n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` passages and the queries of SciFact under ``datasets``."""
    root = datasets / "scifact"
    passages: list[str] = []
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if len(passages) >= n:
                break
            doc = json.loads(line)
            passages.append(f"{doc.get('title', '')} {doc['text']}".strip())
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f]
    return passages, queries


def _best_seconds(run: Callable[[], object], repeat: int) -> float:
    # The fastest of several runs: on a shared machine the slow runs measure the neighbours.
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_embedder(
    passages: list[str],
    max_lengths: list[int],
    batch_sizes: list[int],
    threads: int | None,
    repeat: int = 1,
    model: str = DEFAULT_EMBEDDER,
) -> list[dict[str, float | int]]:
    """Passages per second for each (max_length, batch_size); tokenisation included."""
    rows: list[dict[str, float | int]] = []
    for max_length in max_lengths:
        embedder = OnnxEmbedder(model, max_length=max_length, threads=threads)
        embedder.embed_batch(passages[:8])  # load the session and warm up outside the timing
        start = time.perf_counter()
        lengths = [len(e.ids) for e in embedder._encode(passages)]
        tokenize_s = time.perf_counter() - start
        for batch_size in batch_sizes:
            embedder.batch_size = batch_size
            seconds = _best_seconds(partial(embedder.embed_batch, passages), repeat)
            rows.append(
                {
                    "max_tokens": max_length,
                    "batch": batch_size,
                    "n": len(passages),
                    "seconds": round(seconds, 2),
                    "per_s": round(len(passages) / seconds, 1),
                    "mean_tokens": round(sum(lengths) / len(lengths), 1),
                    "tokenize_ms": round(tokenize_s * 1000, 1),
                }
            )
            print(_row("embed", rows[-1]), flush=True)
        embedder.close()
    return rows


def bench_reranker(
    passages: list[str],
    queries: list[str],
    n_pairs: int,
    max_lengths: list[int],
    batch_size: int,
    threads: int | None,
    repeat: int = 1,
) -> list[dict[str, float | int]]:
    """Pairs per second: each query against 20 passages, as when reranking a top 20."""
    pairs = [(queries[i // 20 % len(queries)], passages[i % len(passages)]) for i in range(n_pairs)]
    rows: list[dict[str, float | int]] = []
    for max_length in max_lengths:
        reranker = OnnxCrossEncoder(
            DEFAULT_RERANKER, max_length=max_length, batch_size=batch_size, threads=threads
        )
        reranker.score_pairs(pairs[:4])
        seconds = _best_seconds(partial(reranker.score_pairs, pairs), repeat)
        rows.append(
            {
                "max_tokens": max_length,
                "batch": batch_size,
                "n": len(pairs),
                "seconds": round(seconds, 2),
                "per_s": round(len(pairs) / seconds, 1),
                "ms_per_20": round(seconds / len(pairs) * 20 * 1000),
            }
        )
        print(_row("rerank", rows[-1]), flush=True)
        reranker.close()
    return rows


def _row(kind: str, r: dict[str, float | int]) -> str:
    return (
        f"{kind:<7}{r['max_tokens']:>6}{r['batch']:>7}{r['n']:>7}{r['seconds']:>10}{r['per_s']:>10}"
    )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run both benchmarks, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "datasets",
        nargs="?",
        type=Path,
        default=REPO_ROOT / ".." / "shared" / "datasets",
        help="folder holding scifact/ (default: ../shared/datasets from the repo root)",
    )
    parser.add_argument("--model", default=DEFAULT_EMBEDDER, help="embedding model to time")
    parser.add_argument("-n", type=int, default=1000, help="passages to embed (default 1000)")
    parser.add_argument("--max-tokens", type=_ints, default=[256, 512], help="e.g. 256,512")
    parser.add_argument("--batch-sizes", type=_ints, default=[16, 32, 64], help="e.g. 16,32,64")
    parser.add_argument("--pairs", type=int, default=200, help="reranker pairs (0: skip)")
    parser.add_argument("--rerank-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--repeat", type=int, default=1, help="report the best of R runs")
    args = parser.parse_args(argv)

    passages, queries = load_scifact(args.datasets, args.n)
    load_before = os.getloadavg()[0]
    print(f"{'model':<7}{'max':>6}{'batch':>7}{'n':>7}{'seconds':>10}{'per_s':>10}")
    embed_rows = bench_embedder(
        passages, args.max_tokens, args.batch_sizes, args.threads, args.repeat, args.model
    )
    rerank_rows = (
        bench_reranker(
            passages,
            queries,
            args.pairs,
            args.max_tokens,
            args.rerank_batch,
            args.threads,
            args.repeat,
        )
        if args.pairs
        else []
    )
    result = {
        "bench": "model",
        "embedder": args.model,
        "reranker": DEFAULT_RERANKER,
        "cpus": os.cpu_count(),
        "threads": args.threads or os.cpu_count(),
        "repeat": args.repeat,
        "machine": platform.machine(),
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "embed": embed_rows,
        "rerank": rerank_rows,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
