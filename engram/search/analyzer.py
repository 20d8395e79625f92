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
_MAX_WORD = 40  # longer "words" are hashes, base64 or garbage: not useful terms


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
        stemmer = Stemmer.Stemmer(_STEMMER_NAMES[language]) if language != "none" else None
        self._stem = lru_cache(maxsize=500_000)(stemmer.stemWord) if stemmer else (lambda w: w)

    def term(self, word: str) -> str | None:
        """The index term of one word, or None for stopwords and over-long tokens."""
        folded = fold(word)
        if folded in self.stopwords or len(folded) > _MAX_WORD:
            return None
        return self._stem(folded)

    def terms(self, text: str) -> list[str]:
        """All index terms of ``text`` in order (duplicates kept: BM25 needs frequencies)."""
        out = []
        for match in _WORD.finditer(text):
            t = self.term(match.group())
            if t:
                out.append(t)
        return out

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
