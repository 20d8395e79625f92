"""Typo tolerance: query terms absent from the index expand to close indexed spellings.

Only terms that match nothing are expanded, so an exact match is never pushed below a fuzzy
one: a word that occurs in the collection is searched as typed. Edit distance is Levenshtein
over analyzed terms (stems), at most 1 for short words and 2 for long ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

MIN_LENGTH = 4  # shorter words have too many neighbours to guess from
_DIGIT = re.compile(r"[0-9]")
MAX_EXPANSIONS = 3


def max_edits(term: str) -> int:
    return 1 if len(term) <= 7 else 2


def closest(term: str, pool: Iterable[str]) -> list[str]:
    """The at most MAX_EXPANSIONS terms of ``pool`` nearest to ``term`` (within
    ``max_edits(term)``, the term itself excluded), nearest first, ties alphabetical. ``pool``
    may hold anything else besides: the result depends only on which terms are within reach,
    not on the pool's order or extra members, so every backend expands a typo the same way."""
    # Imported here (~20 ms): a query whose words all occur in the collection never needs it.
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    edits = max_edits(term)
    low, high = len(term) - edits, len(term) + edits
    found = process.extract(
        term,
        [t for t in set(pool) if low <= len(t) <= high],
        scorer=Levenshtein.distance,
        score_cutoff=edits,
        limit=None,
    )
    near = sorted((dist, t) for t, dist, _ in found if dist > 0)
    return [t for _, t in near[:MAX_EXPANSIONS]]


def pieces(term: str) -> list[str]:
    """``term`` cut into ``max_edits(term) + 1`` contiguous pieces of near-equal length."""
    n = max_edits(term) + 1
    bounds = [round(i * len(term) / n) for i in range(n + 1)]
    return [term[a:b] for a, b in zip(bounds, bounds[1:])]


def like_patterns(term: str) -> list[str]:
    """SQL LIKE patterns, one of which every word within ``max_edits(term)`` edits of
    ``term`` matches: the pigeonhole filter a database runs before the exact distance is
    taken. Each edit falls in one piece (an insertion between two pieces counts for the later
    one, at the end for the last), so one piece is untouched: the first then still starts the
    word, the last still ends it, a middle one is somewhere inside. ``%``, ``_`` and ``\\``
    in the term are escaped."""
    parts = [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in pieces(term)]
    return [f"{parts[0]}%", *(f"%{p}%" for p in parts[1:-1]), f"%{parts[-1]}"]


class Vocabulary:
    """Indexed terms bucketed by length, for fast neighbour lookup (embedded backend)."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.by_length: dict[int, list[str]] = defaultdict(list)
        for term in terms:
            self.by_length[len(term)].append(term)

    def candidates(self, term: str) -> list[str]:
        """Every term whose length is within ``max_edits(term)`` of ``term``'s."""
        edits = max_edits(term)
        return [
            t
            for n in range(len(term) - edits, len(term) + edits + 1)
            for t in self.by_length.get(n, ())
        ]


def unmatched(terms: Iterable[str], doc_freqs: Mapping[str, int]) -> list[str]:
    """The terms to expand: found nowhere, long enough to guess from, and words: a number
    or an identifier with a digit ("1240", "l123-22") is not a misspelling of its
    neighbours ("1241", "l123-21")."""
    return [
        t
        for t in dict.fromkeys(terms)
        if doc_freqs.get(t, 0) == 0 and len(t) >= MIN_LENGTH and not _DIGIT.search(t)
    ]


def expand(
    terms: list[str], doc_freqs: Mapping[str, int], candidates: Mapping[str, Iterable[str]]
) -> tuple[list[str], dict[str, list[str]]]:
    """Terms to search: those found as typed plus neighbours of those found nowhere.
    ``candidates`` maps each :func:`unmatched` term to indexed terms that may be near it (a
    superset of its neighbours, as :meth:`Store.spelling_candidates` returns). A term given
    n times is searched n times (its neighbours too): BM25 weighs query-term frequency."""
    out: list[str] = []
    expansions: dict[str, list[str]] = {}
    for term in terms:
        missing = term in candidates and doc_freqs.get(term, 0) == 0
        near = closest(term, candidates[term]) if missing else []
        if near:
            expansions[term] = near
            out.extend(near)
        else:
            out.append(term)
    return out, expansions
