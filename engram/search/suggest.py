"""Autocompletion: what a prefix may become, from three sources of one collection.

* **Past queries**: searches of the collection that returned results (the analytics
  events, :mod:`engram.search.past_queries`), ranked by the number of times they were asked.
* **Titles**: document titles with a word starting with the prefix, ranked by the number of
  documents bearing the title, then titles the prefix starts before titles it is inside of.
* **Terms**: the prefix's last word completed from the keyword index, ranked by document
  frequency. The index holds stems of folded words ("télétravail" → "teletravail"), so each
  term is shown as the surface word people type: the most frequent word of that stem in a
  few chunks holding it, lower-cased with its accents, preferring words that start with
  what was typed ("télétravailleurs" for "teletravailleu", whose stem is "teletravail").

Matching is accent- and case-folded on words ("teletr" finds "Télétravail"). A prefix with
no completion for every one of the ``limit`` places, when its last word has at least
``TYPO_MIN`` letters, is tried again with one edit (deletion, insertion, substitution or
transposition of one letter: "tlétr", "telwtr" find "télétravail"): each one-edit variant of
the word is itself a prefix, so a typo costs range lookups, not a scan.

Merging: the three sources' lists, each best first, are interleaved (a past query, a title,
a term, a past query...); a text already proposed (same folded words) is not repeated; all
completions of the prefix as typed come before any completion of a corrected one.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from ..errors import InvalidInput
from ..store.contract import EventStore, RetrievalStore
from ..types import Collection
from .analyzer import _WORD, Analyzer, fold, get_analyzer
from .past_queries import PastQueries

MAX_PREFIX = 200  # characters of a prefix
MAX_LIMIT = 50
TYPO_MIN = 4  # a shorter word has too many one-edit neighbours to guess from
SAMPLES = 3  # chunks read per term for its surface word
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

Source = Literal["query", "title", "term"]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A completion: its text, the source it came from and that source's frequency (times
    asked, documents titled so, or chunks holding the term)."""

    text: str
    source: Source
    count: int

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "source": self.source, "count": self.count}


def normal(text: str) -> str:
    """Folded words separated by single spaces: the form prefixes are matched in."""
    return " ".join(_WORD.findall(fold(text)))


def one_edit_prefixes(word: str) -> list[str]:
    """Prefixes every word starting within one edit of ``word`` starts with, and only they
    (``word`` itself excluded). A variant extending another one is left out: its range is
    inside the other's. Letters tried: a-z, 0-9 and those of ``word``."""
    alphabet = sorted(set(_ALPHABET) | set(word))
    variants = {word[:i] + word[i + 1 :] for i in range(len(word))}
    variants |= {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    for i in range(len(word) + 1):
        for c in alphabet:
            variants.add(word[:i] + c + word[i:])
            if i < len(word):
                variants.add(word[:i] + c + word[i + 1 :])
    kept: list[str] = []
    for variant in sorted(variants | {word}):  # a prefix sorts right before its extensions
        if not kept or not variant.startswith(kept[-1]):
            kept.append(variant)
    return [v for v in kept if v != word]


class _Titles:
    """A collection's titles at one revision: their normal forms in one string (each after
    a newline), searched with ``str.find`` for a word starting with the prefix."""

    def __init__(self, revision: int, titles: dict[str, int]) -> None:
        self.revision = revision
        self.titles = sorted(titles.items(), key=lambda kv: (-kv[1], kv[0]))
        forms = [normal(title) for title, _ in self.titles]
        self.starts = [0]  # offset of the newline before each title's form
        for form in forms:
            self.starts.append(self.starts[-1] + len(form) + 1)
        self.joined = "\n" + "\n".join(forms) + "\n"

    def matching(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` best titles with a word starting with ``prefix``: most documents
        first, then titles ``prefix`` starts, then in title order."""
        found: dict[int, bool] = {}  # title index → the prefix starts the title
        for needle in ("\n" + prefix, " " + prefix):
            at, seen = self.joined.find(needle), 0
            # Titles are in rank order: the first ``limit`` matches of each kind are the best.
            while at >= 0 and seen < limit:
                index = bisect_right(self.starts, at) - 1
                seen += index not in found
                found[index] = found.get(index, False) or needle[0] == "\n"
                at = self.joined.find(needle, at + 1)
        ranked = sorted(found, key=lambda i: (not found[i], i))  # titles are in rank order
        ranked.sort(key=lambda i: -self.titles[i][1])
        return [self.titles[i] for i in ranked[:limit]]


class Suggester:
    """Suggestions for one engine: the titles and past queries it has read, per process."""

    def __init__(self, store: RetrievalStore, events: EventStore) -> None:
        self.store = store
        self.past = PastQueries(events, normal)
        self._titles: dict[int, _Titles] = {}
        self._lock = threading.Lock()

    def suggest(self, collection: Collection, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Up to ``limit`` completions of ``prefix`` in ``collection``, best first."""
        text = " ".join(prefix.split())
        if not text:
            raise InvalidInput("the prefix to complete is empty")
        if len(prefix) > MAX_PREFIX:
            raise InvalidInput(f"the prefix to complete is longer than {MAX_PREFIX} characters")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        words = normal(text).split()
        if not words:
            return []
        last = words[-1]
        head = text[: [m.start() for m in _WORD.finditer(text)][-1]]
        seen: set[str] = set()
        out = self._merge(self._sources(collection, words, head, [last], limit), limit, seen)
        if len(out) < limit and len(last) >= TYPO_MIN:
            variants = one_edit_prefixes(last)
            near = self._sources(collection, words, head, variants, limit, typo=True)
            out += self._merge(near, limit - len(out), seen)
        return out

    def _sources(
        self,
        collection: Collection,
        words: list[str],
        head: str,
        lasts: Sequence[str],
        limit: int,
        *,
        typo: bool = False,
    ) -> list[list[Suggestion]]:
        """Each source's completions, best first, of the words with the last one replaced
        by each of ``lasts`` (the word as typed, or its one-edit variants)."""
        analyzer = get_analyzer(collection.language)
        # Typed past the stem ("reglem", "teletravailleu"): the stem of a word the typed one
        # starts is one of its prefixes, or its own stem; such a term is kept when one of its
        # words starts with what was typed.
        typed = lasts[0]
        exact = [] if typo else [typed[:n] for n in range(3, len(typed))]
        stem = analyzer.term(typed)
        if not typo and stem and stem != typed:
            exact.append(stem)
        completions = self.store.complete_terms(
            collection, lasts, limit=limit, samples=SAMPLES, exact=exact
        )
        terms: list[Suggestion] = []
        used: list[str] = []  # the variants something starts with: titles and queries try them
        for completion in completions:
            starts = [p for p in lasts if completion.term.startswith(p)]
            used += [p for p in starts if p not in used]
            word = _surface(analyzer, completion.texts, completion.term, starts or [typed])
            if starts or fold(word).startswith(typed):
                terms.append(Suggestion(head + word, "term", completion.df))
        if typo:
            lasts = used[:5]
        base = " ".join(words[:-1])
        fulls = [f"{base} {last}".strip() for last in lasts]
        titles = self._title_matches(collection, fulls, limit)
        past = self.past.matching(collection.tenant, collection.name, fulls, limit)
        queries = [Suggestion(query, "query", n) for _, query, n in past]
        return [queries, titles, terms]

    def _title_matches(
        self, collection: Collection, prefixes: list[str], limit: int
    ) -> list[Suggestion]:
        if not prefixes:
            return []
        revision = self.store.revision(collection)
        with self._lock:
            titles = self._titles.get(collection.id)
        if titles is None or titles.revision != revision:
            titles = _Titles(revision, self.store.document_titles(collection))
            with self._lock:
                self._titles[collection.id] = titles
        found: dict[str, int] = {}
        for prefix in prefixes:
            for title, n in titles.matching(prefix, limit):
                found.setdefault(title, n)
        return [Suggestion(t, "title", n) for t, n in list(found.items())[:limit]]

    @staticmethod
    def _merge(sources: list[list[Suggestion]], limit: int, seen: set[str]) -> list[Suggestion]:
        out: list[Suggestion] = []
        for row in zip_longest(*sources):
            for suggestion in row:
                if suggestion is None or len(out) == limit:
                    continue
                key = normal(suggestion.text)
                if key not in seen:
                    seen.add(key)
                    out.append(suggestion)
        return out


def _surface(analyzer: Analyzer, texts: Sequence[str], term: str, prefixes: Sequence[str]) -> str:
    """The word ``term`` stands for: the most frequent of its words in ``texts``, lower
    case, among those starting with one of ``prefixes`` if any does; the term itself when
    the texts hold none (a word of a title or heading only)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_words_of(analyzer, text, term))
    preferred = {w: n for w, n in counts.items() if fold(w).startswith(tuple(prefixes))}
    pool = preferred or counts
    if not pool:
        return term
    return min(pool, key=lambda w: (-pool[w], w))


def _words_of(analyzer: Analyzer, text: str, term: str) -> list[str]:
    """The words of ``text`` (lower case) whose term is ``term``. A stem almost always starts
    its words, so the folded text is searched for it at word starts, and only the words found
    there are stemmed; a stem that does not ("happi" of "happy") takes the slow path."""
    lowered = text.lower()
    folded = lowered if lowered.isascii() else fold(lowered)
    if len(folded) == len(lowered):  # accents dropped, no ligature expanded: same offsets
        words: list[str] = []
        at = folded.find(term)
        while at >= 0:
            if at == 0 or not (folded[at - 1].isalnum() or folded[at - 1] == "_"):
                match = _WORD.match(lowered, at)
                if match and analyzer.term(match.group()) == term:
                    words.append(match.group())
            at = folded.find(term, at + 1)
        if words:
            return words
    return [text[a:b].lower() for a, b in analyzer.matching_spans(text, {term})]
