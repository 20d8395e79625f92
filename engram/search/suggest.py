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

Caches, per process and collection, valid for one revision of the collection
(``Store.revision``, read before the data cached under it): the titles, indexed by word
start (:mod:`engram.search.titles`); the words each proposed term was read as; the store's
completions of each prefix as typed. A write to the collection by any process moves the
revision, and the next suggestion starts them over. The past queries follow the events
instead (:mod:`engram.search.past_queries`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Literal

from ..errors import InvalidInput
from ..store.contract import EventStore, RetrievalStore
from ..types import Collection
from .analyzer import _WORD, Analyzer, analyzer_for, fold
from .past_queries import PastQueries
from .titles import TitleIndex

MAX_PREFIX = 200  # characters of a prefix
MAX_LIMIT = 50
TYPO_MIN = 4  # a shorter word has too many one-edit neighbours to guess from
SAMPLES = 3  # chunks read per term for its surface word
MAX_WORDS = 20_000  # terms whose words a process remembers per collection and revision
MAX_COMPLETED = 10_000  # prefixes whose completions it remembers
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


@dataclass(slots=True)
class _Cache:
    """What one process knows of a collection at one revision: its titles (read at the first
    suggestion needing them) and the words each term proposed so far stands for."""

    revision: int
    titles: TitleIndex | None = None
    words: dict[str, Counter[str]] = field(default_factory=dict)  # never evicted (see known)
    completed: dict[tuple[tuple[str, ...], tuple[str, ...], int], list[tuple[str, int]]] = field(
        default_factory=dict
    )  # the store's completions: (prefixes, exact terms, limit) → (term, chunks)


class Suggester:
    """Suggestions for one engine: the titles and past queries it has read, per process."""

    def __init__(self, store: RetrievalStore, events: EventStore) -> None:
        self.store = store
        self.past = PastQueries(events, normal)
        self._caches: dict[int, _Cache] = {}
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
        cache = self._cache(collection)
        out = self._merge(self._sources(cache, collection, words, head, [last], limit), limit, seen)
        if len(out) < limit and len(last) >= TYPO_MIN:
            variants = one_edit_prefixes(last)
            near = self._sources(cache, collection, words, head, variants, limit, typo=True)
            out += self._merge(near, limit - len(out), seen)
        return out

    def _cache(self, collection: Collection) -> _Cache:
        """The collection's cache at its current revision. The revision is read before the
        data cached under it: what is cached is at least as new as its key."""
        revision = self.store.revision(collection)
        with self._lock:
            cache = self._caches.get(collection.id)
            if cache is None or cache.revision != revision:
                cache = self._caches[collection.id] = _Cache(revision)
        return cache

    def _sources(
        self,
        cache: _Cache,
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
        analyzer = analyzer_for(collection)
        # Typed past the stem ("reglem", "teletravailleu"): the stem of a word the typed one
        # starts is one of its prefixes, or its own stem; such a term is kept when one of its
        # words starts with what was typed.
        typed = lasts[0]
        exact = [] if typo else [typed[:n] for n in range(3, len(typed))]
        stem = analyzer.term(typed)
        if not typo and stem and stem != typed:
            exact.append(stem)
        completions = self._complete(cache, collection, analyzer, lasts, exact, limit)
        terms: list[Suggestion] = []
        used: list[str] = []  # the variants something starts with: titles and queries try them
        for term, df, counts in completions:
            starts = [p for p in lasts if term.startswith(p)]
            used += [p for p in starts if p not in used]
            word = _surface(counts, term, starts or [typed])
            if starts or fold(word).startswith(typed):
                terms.append(Suggestion(head + word, "term", df))
        if typo:
            lasts = used[:5]
        base = " ".join(words[:-1])
        fulls = [f"{base} {last}".strip() for last in lasts]
        titles = self._title_matches(cache, collection, fulls, limit)
        past = self.past.matching(collection.tenant, collection.name, fulls, limit)
        queries = [Suggestion(query, "query", n) for _, query, n in past]
        return [queries, titles, terms]

    def _complete(
        self,
        cache: _Cache,
        collection: Collection,
        analyzer: Analyzer,
        lasts: Sequence[str],
        exact: list[str],
        limit: int,
    ) -> list[tuple[str, int, Counter[str]]]:
        """The store's completions of ``lasts`` (term, chunks, its words), those of a prefix as
        typed remembered for this revision; a term's words are counted once per revision, in the chunk texts the store
        reads for the terms not counted yet."""
        key = (tuple(lasts), tuple(exact), limit)
        found = cache.completed.get(key)
        if found is None or any(term not in cache.words for term, _ in found):
            completions = self.store.complete_terms(
                collection, lasts, limit=limit, samples=SAMPLES, exact=exact, known=cache.words
            )
            for term, _, texts in completions:
                if term not in cache.words and len(cache.words) < MAX_WORDS:
                    cache.words[term] = _count_words(analyzer, texts, term)
            found = [(c.term, c.df) for c in completions]
            if len(lasts) == 1 and len(cache.completed) < MAX_COMPLETED:  # not a typo's
                cache.completed[key] = found  # hundreds of variants
            if any(term not in cache.words for term, _ in found):  # the cache is full
                return [
                    (c.term, c.df, _count_words(analyzer, c.texts, c.term)) for c in completions
                ]
        return [(term, df, cache.words[term]) for term, df in found]

    def _title_matches(
        self, cache: _Cache, collection: Collection, prefixes: list[str], limit: int
    ) -> list[Suggestion]:
        if not prefixes:
            return []
        titles = cache.titles
        if titles is None:
            titles = TitleIndex(cache.revision, self.store.document_titles(collection), normal)
            cache.titles = titles
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


def _count_words(analyzer: Analyzer, texts: Sequence[str], term: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_words_of(analyzer, text, term))
    return counts


def _surface(counts: Counter[str], term: str, prefixes: Sequence[str]) -> str:
    """The word ``term`` stands for: the most frequent of its words (``counts``, in a few
    chunks holding it), lower case, among those starting with one of ``prefixes`` if any
    does; the term itself when there are none (a word of a title or heading only)."""
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
