"""The answer without a language model: whole sentences of the passages that best match the
question, or "not found in the documents" when none matches it closely enough.

How a passage becomes candidate sentences (:func:`sentences`):

* lines are joined into blocks: a blank line, a markdown heading (``#``), a list item
  (``-``, ``*``, ``•``, ``1.``) or a table row (``|``) starts a new block, and so does a
  line after one that ends with punctuation or is shorter than ``_WRAP_CHARS`` (a label);
  a line after a longer unpunctuated one continues it (hard-wrapped text);
* blocks that cannot answer are skipped (:func:`is_non_answer`): headings (``#`` lines, the
  passage's title or one of its ``heading_path`` entries), table rows and separators, and
  short fragments without final punctuation (a bullet such as "- Paris office");
* a block is cut into sentences by the chunker's rules
  (:func:`engram.ingest.chunking.sentence_spans`): after ``. ! ? …`` (closing quotes and
  brackets stay with their sentence) followed by a space and a capital or a digit, but not
  after an abbreviation ("e.g.", "M.", "art.", an initial "L.") nor inside a number
  ("3.5"); French spaces before ``; : ? !`` and « » are kept as written. A chunk that
  starts or ends inside a sentence leaves that piece out.

A sentence longer than ``_MAX_CHARS`` is quoted whole or not at all: never cut.

Whether to answer: the relevance of the best sentence is the share of the question's terms
(stemmed, folded, stopwords and question words such as "how much" or "combien" removed)
found in it or in the title and headings of its passage. Below ``RELEVANCE_THRESHOLD`` the
answer is "not found in the documents", with no citation. The threshold was chosen by
measurement on an English and a French dataset (``bench/tune_extractive.py``,
docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engram.ingest.chunking import sentence_spans
from engram.search.analyzer import Analyzer, detect_language, get_analyzer
from engram.types import SearchResult

RELEVANCE_THRESHOLD = 0.6
"""The least share of the question's terms the best sentence (with its passage's title and
headings) must contain for an extractive answer to quote it (docs/benchmarks.md)."""

_TEXTS = {
    "en": {
        "prefix": "No language model is configured; the most relevant passages say:",
        "empty": "No language model is configured, and no passages match the question.",
        "not_found": "Not found in the documents: no passage answers the question closely "
        "enough. (No language model is configured; answers are quoted from the passages.)",
    },
    "fr": {
        "prefix": "Aucun modèle de langue n'est configuré ; les passages les plus pertinents "
        "disent :",
        "empty": "Aucun modèle de langue n'est configuré, et aucun passage ne correspond à la "
        "question.",
        "not_found": "Introuvable dans les documents : aucun passage ne répond assez "
        "précisément à la question. (Aucun modèle de langue n'est configuré ; les réponses "
        "citent les passages.)",
    },
}
EXTRACTIVE_PREFIX = _TEXTS["en"]["prefix"]
EXTRACTIVE_EMPTY = _TEXTS["en"]["empty"]
EXTRACTIVE_NOT_FOUND = _TEXTS["en"]["not_found"]

_MIN_CHARS = 12  # shorter pieces are labels, not statements
_MAX_CHARS = 500  # a longer "sentence" is a table or unpunctuated text: never quoted
_FRAGMENT_WORDS = 6  # a line without final punctuation and fewer words is a label
_WRAP_CHARS = 40  # an unpunctuated line at least this long is taken as hard-wrapped

# How a question is asked, not what it is about: an answer never repeats these words.
_QUESTION_WORDS = re.compile(
    r"\bhow\s+(?:much|many|often|long|far|old|big|large|soon)\b"
    r"|\b(?:whose|combien|quand|pourquoi|comment|quoi)\b",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^#{1,6}\s")
_BULLET = re.compile(r"^(?:[-*•+]|\d{1,3}[.)])\s+")
_TABLE = re.compile(r"^\|")
_FINAL = re.compile(r"[.!?…:;»\"”')\]]$")


@dataclass(frozen=True, slots=True)
class _Sentence:
    n: int  # 1-based number of the passage it comes from
    position: int  # order within the passage
    text: str
    matched: int  # distinct query terms it (with its passage's title and headings) contains


def split_sentences(block: str) -> list[str]:
    """The sentences of one block of running text (the chunker's English and French rules),
    whitespace normalised. In a block of several sentences, a first one starting in lower
    case and a last one without final punctuation are pieces of sentences the chunk cut:
    they are left out."""
    text = " ".join(block.split())
    out = [text[a:b] for a, b in sentence_spans(text)]
    if len(out) > 1 and out[0][:1].islower():
        out = out[1:]
    if len(out) > 1 and not _FINAL.search(out[-1]):
        out = out[:-1]
    return out


def _blocks(text: str, kind: str) -> list[str]:
    """Lines joined into blocks (see the module docstring). A conversation passage has one
    turn a line, each its own block."""
    blocks: list[str] = []
    wrapped = False  # does the last line look hard-wrapped, its sentence going on below?
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            wrapped = False
            continue
        starts_block = bool(_HEADING.match(line) or _BULLET.match(line) or _TABLE.match(line))
        if wrapped and not starts_block and kind == "document":
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        # A short line without final punctuation is a label ("Leave"), not a wrapped one,
        # unless the next line goes on in lower case.
        wrapped = not (_HEADING.match(line) or _TABLE.match(line) or _FINAL.search(line))
        wrapped = wrapped and (len(line) >= _WRAP_CHARS or line[-1] in ",-–")
    return blocks


def _label(text: str) -> str:
    return " ".join(text.lstrip("#").split()).casefold().rstrip(" :")


def is_non_answer(block: str, passage: SearchResult) -> bool:
    """Whether a block is a heading, a table row or separator, or a short label: text that
    names a topic but states nothing about it."""
    if _HEADING.match(block) or _TABLE.match(block):
        return True
    labels = {_label(h) for h in passage.heading_path} | {_label(passage.title)}
    if _label(block) in labels:
        return True
    body = _BULLET.sub("", block, count=1)
    return not _FINAL.search(body) and len(body.split()) < _FRAGMENT_WORDS


def sentences(passage: SearchResult) -> list[str]:
    """The sentences of ``passage`` an answer may quote, in reading order."""
    out = []
    for block in _blocks(passage.text, passage.kind):
        if is_non_answer(block, passage):
            continue
        body = _BULLET.sub("", block, count=1)
        out += [s for s in split_sentences(body) if _MIN_CHARS <= len(s) <= _MAX_CHARS]
    return out


def _context_terms(passage: SearchResult, analyzer: Analyzer) -> set[str]:
    if passage.kind != "document":  # "Earlier conversation, 3 May" says nothing of the topic
        return set()
    return set(analyzer.terms(" ".join((passage.title, *passage.heading_path))))


def candidates(
    question: str, passages: Sequence[SearchResult], language: str, max_passages: int = 3
) -> tuple[int, list[_Sentence]]:
    """The question's distinct term count, and the quotable sentences of the first
    ``max_passages`` documents and of every conversation turn and memory (the user's own
    sources, which come after the documents), each with the question terms it matches."""
    analyzer = get_analyzer(language)
    terms = set(analyzer.query_terms(_QUESTION_WORDS.sub(" ", question)))
    out = []
    documents = 0
    for n, passage in enumerate(passages, 1):
        if passage.kind == "document":
            documents += 1
            if documents > max_passages:
                continue
        context = _context_terms(passage, analyzer)
        for i, sentence in enumerate(sentences(passage)):
            matched = terms.intersection(analyzer.terms(sentence)) | (terms & context)
            out.append(_Sentence(n, i, sentence, len(matched)))
    return len(terms), out


def relevance(question: str, passages: Sequence[SearchResult], language: str = "en") -> float:
    """The share (0..1) of the question's terms the best quotable sentence holds, with its
    passage's title and headings; 0 when the question has no terms or nothing is quotable."""
    count, found = candidates(question, passages, language)
    return max((s.matched for s in found), default=0) / count if count else 0.0


def extractive_answer(
    question: str,
    passages: Sequence[SearchResult],
    *,
    language: str = "en",
    max_sentences: int = 3,
    max_passages: int = 3,
    threshold: float = RELEVANCE_THRESHOLD,
) -> str:
    """A labelled answer quoting up to ``max_sentences`` whole sentences, chosen by how many
    distinct question terms each holds, shown in reading order with a citation [n]; or "not
    found in the documents" (no citation) when the best sentence holds less than
    ``threshold`` of the question's terms. Sentences come from the first ``max_passages``
    documents and from every conversation turn and memory. ``language`` ("en", "fr", or
    "auto" to detect it) is the collection's: it picks the analyzer and the wording."""
    if language == "auto":
        language = detect_language([question, *(p.text for p in passages[:max_passages])])
    texts = _TEXTS.get(language, _TEXTS["en"])
    if not passages:
        return texts["empty"]
    count, found = candidates(question, passages, language, max_passages)
    # Best first; ties go to the better-ranked passage, then to the earlier sentence.
    ranked = sorted(found, key=lambda s: (-s.matched, s.n, s.position))
    if not ranked or not count or ranked[0].matched / count < threshold:
        return texts["not_found"]
    # Sentences matching less than half as many terms as the best one dilute the answer.
    floor = -(-ranked[0].matched // 2)
    chosen = [s for s in ranked if s.matched >= floor][:max_sentences]
    lines = [f"- {s.text} [{s.n}]" for s in sorted(chosen, key=lambda s: (s.n, s.position))]
    return texts["prefix"] + "\n\n" + "\n".join(lines)
