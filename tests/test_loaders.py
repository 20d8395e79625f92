"""Loaders: every format from a generated fixture, plus the failure modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from engram.errors import LoaderError, UnsupportedFormat
from engram.ingest.loaders import LoaderOptions, load_bytes, load_path, supported_extensions
from engram.types import Failure, LoadedDocument

ROOT = Path(__file__).resolve().parents[1]


def check_blocks(doc: LoadedDocument) -> None:
    """Blocks are in order, disjoint, inside the text and trimmed of whitespace."""
    previous_end = 0
    assert doc.blocks
    for block in doc.blocks:
        assert previous_end <= block.start < block.end <= len(doc.text)
        piece = doc.text[block.start : block.end]
        assert piece == piece.strip()
        previous_end = block.end


def block_texts(doc: LoadedDocument) -> list[str]:
    return [doc.text[b.start : b.end] for b in doc.blocks]


def load_one(path: Path, **kw: object) -> LoadedDocument:
    docs = load_path(path, key=path.name, **kw)  # type: ignore[arg-type]
    assert len(docs) == 1
    check_blocks(docs[0])
    return docs[0]


# --- single-document formats ---------------------------------------------------------------


def test_text_paragraphs_and_title(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First paragraph\r\nstill first.\r\n\r\n\r\n  Second one.  \n")
    doc = load_one(path)
    assert block_texts(doc) == ["First paragraph\nstill first.", "Second one."]
    assert doc.title == "notes"
    assert doc.key == "notes.txt" and doc.source == str(path)


def test_text_encoding_fallbacks(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("café crème".encode("cp1252"))
    (tmp_path / "b.txt").write_bytes("\ufeffnaïve".encode())
    (tmp_path / "c.txt").write_bytes("ünïcode".encode("utf-16"))
    assert load_one(tmp_path / "a.txt").text == "café crème"
    assert load_one(tmp_path / "b.txt").text == "naïve"
    assert load_one(tmp_path / "c.txt").text == "ünïcode"
    opts = LoaderOptions(encoding="latin-1")
    assert load_one(tmp_path / "a.txt", options=opts).text == "café crème"


MARKDOWN = """\
---
title: Front Matter Title
author: Ada
---
# Guide

Intro paragraph.

## Install

Run the installer. Then restart.

- first item
- second item
  continues here

### Linux

```bash
make install

make test
```

Setext Section
--------------

Under setext.

# Appendix ##

Last words.
"""


def test_markdown_structure(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    doc = load_one(path)
    assert doc.title == "Front Matter Title"
    assert doc.metadata == {"author": "Ada"}
    got = [(doc.text[b.start : b.end], b.heading_path, b.is_heading) for b in doc.blocks]
    assert got == [
        ("Guide", ("Guide",), True),
        ("Intro paragraph.", ("Guide",), False),
        ("Install", ("Guide", "Install"), True),
        ("Run the installer. Then restart.", ("Guide", "Install"), False),
        ("- first item", ("Guide", "Install"), False),
        ("- second item\n  continues here", ("Guide", "Install"), False),
        ("Linux", ("Guide", "Install", "Linux"), True),
        ("```bash\nmake install\n\nmake test\n```", ("Guide", "Install", "Linux"), False),
        ("Setext Section", ("Guide", "Setext Section"), True),
        ("Under setext.", ("Guide", "Setext Section"), False),
        ("Appendix", ("Appendix",), True),
        ("Last words.", ("Appendix",), False),
    ]


def test_markdown_title_falls_back(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Intro.\n\n# Real Title\n\nBody.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("## Only h2\n\nBody.\n", encoding="utf-8")
    assert load_one(tmp_path / "a.md").title == "Real Title"
    assert load_one(tmp_path / "b.md").title == "b"


HTML = """\
<!DOCTYPE html>
<html><head><title> Page  Title </title><style>p { color: red }</style></head>
<body>
<header><a href="/">Site logo</a> Menu</header>
<nav><ul><li>Home</li><li>About</li></ul></nav>
<main>
<article>
<header><h1>Main Heading</h1></header>
<p>First <b>bold</b> paragraph
   across lines.</p>
<!-- a comment -->
<h2>Section A</h2>
<ul><li>Item one</li><li>Item <em>two</em></li></ul>
<blockquote>Quoted text.</blockquote>
<pre>code   line 1
  indented</pre>
<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ada</td><td>36</td></tr></table>
<h3>Sub A1</h3>
<div>Loose div text.</div>
</article>
</main>
<script>var tracking = 1;</script>
<footer>Copyright footer</footer>
</body></html>
"""


def test_html_structure_and_noise(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(HTML, encoding="utf-8")
    doc = load_one(path)
    assert doc.title == "Page Title"
    for noise in ("Site logo", "Home", "tracking", "Copyright", "color", "a comment"):
        assert noise not in doc.text
    got = [(doc.text[b.start : b.end], b.heading_path, b.is_heading) for b in doc.blocks]
    assert got == [
        ("Main Heading", ("Main Heading",), True),
        ("First bold paragraph across lines.", ("Main Heading",), False),
        ("Section A", ("Main Heading", "Section A"), True),
        ("Item one", ("Main Heading", "Section A"), False),
        ("Item two", ("Main Heading", "Section A"), False),
        ("Quoted text.", ("Main Heading", "Section A"), False),
        ("code   line 1\n  indented", ("Main Heading", "Section A"), False),
        ("Name | Age", ("Main Heading", "Section A"), False),
        ("Ada | 36", ("Main Heading", "Section A"), False),
        ("Sub A1", ("Main Heading", "Section A", "Sub A1"), True),
        ("Loose div text.", ("Main Heading", "Section A", "Sub A1"), False),
    ]


def test_html_title_from_h1_and_declared_charset(tmp_path: Path) -> None:
    path = tmp_path / "x.htm"
    html = '<html><head><meta charset="windows-1252"></head><body><h1>Résumé</h1><p>ok</p>'
    path.write_bytes(html.encode("cp1252"))
    doc = load_one(path)
    assert doc.title == "Résumé"


def make_pdf(path: Path) -> None:
    pdf = FPDF()
    pdf.set_title("Quarterly Report")
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Revenue grew strongly this quarter. Costs were flat.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "Outlook for next year remains positive.")
    pdf.output(str(path))


def test_pdf_pages_and_title(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    make_pdf(path)
    doc = load_one(path)
    assert doc.title == "Quarterly Report"
    assert [b.page for b in doc.blocks] == [1, 2]
    texts = block_texts(doc)
    assert texts[0] == "Revenue grew strongly this quarter. Costs were flat."
    assert texts[1] == "Outlook for next year remains positive."


def test_pdf_without_text_is_no_text(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.add_page()
    path = tmp_path / "blank.pdf"
    pdf.output(str(path))
    with pytest.raises(LoaderError, match="no text") as info:
        load_path(path, key="blank.pdf")
    assert "OCR" in (info.value.hint or "")


def make_docx(path: Path) -> None:
    document = docx.Document()
    document.add_heading("Handbook", 0)
    document.add_heading("Getting started", 1)
    document.add_paragraph("Welcome to the team.")
    document.add_heading("Accounts", 2)
    document.add_paragraph("Ask IT for a laptop.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Tool", "Owner"), ("Mail", "IT")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Policies", 1)
    document.add_paragraph("")
    document.add_paragraph("Be kind.")
    document.save(str(path))


def test_docx_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "handbook.docx"
    make_docx(path)
    doc = load_one(path)
    assert doc.title == "Handbook"
    got = [(doc.text[b.start : b.end], b.heading_path, b.is_heading) for b in doc.blocks]
    assert got == [
        ("Handbook", ("Handbook",), True),
        ("Getting started", ("Handbook", "Getting started"), True),
        ("Welcome to the team.", ("Handbook", "Getting started"), False),
        ("Accounts", ("Handbook", "Getting started", "Accounts"), True),
        ("Ask IT for a laptop.", ("Handbook", "Getting started", "Accounts"), False),
        ("Tool | Owner", ("Handbook", "Getting started", "Accounts"), False),
        ("Mail | IT", ("Handbook", "Getting started", "Accounts"), False),
        ("Policies", ("Handbook", "Policies"), True),
        ("Be kind.", ("Handbook", "Policies"), False),
    ]


# --- record formats --------------------------------------------------------------------------


def test_jsonl_beir_corpus(tmp_path: Path) -> None:
    lines = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {"url": "u1"}},
        {"_id": 2, "title": "", "text": "Dogs bark.\n\nLoudly.", "metadata": {}},
        {"_id": "d3", "title": "Only a title", "text": ""},
        {"title": "", "text": "No id here.", "lang": "en"},
    ]
    body = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n"
    body += "\n".join(json.dumps(line) for line in lines[2:]) + "\n"
    path = tmp_path / "corpus.jsonl"
    path.write_text(body, encoding="utf-8")
    docs = load_path(path, key="corpus.jsonl")
    for doc in docs:
        check_blocks(doc)
    assert [d.key for d in docs] == ["d1", "2", "d3", "corpus.jsonl#3"]
    assert docs[0].title == "Cats" and docs[0].text == "Cats purr."
    assert docs[0].metadata == {"url": "u1"}
    assert block_texts(docs[1]) == ["Dogs bark.", "Loudly."]
    assert docs[2].text == "Only a title"  # kept searchable
    assert docs[3].metadata == {"lang": "en"}
    assert {d.source for d in docs} == {str(path)}


def test_record_options(tmp_path: Path) -> None:
    path = tmp_path / "r.ndjson"
    record = {"doc": "a", "head": "H", "body": "B1", "summary": "S", "x": 1, "y": 2}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    opts = LoaderOptions(
        id_field="doc", title_field="head", text_fields=("summary", "body"), metadata_fields=("x",)
    )
    (doc,) = load_path(path, key="r", options=opts)
    assert (doc.key, doc.title, doc.text, doc.metadata) == ("a", "H", "S\n\nB1", {"x": 1})


@pytest.mark.parametrize(
    "payload",
    [
        [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}],
        {"data": [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}]},
        {"documents": [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}]},
    ],
)
def test_json_shapes(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    docs = load_path(path, key="docs.json")
    assert [(d.key, d.text) for d in docs] == [("a", "alpha"), ("b", "beta")]


def test_json_single_object_keeps_file_key(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"title": "T", "text": "body", "tags": ["x"]}), encoding="utf-8")
    (doc,) = load_path(path, key="one.json")
    assert (doc.key, doc.title, doc.text, doc.metadata) == (
        "one.json",
        "T",
        "body",
        {"tags": ["x"]},
    )


def test_csv_with_text_column_and_sniffed_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(
        'id;title;text;category\n1;Refunds;"Refunds take; 5 days.";billing\n2;;Reset it.;\n',
        encoding="utf-8",
    )
    docs = load_path(path, key="faq.csv")
    assert [(d.key, d.title, d.text, d.metadata) for d in docs] == [
        ("1", "Refunds", "Refunds take; 5 days.", {"category": "billing"}),
        ("2", "", "Reset it.", {}),
    ]


def test_csv_without_text_column_uses_all_columns(tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    path.write_text("sku,name,description\nA1,Lamp,A warm light\n", encoding="utf-8")
    (doc,) = load_path(path, key="products.csv")
    assert doc.key == "products.csv#0"
    assert doc.text == "sku: A1\n\nname: Lamp\n\ndescription: A warm light"
    assert block_texts(doc) == ["sku: A1", "name: Lamp", "description: A warm light"]


# --- load_bytes, registry --------------------------------------------------------------------


def test_load_bytes_formats() -> None:
    (doc,) = load_bytes(b"# Hello\n\nWorld.", fmt="markdown", key="stdin")
    assert doc.title == "Hello" and doc.source == "stdin"
    (doc,) = load_bytes(b"plain", fmt=".txt", key="stdin")
    assert doc.title == ""  # "stdin" is not a file name
    (doc,) = load_bytes(b"plain", fmt="txt", key="upload.txt", source="api")
    assert (doc.title, doc.source) == ("upload", "api")
    docs = load_bytes(b'{"id": 1, "text": "a"}\n', fmt="jsonl", key="stdin")
    assert docs[0].key == "1"


def test_supported_extensions() -> None:
    assert {".txt", ".md", ".html", ".pdf", ".docx", ".json", ".jsonl", ".csv"} <= (
        supported_extensions()
    )


def test_parsers_are_imported_lazily() -> None:
    code = (
        "import sys\n"
        "from engram.ingest.loaders import load_bytes\n"
        "load_bytes(b'# a\\n\\nb', fmt='md', key='a.md')\n"
        "heavy = {'pypdfium2', 'docx', 'bs4', 'lxml'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)


# --- failures --------------------------------------------------------------------------------


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(UnsupportedFormat) as info:
        load_path(path, key="image.png")
    assert ".png" in info.value.message and str(path) in info.value.message
    assert ".md" in (info.value.hint or "") and ".pdf" in (info.value.hint or "")
    with pytest.raises(UnsupportedFormat):
        load_bytes(b"x", fmt="rtf", key="stdin")


def test_corrupt_pdf(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf" * 5)
    with pytest.raises(LoaderError, match="not a readable PDF") as info:
        load_path(path, key="broken.pdf")
    assert str(path) in info.value.message and info.value.hint


def test_truncated_docx(tmp_path: Path) -> None:
    good = tmp_path / "good.docx"
    make_docx(good)
    path = tmp_path / "cut.docx"
    path.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(LoaderError, match="not a readable .docx") as info:
        load_path(path, key="cut.docx")
    assert str(path) in info.value.message


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)) * 8, bytes(b % 32 for b in range(1, 3000) if b % 32 not in (0, 9, 10, 13))],
)
def test_binary_garbage_txt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "garbage.txt"
    path.write_bytes(data)
    with pytest.raises(LoaderError, match="binary") as info:
        load_path(path, key="garbage.txt")
    assert str(path) in info.value.message


def test_bad_jsonl_line_is_named_and_skipped(tmp_path: Path) -> None:
    """A bad line is reported with its number; the good lines are still loaded. A file with
    no good line at all fails whole, naming the first bad one."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": \n', encoding="utf-8")
    good, bad = load_path(path, key="bad.jsonl")
    assert isinstance(good, LoadedDocument) and good.key == "1"
    assert isinstance(bad, Failure) and bad.reason.startswith("line 3: invalid JSON")
    path.write_text('{"id": 1, "text": "ok"}\n[1, 2]\n', encoding="utf-8")
    docs = load_path(path, key="bad.jsonl")
    assert isinstance(docs[1], Failure) and "line 2: expected an object" in docs[1].reason
    path.write_text('[1, 2]\n{"id": 2, "text": \n', encoding="utf-8")
    with pytest.raises(LoaderError, match="line 1: expected an object.*1 more bad record"):
        load_path(path, key="bad.jsonl")


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"id": 1,}]', encoding="utf-8")
    with pytest.raises(LoaderError, match="invalid JSON at line 1"):
        load_path(path, key="bad.json")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.txt", b""),
        ("blank.md", b"\n   \n\t\n"),
        ("empty.html", b"<html><body><script>x()</script></body></html>"),
        ("empty.jsonl", b"\n\n"),
        ("notext.json", b'[{"id": 1, "body": "x"}]'),
    ],
)
def test_empty_documents(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoaderError, match="no text"):
        load_path(path, key=name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read"):
        load_path(tmp_path / "gone.txt", key="gone.txt")
