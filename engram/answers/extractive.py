"""The answer without a language model: the passages' sentences that best match the question."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engram.search.analyzer import detect_language, get_analyzer
from engram.types import SearchResult

EXTRACTIVE_PREFIX = "No language model is configured; the most relevant passages say:"
EXTRACTIVE_EMPTY = "No language model is configured, and no passages match the question."

# A sentence ends at . ! ? … followed by space, or at a line break (list items, table rows).
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")
_MIN_CHARS = 12  # shorter fragments are headings or list bullets, not statements
_MAX_CHARS = 320  # a "sentence" longer than this is a table or unpunctuated text: cut it


@dataclass(frozen=True, slots=True)
class _Sentence:
    n: int  # 1-based number of the passage it comes from
    position: int  # order within the passage
    text: str
    score: int  # distinct query terms it contains


def _sentences(text: str) -> list[str]:
    out = []
    for piece in _SENTENCE_END.split(text):
        piece = " ".join(piece.split())
        if len(piece) < _MIN_CHARS:
            continue
        if len(piece) > _MAX_CHARS:
            piece = piece[:_MAX_CHARS].rsplit(" ", 1)[0] + " …"
        out.append(piece)
    if not out and text.strip():  # only fragments: the passage itself is the evidence
        out.append(" ".join(text.split())[:_MAX_CHARS])
    return out


def extractive_answer(
    question: str,
    passages: Sequence[SearchResult],
    *,
    language: str = "en",
    max_sentences: int = 3,
    max_passages: int = 3,
) -> str:
    """A labelled answer quoting up to ``max_sentences`` sentences of the first
    ``max_passages`` passages, chosen by how many distinct question terms (stemmed, folded,
    stopwords removed, as the keyword index sees them) each contains, shown in reading order
    with a citation [n]. ``language`` is an analyzer language, or "auto" to detect it."""
    if not passages:
        return EXTRACTIVE_EMPTY
    if language == "auto":
        language = detect_language([question, *(p.text for p in passages[:max_passages])])
    analyzer = get_analyzer(language)
    terms = set(analyzer.query_terms(question))
    candidates = [
        _Sentence(n, i, sentence, len(terms.intersection(analyzer.terms(sentence))))
        for n, passage in enumerate(passages[:max_passages], 1)
        for i, sentence in enumerate(_sentences(passage.text))
    ]
    # Best score first; ties go to the better-ranked passage, then to the earlier sentence.
    ranked = sorted(candidates, key=lambda s: (-s.score, s.n, s.position))
    # Sentences matching less than half as many terms as the best one dilute the answer.
    floor = max(1, -(-ranked[0].score // 2)) if ranked else 1
    chosen = [s for s in ranked if s.score >= floor][:max_sentences]
    if not chosen:
        # No sentence shares a term (a vector-only match): the top passage's opening is
        # still the best evidence there is.
        chosen = ranked[:1]
    if not chosen:
        return EXTRACTIVE_EMPTY
    lines = [f"- {s.text} [{s.n}]" for s in sorted(chosen, key=lambda s: (s.n, s.position))]
    return EXTRACTIVE_PREFIX + "\n\n" + "\n".join(lines)
