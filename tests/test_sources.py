"""File discovery (include/exclude globs, hidden files, order) and stdin loading."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import engram
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
    skipped: list[tuple[str, str]] = []
    found = list(iter_files(tree, on_skip=lambda path, why: skipped.append((path, why))))
    assert [k for _, k in found] == [
        "README",  # no extension, but text: read as text
        "UPPER.MD",
        "a.txt",
        "b.md",
        "drafts/wip.md",
        "notes/deep/c.html",
        "notes/deep/data.jsonl",
        "notes/z.md",
    ]
    assert all(path == tree / key for path, key in found)
    # What is left out is reported (hidden files and folders are not: they are not content).
    assert skipped == [(str(tree / "image.png"), "no loader for .png files")]


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
        "README",
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
    assert keys(tree, recursive=False) == ["README", "UPPER.MD", "a.txt", "b.md"]


def test_single_file(tree: Path) -> None:
    assert list(iter_files(tree / "notes" / "z.md")) == [(tree / "notes" / "z.md", "z.md")]
    # Named explicitly, an unsupported file is not skipped: loading it reports why.
    assert keys(tree / "image.png") == ["image.png"]


def test_plain_text_formats_people_have(tmp_path: Path) -> None:
    """.rst, extension-less text, gzip-compressed text and XML are read; binary files
    without an extension are skipped and reported, not silently dropped."""
    import gzip

    import engram

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.rst").write_text("Guide\n=====\n\nThe rotation runs weekly.")
    (docs / "LICENSE").write_text("Permission is hereby granted, free of charge.")
    (docs / "changes.md.gz").write_bytes(gzip.compress(b"# Changes\n\nFixed the parser."))
    (docs / "log.gz").write_bytes(gzip.compress(b"plain compressed text about kernels"))
    (docs / "feed.xml").write_text(
        "<feed><title>News</title><p>Quarterly <b>report</b> out</p></feed>"
    )
    (docs / "blob").write_bytes(b"\x00\x01\x02 binary")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    with engram.open(tmp_path / "data", embedding_model="hash") as db:
        report = db.ingest(docs)
        assert report.added == 5 and report.failed == 0, report.errors
        assert sorted(report.skipped) == [
            (str(docs / "blob"), "not a text file (no extension)"),
            (str(docs / "photo.jpg"), "no loader for .jpg files"),
        ]
        for query, key in [
            ("rotation weekly", "guide.rst"),
            ("permission granted", "LICENSE"),
            ("parser fixed", "changes.md.gz"),
            ("kernels", "log.gz"),
            ("quarterly report", "feed.xml"),
        ]:
            assert db.search(query, mode="keyword").results[0].document_key == key, query


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


def test_files_carry_their_facts_in_metadata(db: engram.Engram, corpus: Path) -> None:
    """Every document from a file has metadata["file"] (path relative to the folder,
    folder, name, extension, size, modified) to filter on; touching a file is no change."""
    db.ingest(corpus, collection="kb")
    birds = db.document("sub/birds.html", collection="kb")
    facts = birds.metadata["file"]
    assert facts["path"] == "sub/birds.html" and facts["folder"] == "sub"
    assert facts["name"] == "birds.html" and facts["extension"] == ".html"
    assert facts["size"] == (corpus / "sub" / "birds.html").stat().st_size
    assert facts["modified"].endswith("+00:00")
    html = db.search("parrots", collection="kb", where={"file.extension": ".html"}).results
    assert [r.document_key for r in html] == ["sub/birds.html"]
    assert db.search("parrots", collection="kb", where={"file.folder": "nowhere"}).results == []
    os.utime(corpus / "sub" / "birds.html", (1_000_000_000, 1_000_000_000))
    again = db.ingest(corpus, collection="kb")
    assert again.added == again.updated == 0 and again.unchanged > 0
    assert db.document("sub/birds.html", collection="kb").version == 1
