"""PDF via pypdfium2: the text layer of each page, split into paragraphs, with page numbers."""

from __future__ import annotations

import re
import threading

import pypdfium2 as pdfium

from engram.ingest.loaders.base import LoaderOptions, TextBuilder, fail, fallback_title, no_text
from engram.types import LoadedDocument

# PDFium is not thread-safe; the ingest pipeline may load files from several threads.
_PDFIUM_LOCK = threading.Lock()
# PDFium marks hyphenation and unmapped glyphs with control characters and U+FFFE.
_JUNK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_NEWLINES = re.compile(r"\r\n?")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _extract(data: bytes, source: str) -> tuple[list[str], str]:
    """The text of each page and the metadata title."""
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            hint = "the file may be corrupt, truncated or password-protected"
            raise fail(source, f"not a readable PDF ({exc})", hint) from exc
        try:
            title = (pdf.get_metadata_value("Title") or "").strip()
            pages = []
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                try:
                    pages.append(textpage.get_text_bounded())
                finally:
                    textpage.close()
                    page.close()
        except pdfium.PdfiumError as exc:
            raise fail(source, f"cannot extract text ({exc})") from exc
        finally:
            pdf.close()
    return pages, title


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    """Load a PDF; each block carries its 1-based ``page``. Scanned PDFs without a text layer
    raise :class:`LoaderError` ("no text")."""
    pages, title = _extract(data, source)
    out = TextBuilder()
    for number, raw in enumerate(pages, start=1):
        text = _JUNK.sub("", _NEWLINES.sub("\n", raw))
        for paragraph in _BLANK_LINE.split(text):
            out.add(paragraph, page=number)
    if not out.blocks:
        raise no_text(source, "the PDF has no text layer (scanned?); run OCR on it first")
    doc = out.document(key=key, source=source, title=title or fallback_title(name))
    doc.metadata["pages"] = len(pages)
    return [doc]
