"""Typo tolerance: query terms absent from the index expand to close indexed spellings.

Only terms that match nothing are expanded, so an exact match is never pushed below a fuzzy
one: a word that occurs in the collection is searched as typed. Edit distance is Levenshtein
over analyzed terms (stems), at most 1 for short words and 2 for long ones.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

MIN_LENGTH = 4  # shorter words have too many neighbours to guess from
MAX_EXPANSIONS = 3


def max_edits(term: str) -> int:
    return 1 if len(term) <= 7 else 2


class Vocabulary:
    """Indexed terms bucketed by length, for fast neighbour lookup."""

    def __init__(self, terms: list[str]) -> None:
        self.by_length: dict[int, list[str]] = defaultdict(list)
        # Sorted: among more than MAX_EXPANSIONS neighbours at the same distance, the ones kept
        # must not depend on the order a backend lists its vocabulary in.
        for term in sorted(terms):
            self.by_length[len(term)].append(term)

    def neighbours(self, term: str) -> list[str]:
        edits = max_edits(term)
        pool = [
            t
            for n in range(len(term) - edits, len(term) + edits + 1)
            for t in self.by_length.get(n, ())
        ]
        found = process.extract(
            term, pool, scorer=Levenshtein.distance, score_cutoff=edits, limit=MAX_EXPANSIONS
        )
        return [t for t, dist, _ in sorted(found, key=lambda f: (f[1], f[0])) if dist > 0]


class VocabularyCache:
    """One Vocabulary per collection, rebuilt when the collection's revision moves."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[int, Vocabulary]] = {}
        self._lock = threading.Lock()

    def get(self, collection_id: int, revision: int, load: Callable[[], list[str]]) -> Vocabulary:
        with self._lock:
            hit = self._cache.get(collection_id)
            if hit and hit[0] == revision:
                return hit[1]
        vocab = Vocabulary(load())
        with self._lock:
            self._cache[collection_id] = (revision, vocab)
        return vocab


def expand(
    terms: list[str], doc_freqs: dict[str, int], vocab: Vocabulary
) -> tuple[list[str], dict[str, list[str]]]:
    """Terms to search: those found as typed plus neighbours of those found nowhere."""
    out: list[str] = []
    expansions: dict[str, list[str]] = {}
    for term in terms:
        if doc_freqs.get(term, 0) > 0 or len(term) < MIN_LENGTH:
            out.append(term)
            continue
        near = vocab.neighbours(term)
        if near:
            expansions[term] = near
            out.extend(near)
        else:
            out.append(term)
    return list(dict.fromkeys(out)), expansions
