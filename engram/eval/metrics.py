"""Retrieval metrics that agree exactly with ``trec_eval`` (and so with BEIR's numbers).

A *run* maps each query id to either ``{doc_id: score}`` or a ranked list of doc ids; *qrels*
map each query id to ``{doc_id: graded relevance}``. Conventions, all those of ``trec_eval``
as wrapped by ``pytrec_eval`` (which BEIR uses):

- A scored run is ranked by score descending, ties broken by doc id descending (plain string
  order, which equals ``strcmp`` byte order for UTF-8). Scores are compared after rounding
  to float32, because ``trec_eval`` stores them as C ``float``: 1.0 and 1.0 + 1e-9 tie.
- A document is relevant when its relevance is ``> 0``; unjudged documents count as 0.
- nDCG gain is the relevance itself (negative relevance adds nothing), discounted by
  ``log2(rank + 1)``; the ideal ranking is built from the qrels and cut at the same ``k``.
- P@k always divides by ``k``, even when fewer than ``k`` documents were retrieved.
- A query with no relevant document scores 0 on every metric.
- :func:`evaluate` averages over **every query in the qrels**: a query missing from the run
  scores 0 (``trec_eval -c``), and run queries without qrels are ignored. BEIR instead
  averages over the queries the run answered, which inflates scores when a system silently
  drops queries; here a dropped query is a visible loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engram.errors import InvalidInput

Judgements = Mapping[str, int]
Qrels = Mapping[str, Judgements]
QueryResult = Mapping[str, float] | Sequence[str]
Run = Mapping[str, QueryResult]

DEFAULT_KS: tuple[int, ...] = (5, 10, 100)
METRICS: tuple[str, ...] = ("ndcg", "recall", "mrr", "p")

__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "Qrels",
    "Run",
    "evaluate",
    "evaluate_per_query",
    "latency_percentiles",
    "ndcg_at_k",
    "precision_at_k",
    "rank",
    "recall_at_k",
    "reciprocal_rank_at_k",
]


def rank(result: QueryResult) -> list[str]:
    """Doc ids of one query's result in rank order.

    A ``{doc_id: score}`` mapping is sorted the ``trec_eval`` way (float32 score descending,
    then doc id descending); a sequence is taken as already ranked and must not repeat a doc id.
    """
    if isinstance(result, Mapping):
        doc_ids = list(result)
        # trec_eval keeps scores as C floats: scores equal in float32 are ties
        with np.errstate(over="ignore"):
            scores = np.asarray([result[d] for d in doc_ids], dtype=np.float64)
            scores32 = scores.astype(np.float32).tolist()
        order = sorted(range(len(doc_ids)), key=lambda i: (scores32[i], doc_ids[i]), reverse=True)
        return [doc_ids[i] for i in order]
    if isinstance(result, str):
        raise InvalidInput("a ranked result must be a sequence of doc ids, not a string")
    ranking = list(result)
    if len(set(ranking)) != len(ranking):
        raise InvalidInput(
            "a ranked result repeats a doc id",
            hint="each document may appear once per query",
        )
    return ranking


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"cutoff k must be a positive integer, got {k!r}")


def _dcg(gains: Iterable[int]) -> float:
    # rank r (1-based) is discounted by log2(r + 1); enumerate gives r - 1
    return sum(gain / math.log2(i + 2) for i, gain in enumerate(gains) if gain > 0)


def ndcg_at_k(ranking: Sequence[str], judgements: Judgements, k: int) -> float:
    """nDCG@k of one ranked list: graded gain ``rel``, ``log2`` discount, ideal from qrels."""
    _check_k(k)
    ideal = _dcg(sorted((r for r in judgements.values() if r > 0), reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    return _dcg(judgements.get(doc_id, 0) for doc_id in ranking[:k]) / ideal


def _hits(ranking: Sequence[str], judgements: Judgements, k: int) -> int:
    return sum(1 for doc_id in ranking[:k] if judgements.get(doc_id, 0) > 0)


def recall_at_k(ranking: Sequence[str], judgements: Judgements, k: int) -> float:
    """Fraction of the relevant documents (``rel > 0``) found in the top ``k``."""
    _check_k(k)
    relevant = sum(1 for r in judgements.values() if r > 0)
    return _hits(ranking, judgements, k) / relevant if relevant else 0.0


def precision_at_k(ranking: Sequence[str], judgements: Judgements, k: int) -> float:
    """Relevant documents in the top ``k``, divided by ``k`` (not by the number retrieved)."""
    _check_k(k)
    return _hits(ranking, judgements, k) / k


def reciprocal_rank_at_k(ranking: Sequence[str], judgements: Judgements, k: int) -> float:
    """``1 / rank`` of the first relevant document in the top ``k``, else 0."""
    _check_k(k)
    for i, doc_id in enumerate(ranking[:k]):
        if judgements.get(doc_id, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_FUNCTIONS = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "mrr": reciprocal_rank_at_k,
    "p": precision_at_k,
}


def evaluate_per_query(
    run: Run, qrels: Qrels, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, dict[str, float]]:
    """Every metric at every cutoff for each query in ``qrels``, e.g.
    ``{"q1": {"ndcg@10": 0.63, "recall@10": 1.0, "mrr@10": 0.5, "p@10": 0.1, ...}}``.

    Queries absent from ``run`` score 0; queries absent from ``qrels`` are ignored.
    """
    cutoffs = sorted(set(ks))
    if not cutoffs:
        raise InvalidInput("evaluate needs at least one cutoff k")
    for k in cutoffs:
        _check_k(k)
    scores: dict[str, dict[str, float]] = {}
    for qid, judgements in qrels.items():
        ranking = rank(run[qid]) if qid in run else []
        scores[qid] = {
            f"{name}@{k}": fn(ranking, judgements, k)
            for name, fn in _FUNCTIONS.items()
            for k in cutoffs
        }
    return scores


def evaluate(run: Run, qrels: Qrels, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean of every metric at every cutoff over all queries in ``qrels``.

    Keys are ``"<metric>@<k>"`` for metric in ``ndcg``, ``recall``, ``mrr``, ``p`` and each
    ``k`` in ``ks``; with the default ``ks=(5, 10, 100)`` that includes ``"ndcg@10"``,
    ``"recall@100"``, ``"mrr@10"`` and ``"p@5"``. Queries missing from ``run`` count as 0.
    """
    if not qrels:
        raise InvalidInput("cannot evaluate against empty qrels")
    per_query = evaluate_per_query(run, qrels, ks)
    keys = next(iter(per_query.values())).keys()
    return {key: math.fsum(q[key] for q in per_query.values()) / len(per_query) for key in keys}


def latency_percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """``{"p50", "p95", "p99"}`` of latency samples in milliseconds (linear interpolation
    between closest ranks, numpy's default)."""
    if len(samples_ms) == 0:
        raise InvalidInput("latency_percentiles needs at least one sample")
    p50, p95, p99 = np.percentile(np.asarray(samples_ms, dtype=float), [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}
