"""Fusion of the keyword and vector legs into one ranking.

Three methods; the default was chosen by measurement on four datasets (docs/benchmarks.md):

* ``dbsf`` (default): distribution-based score fusion. Each leg's scores are normalised over
  its candidates with the bounds mean ± 3 standard deviations, then combined as
  ``alpha * vector + (1 - alpha) * keyword``; a candidate missing from a leg gets 0 there.
  Unlike min-max, one outlier score does not squash the rest of the leg.
* ``minmax``: the same convex combination over min-max normalised scores.
* ``rrf``: weighted reciprocal rank fusion, ``alpha / (k + rank_v) + (1 - alpha) / (k + rank_k)``;
  ignores score magnitudes, which loses to the others when one leg is much stronger.

The vector weight ``alpha`` is by default ``"auto"``: chosen per query from the number of
words the keyword leg searches for (:func:`auto_alpha`). Dense retrieval is strongest on short
queries and BM25 gains with every specific word a longer query adds, so a query of 3 words
or fewer weighs the vector leg 0.9, one of 5 words 0.75, one of 9 words or more 0.6. No single
constant kept hybrid at or above its better leg on every dataset measured while reaching the
equal-weight scores of the lexical ones (docs/benchmarks.md, "Choosing the fusion").
Nor does this rule everywhere: on French man pages searched in French with the English-only
bge-small, hybrid stays well below the keyword leg (a weight of 0.3 or less is needed there);
such a collection should fix its own weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

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


# A vector weight: a number in [0, 1], or "auto" (auto_alpha of the query's length).
Alpha = float | Literal["auto"]
AUTO: Literal["auto"] = "auto"

# auto_alpha: the weight of a query of AUTO_PIVOT words, less AUTO_SLOPE per e-fold more
# words, within AUTO_BOUNDS. Fitted on 5 datasets and checked leaving each out in turn
# (bench/study_fusion.py).
AUTO_AT_PIVOT = 0.9
AUTO_PIVOT = 3
AUTO_SLOPE = 0.3
AUTO_BOUNDS = (0.6, 0.9)


def auto_alpha(terms: int) -> float:
    """The vector weight of a query of ``terms`` analyzed words (stopwords out, repeats in):
    the legs' relative strength follows the query's length."""
    lo, hi = AUTO_BOUNDS
    alpha = AUTO_AT_PIVOT - AUTO_SLOPE * math.log(max(terms, 1) / AUTO_PIVOT)
    return round(min(max(alpha, lo), hi), 3)


# An English query on a collection of French text: its words cannot match the collection's,
# so the keyword leg ranks noise (a multilingual model reads both languages), and "auto"
# gives the vector leg the top of its range. "French text": the query's English stopwords
# occur in fewer than FOREIGN_SHARE of the collection's chunks (a French collection holding
# English documents as well keeps the usual weight). docs/benchmarks.md, "Choosing the fusion".
FOREIGN_ALPHA = AUTO_BOUNDS[1]
FOREIGN_SHARE = 0.05


def resolve_alpha(alpha: Alpha, terms: int, *, foreign: bool = False) -> tuple[float, str]:
    """The number ``alpha`` stands for with a query of ``terms`` words, and why (for explain):
    ``"auto: N query words"``, ``"auto: an English query on French text"`` (``foreign``: its
    words cannot match the collection's, see FOREIGN_ALPHA) or ``"fixed"``."""
    if alpha == AUTO:
        if foreign:
            return FOREIGN_ALPHA, "auto: an English query on French text"
        return auto_alpha(terms), f"auto: {terms} query word{'' if terms == 1 else 's'}"
    return float(alpha), "fixed"


def check_alpha(alpha: object) -> Alpha:
    """``alpha`` if it is a vector weight (a number in [0, 1] or "auto"), else ValueError."""
    if alpha == AUTO:
        return AUTO
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number between 0 and 1 or 'auto', not {alpha!r}")
    return float(alpha)


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
