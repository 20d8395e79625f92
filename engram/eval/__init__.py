"""Retrieval evaluation: read BEIR datasets, score runs with trec_eval-compatible metrics."""

from engram.eval.beir import BeirDataset, iter_corpus, load_beir, load_qrels, load_queries
from engram.eval.metrics import (
    DEFAULT_KS,
    METRICS,
    Qrels,
    Run,
    evaluate,
    evaluate_per_query,
    latency_percentiles,
    ndcg_at_k,
    precision_at_k,
    rank,
    recall_at_k,
    reciprocal_rank_at_k,
)

__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "BeirDataset",
    "Qrels",
    "Run",
    "evaluate",
    "evaluate_per_query",
    "iter_corpus",
    "latency_percentiles",
    "load_beir",
    "load_qrels",
    "load_queries",
    "ndcg_at_k",
    "precision_at_k",
    "rank",
    "recall_at_k",
    "reciprocal_rank_at_k",
]
