"""Keyword analysis: words → accent-folded, stopword-free, stemmed terms.

The same analyzer runs at index time (the terms stored in the keyword index) and at query time,
so BM25 compares like with like; every backend indexes the terms this module produces, which is
what makes keyword ranking identical across backends. Accents are folded *before* stemming so
that a French query typed without accents ("reglementation") meets the accented text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

import Stemmer  # PyStemmer: Snowball's C stemmers

from ..errors import ConfigError
from .stopwords import BY_LANGUAGE

LANGUAGES = ("en", "fr", "none")
_STEMMER_NAMES = {"en": "english", "fr": "french"}
# Words: letters/digits; apostrophes split French elisions ("l'entreprise" → l, entreprise).
_WORD = re.compile(r"\w+", re.UNICODE)
# ASCII text is split at non-word characters by str.translate + split, two passes in C that
# give exactly _WORD's words ([A-Za-z0-9_]+) at about half the cost of the regex.
_ASCII_NON_WORD = {
    i: " " for i in range(128) if not (chr(i).isascii() and (chr(i).isalnum() or chr(i) == "_"))
}
_MAX_WORD = 40  # longer "words" are hashes, base64 or garbage: not useful terms
# Words remembered with their term, per analyzer: a corpus repeats a few thousand words most
# of the time, and one dict lookup per word is several times cheaper than fold + stem calls.
# The memory is bounded: past this many words it starts over.
_REMEMBERED = 200_000


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """Lower-case and strip diacritics: "Règlement" → "reglement"."""
    lowered = word.lower()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("œ", "oe")


class Analyzer:
    """Turns text into index terms for one language ("en", "fr" or "none": no stemming)."""

    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ConfigError(
                f"unknown analysis language {language!r}",
                hint=f"use one of: {', '.join(LANGUAGES)}",
            )
        self.language = language
        self.stopwords = BY_LANGUAGE[language]
        self._stemmer = Stemmer.Stemmer(_STEMMER_NAMES[language]) if language != "none" else None
        self._known: dict[str, str] = {}  # word as written → its term ("": none)

    def term(self, word: str) -> str | None:
        """The index term of one word, or None for stopwords and over-long tokens."""
        found = self._known.get(word)
        if found is None:
            found = self._analyse([word])[0]
            self._remember([word], [found])
        return found or None

    def terms(self, text: str) -> list[str]:
        """All index terms of ``text`` in order (duplicates kept: BM25 needs frequencies)."""
        # Loops in C (split, map, filter) over remembered words; the words seen for the first
        # time are analysed together, once.
        words = text.translate(_ASCII_NON_WORD).split() if text.isascii() else _WORD.findall(text)
        known = self._known
        found: list[str | None] = list(map(known.get, words))
        if None in found:
            new = list(set(words).difference(known))
            self._remember(new, self._analyse(new))
            found = list(map(known.get, words))
            if None in found:  # the memory started over, without some of the known words
                found = list(self._analyse(words))
        return list(filter(None, found))

    def _analyse(self, words: list[str]) -> list[str]:
        """The term of each word ("" for stopwords and over-long tokens)."""
        folded = [w.lower() if w.isascii() else fold(w) for w in words]
        stems = self._stemmer.stemWords(folded) if self._stemmer else folded
        stop = self.stopwords
        return ["" if f in stop or len(f) > _MAX_WORD else t for f, t in zip(folded, stems)]

    def _remember(self, words: list[str], terms: list[str]) -> None:
        known = self._known
        if len(known) + len(words) > _REMEMBERED:
            known.clear()
        known.update(zip(words, terms))

    def terms_with_spans(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(term, start, end) for every indexed word; used to highlight matches."""
        for match in _WORD.finditer(text):
            t = self.term(match.group())
            if t:
                yield t, match.start(), match.end()

    def matching_spans(self, text: str, terms: set[str]) -> list[tuple[int, int]]:
        """Spans of the words of ``text`` whose term is in ``terms``. Only words sharing their
        first two letters with a term are stemmed (stemming rewrites endings, not starts), so
        highlighting a chunk costs a few stems, not one per word."""
        prefixes = {t[:2] for t in terms}
        spans = []
        for match in _WORD.finditer(text):
            word = match.group()
            if fold(word[:2])[:2] not in prefixes:
                continue
            if self.term(word) in terms:
                spans.append((match.start(), match.end()))
        return spans

    def query_terms(self, text: str) -> list[str]:
        """Distinct terms of a query, in order of first appearance."""
        return list(dict.fromkeys(self.terms(text)))


@lru_cache(maxsize=8)
def get_analyzer(language: str) -> Analyzer:
    return Analyzer(language)


def detect_language(texts: Iterable[str], *, sample_chars: int = 200_000) -> str:
    """Guess "en" or "fr" from stopword frequencies in a sample of ``texts``.

    Stopwords are the most reliable cheap signal for telling two languages apart; ties and
    texts with neither (code, tables of numbers) default to English.
    """
    en, fr = _stopword_evidence(texts, sample_chars)
    return "fr" if fr > en else "en"


def french_share(texts: Iterable[str], *, sample_chars: int = 200_000) -> float:
    """The share of French among the stopwords of :func:`detect_language`'s sample (0 to 1;
    0 for texts with no stopword of either language): how French a mixed sample is."""
    en, fr = _stopword_evidence(texts, sample_chars)
    return fr / (en + fr) if en + fr else 0.0


def _stopword_evidence(texts: Iterable[str], sample_chars: int) -> tuple[int, int]:
    """Occurrences of English-only and of French-only stopwords in the first
    ``sample_chars`` characters of ``texts``."""
    en = fr = seen = 0
    en_only = BY_LANGUAGE["en"] - BY_LANGUAGE["fr"]
    fr_only = BY_LANGUAGE["fr"] - BY_LANGUAGE["en"]
    for text in texts:
        for match in _WORD.finditer(text[:sample_chars]):
            w = fold(match.group())
            en += w in en_only
            fr += w in fr_only
        seen += len(text)
        if seen >= sample_chars:
            break
    return en, fr
