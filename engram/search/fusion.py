"""Fusion of the keyword and vector legs into one ranking.

Three methods; the default was chosen by measurement on four datasets (docs/benchmarks.md):

* ``dbsf`` (default): distribution-based score fusion. Each leg's scores are normalised over
  its candidates with the bounds mean ± 3 standard deviations, then combined as
  ``alpha * vector + (1 - alpha) * keyword``; a candidate missing from a leg gets 0 there.
  Unlike min-max, one outlier score does not squash the rest of the leg.
* ``minmax``: the same convex combination over min-max normalised scores.
* ``rrf``: weighted reciprocal rank fusion, ``alpha / (k + rank_v) + (1 - alpha) / (k + rank_k)``;
  ignores score magnitudes, which loses to the others when one leg is much stronger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..types import LegHit

Leg = Sequence[tuple[int, float]]  # (id, score), best first


@dataclass(slots=True)
class Fused:
    id: int
    score: float
    keyword: LegHit | None
    vector: LegHit | None


def normalise(leg: Leg, method: str) -> dict[int, float]:
    """Scores of one leg mapped to about [0, 1] (``minmax``: exactly; ``dbsf``: by mean ± 3σ)."""
    if not leg:
        return {}
    scores = [s for _, s in leg]
    if method == "dbsf":
        mean = sum(scores) / len(scores)
        std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
        lo, hi = mean - 3 * std, mean + 3 * std
    else:
        lo, hi = min(scores), max(scores)
    if hi - lo < 1e-12:
        return {i: 1.0 for i, _ in leg}
    return {i: (s - lo) / (hi - lo) for i, s in leg}


# The fusion methods fuse() knows (ENGRAM_FUSION, or a collection's own "fusion").
FUSION_METHODS = ("dbsf", "minmax", "rrf")


def fuse(
    keyword: Leg, vector: Leg, *, method: str = "dbsf", alpha: float = 0.85, rrf_k: int = 60
) -> list[Fused]:
    """Fuse two legs; returns every candidate, best first (ties broken by id for stability)."""
    kw_hits = {i: LegHit(rank, s) for rank, (i, s) in enumerate(keyword, 1)}
    vec_hits = {i: LegHit(rank, s) for rank, (i, s) in enumerate(vector, 1)}
    ids = list(dict.fromkeys([i for i, _ in vector] + [i for i, _ in keyword]))
    if method in ("dbsf", "minmax"):
        kw_norm, vec_norm = normalise(keyword, method), normalise(vector, method)
        scores = {i: alpha * vec_norm.get(i, 0.0) + (1 - alpha) * kw_norm.get(i, 0.0) for i in ids}
    elif method == "rrf":
        scores = {}
        for i in ids:
            s = 0.0
            if i in vec_hits:
                s += alpha / (rrf_k + vec_hits[i].rank)
            if i in kw_hits:
                s += (1 - alpha) / (rrf_k + kw_hits[i].rank)
            scores[i] = s
    else:
        raise ValueError(f"unknown fusion method {method!r}")
    fused = [Fused(i, scores[i], kw_hits.get(i), vec_hits.get(i)) for i in ids]
    fused.sort(key=lambda f: (-f.score, f.id))
    return fused
