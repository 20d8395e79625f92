"""Fusion of the keyword and vector legs into one ranking.

Two methods, chosen by measurement (docs/benchmarks.md):

* ``convex``: min-max normalise each leg's scores over its candidates, then
  ``alpha * vector + (1 - alpha) * keyword``; a candidate missing from a leg gets 0 there.
  Uses score magnitudes, so a strong dense match is not flattened into a rank.
* ``rrf``: weighted reciprocal rank fusion, ``alpha / (k + rank_v) + (1 - alpha) / (k + rank_k)``.
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


def _minmax(leg: Leg) -> dict[int, float]:
    if not leg:
        return {}
    scores = [s for _, s in leg]
    lo, hi = min(scores), max(scores)
    if hi - lo < 1e-12:
        return {i: 1.0 for i, _ in leg}
    return {i: (s - lo) / (hi - lo) for i, s in leg}


def fuse(
    keyword: Leg, vector: Leg, *, method: str = "convex", alpha: float = 0.5, rrf_k: int = 60
) -> list[Fused]:
    """Fuse two legs; returns every candidate, best first (ties broken by id for stability)."""
    kw_hits = {i: LegHit(rank, s) for rank, (i, s) in enumerate(keyword, 1)}
    vec_hits = {i: LegHit(rank, s) for rank, (i, s) in enumerate(vector, 1)}
    ids = list(dict.fromkeys([i for i, _ in vector] + [i for i, _ in keyword]))
    if method == "convex":
        kw_norm, vec_norm = _minmax(keyword), _minmax(vector)
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
