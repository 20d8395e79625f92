"""``engram eval``: ingest a BEIR dataset into its own collection, run its queries, score."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Engram
from ..new_collection import language_and_model
from ..types import IngestReport, SearchMode
from .beir import BeirDataset, load_beir
from .metrics import evaluate, latency_percentiles

# Chunks fetched per query: documents are scored by their best chunk, and Recall@100 needs
# about 100 distinct documents after chunks of the same document are merged.
EVAL_DEPTH = 150
FIRST_DOCS = 64  # documents a first ingest detects a new collection's language from


@dataclass(slots=True)
class EvalResult:
    dataset: str
    mode: SearchMode
    rerank: bool
    queries: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    embed_ms: dict[str, float]
    ingest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "mode": self.mode,
            "rerank": self.rerank,
            "queries": self.queries,
            "metrics": {k: round(v, 4) for k, v in self.metrics.items()},
            "latency_ms": self.latency_ms,
            "query_embedding_ms": self.embed_ms,
            "ingest": self.ingest,
        }


def collection_name(dataset: BeirDataset, model_id: str) -> str:
    return f"eval-{dataset.name}-{model_id}"


def model_of(db: Engram, dataset: BeirDataset) -> str:
    """The model the dataset's collection gets from ``engram ingest corpus.jsonl`` (its
    language's, engram.embedders), from the same first documents."""
    head = itertools.islice(dataset.iter_corpus(), FIRST_DOCS)
    texts = [d.title + "\n" + d.text for d in head]
    return language_and_model(db.embedders, db.settings, texts, None)[1].model_id


def prepare(
    db: Engram,
    dataset: BeirDataset,
    progress: Callable[[int, int], None] | None = None,
    model: str | None = None,
) -> IngestReport:
    """Ingest (or verify, at hash-check speed) the dataset's corpus into its collection, the
    way ``engram ingest corpus.jsonl`` would: the evaluation measures the product's path."""
    model = model or model_of(db, dataset)
    name = collection_name(dataset, model)
    return db.ingest(dataset.corpus_path, collection=name, progress=progress, model=model)


def run_eval(
    db: Engram,
    dataset_dir: str | Path,
    *,
    modes: tuple[SearchMode, ...] = ("hybrid",),
    rerank: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EvalResult]:
    """Evaluate each mode on ``dataset_dir`` (BEIR layout); ``limit`` caps the query count."""
    dataset = load_beir(dataset_dir)
    model = model_of(db, dataset)
    report = prepare(db, dataset, progress, model)
    name = collection_name(dataset, model)
    queries = list(dataset.queries.items())[:limit] if limit else list(dataset.queries.items())
    qrels = {qid: dataset.qrels[qid] for qid, _ in queries}
    results = []
    for mode in modes:
        run: dict[str, dict[str, float]] = {}
        latencies: list[float] = []
        embeds: list[float] = []
        for qid, text in queries:
            t0 = time.perf_counter()
            response = db.search(
                text, collection=name, k=EVAL_DEPTH, mode=mode, rerank=rerank, highlight=False
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            embeds.append(response.timings_ms.get("embed", 0.0))
            scores: dict[str, float] = {}
            # Rank documents by their best chunk; use rank-derived scores so ties and
            # reranker scores keep the order the engine returned.
            n = len(response.results)
            for position, r in enumerate(response.results):
                scores.setdefault(r.document_key, float(n - position))
            run[qid] = scores
        results.append(
            EvalResult(
                dataset=dataset.name,
                mode=mode,
                rerank=rerank,
                queries=len(queries),
                metrics=evaluate(run, qrels, ks=(5, 10, 100)),
                latency_ms=latency_percentiles(latencies),
                embed_ms=latency_percentiles(embeds),
                ingest=report.to_dict(),
            )
        )
    return results
