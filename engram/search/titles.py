"""Document titles by the words they contain, for autocompletion (engram.search.suggest).

A collection's titles at one revision: the normal form of each (folded words, single spaces)
and every word start of every title in one array, sorted by the text from that word to the
end of its title. The titles with a word starting with a prefix (of one or more words) are
one range of that array, found by bisection: no scan of the titles, however many there are.

A short prefix's range holds thousands of word starts; the best titles of such a range are
remembered (the object is replaced when the collection's revision changes).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable

KEPT = 64  # titles remembered per prefix with a long range (a suggestion asks for at most 50)
_LONG = 256  # a range of more word starts than this is remembered
_PREFIXES = 10_000  # prefixes remembered per revision


class TitleIndex:
    """The titles of a collection at ``revision``, searchable by word prefix."""

    def __init__(self, revision: int, titles: dict[str, int], normal: Callable[[str], str]) -> None:
        self.revision = revision
        # Rank order: most documents first, then by title.
        self.titles = sorted(titles.items(), key=lambda kv: (-kv[1], kv[0]))
        self.forms = [normal(title) for title, _ in self.titles]
        starts = [
            (i, at)
            for i, form in enumerate(self.forms)
            for at in (0, *(j + 1 for j, c in enumerate(form) if c == " "))
            if form
        ]
        forms = self.forms
        starts.sort(key=lambda s: forms[s[0]][s[1] :])
        self.starts = starts
        self._best: dict[str, list[int]] = {}

    def matching(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` best titles with a word starting with ``prefix`` (title, documents):
        most documents first, then titles ``prefix`` starts, then in title order."""
        best = self._best.get(prefix)
        if best is None or (len(best) < limit and len(best) == KEPT):
            best = self._rank(prefix, max(limit, KEPT))
        return [self.titles[i] for i in best[:limit]]

    def _rank(self, prefix: str, limit: int) -> list[int]:
        forms, n = self.forms, len(prefix)
        key: Callable[[tuple[int, int]], str] = lambda s: forms[s[0]][s[1] : s[1] + n]  # noqa: E731
        low = bisect_left(self.starts, prefix, key=key)
        high = bisect_right(self.starts, prefix, lo=low, key=key)
        inside: dict[int, bool] = {}  # title index → no word but the first starts with prefix
        for i, at in self.starts[low:high]:
            inside[i] = inside.get(i, True) and at > 0
        counts = self.titles
        best = heapq.nsmallest(limit, inside, key=lambda i: (-counts[i][1], inside[i], i))
        if high - low > _LONG and len(self._best) < _PREFIXES:
            self._best[prefix] = best
        return best
