"""Cross-encoder reranking, blended with the ranking it rescores.

The cross-encoder scores the top ``rerank_candidates`` candidates (the head); each is then
ranked by an interpolation of the two scores, each min-max normalised over the head::

    score = w * norm(model score) + (1 - w) * norm(fused score)

with ``w`` = ``ENGRAM_RERANK_WEIGHT`` (default 0.5). Why (docs/benchmarks.md, measured with
``bench/tune_rerank.py`` on four datasets × three modes): ordering the head by the model alone
(``w`` = 1) lifts keyword search everywhere but lowers hybrid and vector search wherever the
dense model beats this English MS MARCO cross-encoder (SciFact hybrid −0.020 nDCG@10). The
interpolation keeps the fused evidence, and at 0.5 it lowered nDCG@10 on none of the twelve
dataset/mode pairs; rank blends (``w/(k + model rank) + ...``) and gating by leg
disagreement still lost on SciFact. Min-max over the head because the model's logits and the
fused scores have unrelated scales that vary per query.

Candidates after the head keep their order, scored by the same formula with the model's
part at its head minimum (0): scores then decrease down the whole list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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


class _MinMax:
    """x ↦ (x - lo) / (hi - lo) for the bounds of ``head`` (all 1.0 when they are equal),
    extended linearly to values outside them."""

    def __init__(self, head: Sequence[float]) -> None:
        self.lo, hi = min(head), max(head)
        self.span = hi - self.lo
        self.flat = self.span < 1e-12

    def __call__(self, x: float) -> float:
        return 1.0 + (x - self.lo) if self.flat else (x - self.lo) / self.span


def blend(
    fused_scores: Sequence[float], model_scores: Sequence[float], weight: float
) -> tuple[list[int], list[Reranked], list[float]]:
    """Rerank a fused list (best first) whose first ``len(model_scores)`` entries the model
    scored. Returns the new order of the head (positions into it), the :class:`Reranked` of
    each head entry (by position) and the scores of the entries after the head.

    Ties keep the fused order; ``weight`` 1.0 is the model's order, 0.0 the fused order."""
    n = len(model_scores)
    if not 0 < n <= len(fused_scores):
        raise ValueError(f"{n} model scores for {len(fused_scores)} candidates")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the rerank weight must be between 0 and 1, not {weight}")
    by_model = sorted(range(n), key=lambda p: (-model_scores[p], p))
    model_rank = {p: r for r, p in enumerate(by_model, 1)}
    m_norm, f_norm = _MinMax(model_scores), _MinMax(fused_scores[:n])
    head = [
        Reranked(
            model_scores[p],
            model_rank[p],
            p + 1,
            weight,
            weight * m_norm(model_scores[p]) + (1 - weight) * f_norm(fused_scores[p]),
        )
        for p in range(n)
    ]
    order = sorted(range(n), key=lambda p: (-head[p].score, p))
    floor = weight * (0.0 if not m_norm.flat else 1.0)  # the model's part of its lowest
    tail = [floor + (1 - weight) * f_norm(s) for s in fused_scores[n:]]
    return order, head, tail
