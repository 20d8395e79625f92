"""Keyword analysis: words → accent-folded, stopword-free, stemmed terms.

The same analyzer runs at index time (the terms stored in the keyword index) and at query time,
so BM25 compares like with like; every backend indexes the terms this module produces, which is
what makes keyword ranking identical across backends. Accents are folded *before* stemming so
that a French query typed without accents ("reglementation") meets the accented text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Protocol

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
# Analysis versions. A collection records the version it was created with ("analysis" in its
# settings; none recorded: 1) and is analyzed with it for good, at ingest and at query time,
# so that its stored terms and its queries' terms always agree.
#   1: words only.
#   2: also identifiers written with separators, each as one more term: an article of a
#      French code "L. 123-22" / "L123-22" / "L 123-22" (→ "l123-22"; the "L" alone is a
#      stopword and "123", "22" match any article), a section "3.2.1", a range "2019-2020".
ANALYSIS_VERSION = 2
# Digits joined by "-" or "." (non-breaking and en dashes too): "123-22", "3.2.1".
_JOINED = re.compile(r"[0-9]+(?:[-.\u2011\u2013][0-9]+)+")
# Any run of digits, joined or not: in French, where an article number may follow its code's
# letter (the letter is looked for before each run: a scan that starts on a digit is fast).
_RUN = re.compile(r"[0-9]+(?:[-.\u2011\u2013][0-9]+)*")
_DASHES = str.maketrans({"\u2011": "-", "\u2013": "-"})
# A French code's parts: législative, réglementaire, décret, arrêté.
_CODE_LETTERS = frozenset("LRDAlrda")
_SPACES = frozenset(" \u00a0")
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
    """Turns text into index terms for one language ("en", "fr" or "none": no stemming), as
    analysis ``version`` says (see ANALYSIS_VERSION)."""

    def __init__(self, language: str, version: int = 1) -> None:
        if language not in LANGUAGES:
            raise ConfigError(
                f"unknown analysis language {language!r}",
                hint=f"use one of: {', '.join(LANGUAGES)}",
            )
        self.language = language
        self.stopwords = BY_LANGUAGE[language]
        self._stemmer = Stemmer.Stemmer(_STEMMER_NAMES[language]) if language != "none" else None
        self._known: dict[str, str] = {}  # word as written → its term ("": none)
        self.version = version
        # The letter before a code's article number is French usage only.
        self._prefixed = language == "fr"

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
        terms = list(filter(None, found))
        if self.version >= 2:
            terms += self.identifiers(text)
        return terms

    def identifiers(self, text: str) -> list[str]:
        """The identifiers of ``text`` indexed whole (analysis version 2): digits joined by
        separators ("123-22", "3.2.1"), and in French an article number with its code's
        letter ("L. 123-22", "L 123-22", "L123-22" → "l123-22" and "123-22"; "R. 441-6" →
        "r441-6" and "441-6"; "il a 3 ans" is no article). Plain numbers and digits inside
        words ("IL-6", "v2.4") are words already."""
        return [term for term, _, _ in self.identifier_spans(text)]

    def identifier_spans(self, text: str) -> Iterator[tuple[str, int, int]]:
        """(term, start, end) of each of :meth:`identifiers`, its span covering the code's
        letter when there is one ("L. 123-22": all of it)."""
        for match in (_RUN if self._prefixed else _JOINED).finditer(text):
            start, end = match.span()
            if _continues(text, end):
                continue  # "123abc", "12-b"
            number = match.group().translate(_DASHES)
            joined = not number.isdigit()
            coded = _code_letter(text, start, joined) if self._prefixed else None
            if coded:
                letter, at = coded
                yield letter + number, at, end
                if joined:
                    yield number, start, end  # "article 123-22" finds it too
            elif joined and not _continues(text, start - 1, before=True):
                yield number, start, end

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
        if self.version >= 2 and any(c.isdigit() for t in terms for c in t):
            whole = [(a, b) for t, a, b in self.identifier_spans(text) if t in terms]
            if whole:  # an identifier marked whole, not word by word ("L. 123-22")
                inside = [(a, b) for a, b in spans if not any(x <= a and b <= y for x, y in whole)]
                spans = sorted(set(whole) | set(inside))
                spans = [s for i, s in enumerate(spans) if not i or s[0] >= spans[i - 1][1]]
        return spans

    def query_terms(self, text: str) -> list[str]:
        """Distinct terms of a query, in order of first appearance."""
        return list(dict.fromkeys(self.terms(text)))


def _continues(text: str, at: int, *, before: bool = False) -> bool:
    """Whether the character at ``at`` (a match's end; ``before``: the one before a match)
    belongs to the same token: a letter, a digit, "_", a dash, or before a match a dot."""
    if not 0 <= at < len(text):
        return False
    c = text[at]
    return c.isalnum() or c in "_-\u2011\u2013" or (before and c == ".")


def _code_letter(text: str, start: int, joined: bool) -> tuple[str, int] | None:
    """The code letter written before the digits at ``start``, lower-cased, and where it
    is: "L." or "L. " (any case), "L " (a capital only), or "L" glued to a joined number
    ("L123-22", whose words "l123" and "22" would also match "L123-21"); else None."""
    at = start - 1
    if at >= 0 and text[at] in _SPACES:
        at -= 1
        dotted = at >= 0 and text[at] == "."
        at -= dotted
        if at < 0 or text[at] not in _CODE_LETTERS or not (dotted or text[at].isupper()):
            return None
    elif at >= 0 and text[at] == ".":
        at -= 1
        if at < 0 or text[at] not in _CODE_LETTERS:
            return None
    elif not (joined and at >= 0 and text[at] in _CODE_LETTERS):
        return None
    if _continues(text, at - 1):
        return None  # the end of a word: "total. 12", "val 3"
    return text[at].lower(), at


@lru_cache(maxsize=16)
def get_analyzer(language: str, version: int = 1) -> Analyzer:
    return Analyzer(language, version)


class _Analyzed(Protocol):  # a Collection
    @property
    def language(self) -> str: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...


def analyzer_for(collection: _Analyzed) -> Analyzer:
    """The analyzer of a collection: its language, and the analysis version it recorded at
    creation (1 when it recorded none)."""
    version = collection.settings.get("analysis", 1)
    return get_analyzer(collection.language, version if isinstance(version, int) else 1)


_EN_ONLY = BY_LANGUAGE["en"] - BY_LANGUAGE["fr"]
_FR_ONLY = BY_LANGUAGE["fr"] - BY_LANGUAGE["en"]


def english_markers(query: str, language: str) -> list[str]:
    """For a query on a French collection (``language``): the terms, as the collection
    analyzes them, of the query's English-only stopwords ("the", "of", "with"), when it has
    some and no French-only one ("le", "des", "avec"): the sign of an English query. Else
    (another language, a French or undecided query) none."""
    if language != "fr":
        return []
    words = {fold(w) for w in _WORD.findall(query)}
    if words & _FR_ONLY:
        return []
    analyzer = get_analyzer("fr")
    return sorted({t for w in words & _EN_ONLY if (t := analyzer.term(w))})


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
