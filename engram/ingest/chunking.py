"""Structure-following chunker: packs a document's blocks into chunks of at most ``max_tokens``.

* Blocks are packed in order; a heading starts a new chunk and travels with the content it
  introduces (a small section may absorb its first sub-section, which its path still covers).
* A block longer than ``max_tokens`` is cut at sentence boundaries, a sentence that is still
  too long at line breaks, and a line that is still too long at token boundaries. Consecutive
  pieces of one block overlap by up to ``overlap_tokens``, in whole sentences when they fit.
* Offsets are exact: ``chunk.text == doc.text[chunk.start:chunk.end]``, with surrounding
  whitespace trimmed by moving offsets.

The tokenizer runs once over the whole text; every span is then counted with two bisections,
which keeps the chunker at thousands of documents per second.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engram.errors import ConfigError
from engram.ingest.loaders.base import strip_span
from engram.types import Block, ChunkSpan, LoadedDocument

TokenOffsets = Callable[[str], list[tuple[int, int]]]

__all__ = ["TokenOffsets", "chunk_document", "sentence_spans"]

# Sentence-final punctuation, then closing quotes/brackets (French puts a space before »).
_SENTENCE_END = re.compile(r"[.!?…]+(?:[ \u00a0\u202f]?[\"'”’»)\]])*(?=\s)")
_OPENERS = "\"'“‘«([¿¡—–- \u00a0\u202f"
_INITIALISM = re.compile(r"(?:\w\.)+\w")
# Abbreviations that do not end a sentence even before a capital (English and French).
_ABBREVIATION_WORDS = (
    "mr mrs ms dr prof sr jr st mt vs cf al approx dept inc ltd co corp jan feb mar apr jun "
    "jul aug sep sept oct nov dec gen col lt sgt gov rev ed eds est mme mmes mlle mlles mm me "
    "pr ste env chap av bd resp j.-c art arts"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# Abbreviations only when a number follows ("No. 5", "p. 12"): "I said no. Then" still splits.
_NUMBER_ABBREVIATION_WORDS = "no nos n p pp vol fig figs eq eqs ch sec art"
_NUMBER_ABBREVIATIONS = frozenset(_NUMBER_ABBREVIATION_WORDS.split())
_WORD = re.compile(r"\w")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Whitespace-trimmed sentence spans of ``text[start:end]`` (English and French rules)."""
    end = len(text) if end is None else end
    spans = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        nxt = match.end()
        while nxt < end and text[nxt].isspace():
            nxt += 1
        first = nxt
        while first < end and text[first] in _OPENERS:
            first += 1
        if first >= end or not (text[first].isupper() or text[first].isdigit()):
            continue
        if match.group().startswith(".") and _is_abbreviation(text, start, match.start(), first):
            continue
        spans.append(strip_span(text, pos, match.end()))
        pos = nxt
    spans.append(strip_span(text, pos, end))
    return [(a, b) for a, b in spans if b > a]


def _is_abbreviation(text: str, start: int, dot: int, next_char: int) -> bool:
    word_start = max(text.rfind(" ", start, dot), text.rfind("\n", start, dot)) + 1
    word = text[word_start:dot].lstrip(_OPENERS).lower()
    word = re.split(r"['’]", word)[-1]  # French elision: "l'art." is "art."
    if len(word) == 1 and word.isalpha():  # an initial: "J. K. Rowling", "M. Dupont"
        return True
    if word in _ABBREVIATIONS or _INITIALISM.fullmatch(word):  # "e.g.", "U.S."
        return True
    return word in _NUMBER_ABBREVIATIONS and text[next_char].isdigit()


class _Tokens:
    """Token start offsets of a whole text, so any span is counted with two bisections."""

    def __init__(
        self,
        text: str,
        token_offsets: TokenOffsets,
        precomputed: list[tuple[int, int]] | None = None,
    ) -> None:
        self.text = text
        starts: list[int] = []
        pos = 0
        # Loop in case the tokenizer truncates: carry on from the last token while words remain.
        while True:
            if precomputed is not None:
                offsets, precomputed = precomputed, None
            else:
                offsets = token_offsets(text[pos:] if pos else text)
            if not offsets:
                break
            starts.extend([s + pos for s, _ in offsets] if pos else [s for s, _ in offsets])
            last = offsets[-1][1] + pos
            if last <= pos or not _WORD.search(text, last):
                break
            pos = last
        self.starts = starts

    def count(self, start: int, end: int) -> int:
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def word_start(self, pos: int) -> bool:
        """Whether a cut at ``pos`` falls between words rather than inside one."""
        return pos == 0 or not (self.text[pos - 1].isalnum() and self.text[pos].isalnum())

    def pieces(self, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
        """Cut ``[start, end)`` into spans of at most ``size`` tokens, between words if possible."""
        starts = self.starts
        lo, hi = bisect_left(starts, start), bisect_left(starts, end)
        cur = start
        while hi - lo > size:
            j = lo + size
            # Look back a little for a cut between words; a giant "word" (URL) is cut anyway.
            back = range(j, max(lo, j - 16), -1)
            cut = next((k for k in back if self.word_start(starts[k])), j)
            if starts[cut] <= cur:  # tokens sharing one start offset (byte-level BPE)
                cut = bisect_right(starts, cur)
                if cut >= hi:
                    break
            yield strip_span(self.text, cur, starts[cut])
            cur = starts[cut]
            lo = bisect_left(starts, cur)
        yield strip_span(self.text, cur, end)


@dataclass(frozen=True, slots=True)
class _Segment:
    start: int
    end: int
    block: int  # index into the sorted blocks
    heading: bool = False
    overlap: bool = False  # a copy of the previous chunk's tail


def _segments(
    text: str, blocks: list[Block], tokens: _Tokens, max_tokens: int, overlap: int
) -> Iterator[_Segment]:
    """Blocks as segments of at most ``max_tokens``: whole if they fit, else sentences, lines,
    token pieces."""
    for index, block in enumerate(blocks):
        if tokens.count(block.start, block.end) <= max_tokens:
            yield _Segment(block.start, block.end, index, block.is_heading)
            continue
        first = True
        for s_start, s_end in sentence_spans(text, block.start, block.end):
            spans = [(s_start, s_end)]
            if tokens.count(s_start, s_end) > max_tokens:
                spans = [
                    piece
                    for line in _lines(text, s_start, s_end)
                    for piece in (
                        [line]
                        if tokens.count(*line) <= max_tokens
                        # Shorter pieces leave room for the overlap carried into each chunk.
                        else tokens.pieces(*line, max(1, max_tokens - overlap))
                    )
                ]
            for a, b in spans:
                if b > a:
                    yield _Segment(a, b, index, block.is_heading and first)
                    first = False


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    while (newline := text.find("\n", pos, end)) != -1:
        spans.append(strip_span(text, pos, newline))
        pos = newline + 1
    spans.append(strip_span(text, pos, end))
    return [(a, b) for a, b in spans if b > a]


def _clean_blocks(doc: LoadedDocument) -> list[Block]:
    """Blocks sorted, clipped so they do not overlap, and trimmed of whitespace."""
    blocks = doc.blocks or [Block(0, len(doc.text))]
    out: list[Block] = []
    floor = 0
    for block in sorted(blocks, key=lambda b: (b.start, b.end)):
        start, end = strip_span(doc.text, max(block.start, floor), min(block.end, len(doc.text)))
        if end > start:
            out.append(Block(start, end, block.heading_path, block.page, block.is_heading))
            floor = end
    return out


class _Packer:
    def __init__(self, tokens: _Tokens, blocks: list[Block], max_tokens: int, overlap: int):
        self.tokens, self.blocks = tokens, blocks
        self.max_tokens, self.overlap = max_tokens, overlap
        self.spans: list[tuple[int, int, int]] = []  # (start, end, first block)
        self.cur: list[_Segment] = []

    def emit(self, body: list[_Segment]) -> None:
        self.spans.append((body[0].start, body[-1].end, body[0].block))

    def nests(self, seg: _Segment) -> bool:
        """Whether a heading may join the current chunk: a sub-section of a still-small one."""
        head = self.cur[0]
        outer, inner = self.blocks[head.block].heading_path, self.blocks[seg.block].heading_path
        small = self.tokens.count(head.start, self.cur[-1].end) < self.max_tokens // 4
        return head.heading and small and len(inner) > len(outer) and inner[: len(outer)] == outer

    def add(self, seg: _Segment) -> None:
        cur, count = self.cur, self.tokens.count
        if cur:
            fits = count(cur[0].start, seg.end) <= self.max_tokens
            has_content = any(not s.heading for s in cur)
            if seg.heading and has_content and not (fits and self.nests(seg)):
                self.emit(cur)
                self.cur = []
            elif not fits:
                self.cur = self.carry(seg)
            # Whitespace tokens between segments can push the carried overlap over the limit.
            while (
                self.cur
                and self.cur[0].overlap
                and count(self.cur[0].start, seg.end) > self.max_tokens
            ):
                self.cur.pop(0)
        self.cur.append(seg)

    def carry(self, seg: _Segment) -> list[_Segment]:
        """Emit the current chunk; return what the next one starts with."""
        cur, count = self.cur, self.tokens.count
        k = len(cur)
        while k and cur[k - 1].heading:
            k -= 1
        # Trailing headings move on with the content they introduce.
        if not seg.heading and 0 < k < len(cur) and count(cur[k].start, seg.end) <= self.max_tokens:
            self.emit(cur[:k])
            return cur[k:]
        self.emit(cur)
        if seg.heading or cur[-1].heading or cur[-1].block != seg.block:
            return []  # overlap only inside a block that had to be split
        return self.overlap_tail(seg)

    def overlap_tail(self, seg: _Segment) -> list[_Segment]:
        cur, tokens = self.cur, self.tokens
        budget = min(self.overlap, self.max_tokens - tokens.count(seg.start, seg.end))
        if budget <= 0:
            return []
        last = cur[-1]
        j = len(cur)
        while (
            j
            and cur[j - 1].block == last.block
            and tokens.count(cur[j - 1].start, last.end) <= budget
        ):
            j -= 1
        if j < len(cur):  # whole sentences (or lines) fit in the budget
            return [_Segment(s.start, s.end, s.block, False, True) for s in cur[j:]]
        starts = tokens.starts
        lo, hi = bisect_left(starts, last.start), bisect_left(starts, last.end)
        # Start the overlap at a word: a chunk opening mid-word tokenizes differently alone.
        first = max(lo + 1, hi - budget)
        i = next((k for k in range(first, hi) if tokens.word_start(starts[k])), hi)
        if i >= hi:
            return []
        return [_Segment(starts[i], last.end, last.block, False, True)]


def chunk_document(
    doc: LoadedDocument,
    token_offsets: TokenOffsets,
    *,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    offsets: list[tuple[int, int]] | None = None,
) -> list[ChunkSpan]:
    """Split ``doc`` into chunks of at most ``max_tokens`` tokens as counted by
    ``token_offsets`` (an embedder's :meth:`~engram.providers.embedders.base.Embedder.token_offsets`).

    Each chunk carries the heading path and page of its first block. A document without
    blocks is treated as one block. Deterministic: the same input gives the same chunks.
    ``offsets`` may pass ``token_offsets(doc.text)`` already computed (by a batched call).
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ConfigError(
            f"overlap_tokens must be between 0 and max_tokens - 1 ({max_tokens - 1}), "
            f"got {overlap_tokens}",
            hint="lower the chunk overlap or raise the chunk size",
        )
    text = doc.text
    blocks = _clean_blocks(doc)
    if not blocks:
        return []
    tokens = _Tokens(text, token_offsets, offsets)
    packer = _Packer(tokens, blocks, max_tokens, overlap_tokens)
    for seg in _segments(text, blocks, tokens, max_tokens, overlap_tokens):
        packer.add(seg)
    if packer.cur:
        packer.emit(packer.cur)
    return [
        ChunkSpan(
            text=text[start:end],
            start=start,
            end=end,
            heading_path=blocks[block].heading_path,
            page=blocks[block].page,
            token_count=tokens.count(start, end),
        )
        for start, end, block in packer.spans
    ]
