"""File discovery (include/exclude globs, hidden files, order) and stdin loading."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engram.errors import LoaderError, UnsupportedFormat
from engram.ingest.sources import iter_files, matches, read_stdin_documents


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in [
        "b.md",
        "a.txt",
        "notes/z.md",
        "notes/deep/c.html",
        "notes/deep/data.jsonl",
        "drafts/wip.md",
        "image.png",
        "README",
        ".hidden.md",
        ".git/config.md",
        "notes/.cache/x.txt",
        "UPPER.MD",
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text", encoding="utf-8")
    return tmp_path


def keys(root: Path, **kw: object) -> list[str]:
    return [key for _, key in iter_files(root, **kw)]  # type: ignore[arg-type]


def test_default_walk_is_sorted_and_skips_hidden_and_unsupported(tree: Path) -> None:
    found = list(iter_files(tree))
    assert [k for _, k in found] == [
        "UPPER.MD",
        "a.txt",
        "b.md",
        "drafts/wip.md",
        "notes/deep/c.html",
        "notes/deep/data.jsonl",
        "notes/z.md",
    ]
    assert all(path == tree / key for path, key in found)


def test_include_and_exclude(tree: Path) -> None:
    assert keys(tree, include=["*.md"]) == ["b.md", "drafts/wip.md", "notes/z.md"]
    assert keys(tree, include=["notes/**"]) == [
        "notes/deep/c.html",
        "notes/deep/data.jsonl",
        "notes/z.md",
    ]
    assert keys(tree, include=["notes/*.md"]) == ["notes/z.md"]
    assert keys(tree, include=["notes/**/*.md"]) == ["notes/z.md"]
    assert keys(tree, exclude=["drafts", "**/*.jsonl", "*.MD"]) == [
        "a.txt",
        "b.md",
        "notes/deep/c.html",
        "notes/z.md",
    ]
    assert keys(tree, include=["*.md", "*.txt"], exclude=["notes/"]) == [
        "a.txt",
        "b.md",
        "drafts/wip.md",
    ]


def test_not_recursive(tree: Path) -> None:
    assert keys(tree, recursive=False) == ["UPPER.MD", "a.txt", "b.md"]


def test_single_file(tree: Path) -> None:
    assert list(iter_files(tree / "notes" / "z.md")) == [(tree / "notes" / "z.md", "z.md")]
    # Named explicitly, an unsupported file is not skipped: loading it reports why.
    assert keys(tree / "image.png") == ["image.png"]


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="no such file"):
        list(iter_files(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("rel", "pattern", "expected"),
    [
        ("a/b/c.md", "*.md", True),
        ("a/b/c.md", "a/*.md", False),
        ("a/b/c.md", "a/**/*.md", True),
        ("a/c.md", "a/**/*.md", True),
        ("a/b/c.md", "**/c.md", True),
        ("c.md", "**/c.md", True),
        ("a/b/c.md", "a/**", True),
        ("a/b/c.md", "./a/b/c.md", True),
        ("a/b/c.md", "?.md", True),
        ("a/b/cc.md", "[!c]c.md", False),
        ("a/b/dc.md", "[!c]c.md", True),
        ("a/b/c.md", "", False),
    ],
)
def test_matches(rel: str, pattern: str, expected: bool) -> None:
    assert matches(rel, pattern) is expected


def test_read_stdin_documents_binary_and_text_streams() -> None:
    (doc,) = read_stdin_documents(io.BytesIO(b"# Title\n\nBody."), "md")
    assert (doc.key, doc.title, doc.source) == ("stdin", "Title", "stdin")
    docs = read_stdin_documents(io.StringIO('{"id": "a", "text": "x"}\n'), "jsonl", key="pipe")
    assert [d.key for d in docs] == ["a"]
    wrapped = io.TextIOWrapper(io.BytesIO("café".encode("cp1252")))
    (doc,) = read_stdin_documents(wrapped, "txt")  # read as bytes: encoding fallback applies
    assert doc.text == "café"


def test_read_stdin_unsupported_format() -> None:
    with pytest.raises(UnsupportedFormat):
        read_stdin_documents(io.BytesIO(b"x"), "exe")
