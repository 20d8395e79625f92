"""Cross-encoder reranking, blended with the ranking it rescores.

The cross-encoder scores the top ``rerank_candidates`` fused candidates; the final order is a
rank blend of its ranking and the fused one::

    score = w / (k + model rank) + (1 - w) / (k + fused rank)      k = BLEND_K = 5

with ``w`` = ``ENGRAM_RERANK_WEIGHT`` (default 0.5). Measured on four datasets
(docs/benchmarks.md, ``bench/tune_rerank.py``): ordering by the model alone (``w`` = 1) lifts
the keyword leg everywhere but lowers hybrid and vector search where the dense model is
stronger than the English MS MARCO cross-encoder (SciFact: −0.024 nDCG@10); the blend keeps
the fused ranking's evidence, so a hit both rankings put near the top stays there, and
``--rerank`` lowered nDCG@10 on none of the datasets and modes measured. Ranks, not scores:
the model's logits and the fused scores have unrelated scales that vary per query, and
normalising them per query was no better there. Candidates beyond the rescored head keep
their fused order and score, after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The k of the rank blend: small, so the first ranks weigh clearly more than the tenth.
BLEND_K = 5


@dataclass(slots=True)
class Reranked:
    """How the cross-encoder moved one candidate (its ``explain["rerank"]``)."""

    model_score: float  # the cross-encoder's raw score (a logit: higher is more relevant)
    model_rank: int  # 1-based rank among the rescored candidates, by model_score
    fused_rank: int  # 1-based rank before reranking
    weight: float  # w: the model's share of the blend
    score: float  # the blended score the candidate is ranked by

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_score": round(self.model_score, 6),
            "model_rank": self.model_rank,
            "fused_rank": self.fused_rank,
            "weight": self.weight,
            "score": round(self.score, 6),
        }


def blend(
    ids: Sequence[int], model_scores: Sequence[float], weight: float, k: int = BLEND_K
) -> list[tuple[int, Reranked]]:
    """Rerank ``ids`` (in fused order, best first) given the model's score of each: best
    first by the rank blend. Ties keep the fused order; ``weight`` 1.0 is the model's order,
    0.0 the fused order unchanged."""
    if len(ids) != len(model_scores):
        raise ValueError(f"{len(ids)} candidates but {len(model_scores)} model scores")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the rerank weight must be between 0 and 1, not {weight}")
    # Model ranks: best score first; equal scores ranked in fused order.
    by_model = sorted(range(len(ids)), key=lambda p: (-model_scores[p], p))
    model_rank = {p: r for r, p in enumerate(by_model, 1)}
    out = []
    for p, chunk_id in enumerate(ids):
        fused_rank, mrank = p + 1, model_rank[p]
        score = weight / (k + mrank) + (1 - weight) / (k + fused_rank)
        out.append((chunk_id, Reranked(model_scores[p], mrank, fused_rank, weight, score)))
    out.sort(key=lambda item: (-item[1].score, item[1].fused_rank))
    return out
