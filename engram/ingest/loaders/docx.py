"""Word documents via python-docx: paragraphs, headings (styles "Title", "Heading N"), table rows."""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from engram.ingest.loaders.base import (
    HeadingStack,
    LoaderOptions,
    TextBuilder,
    fail,
    fallback_title,
)
from engram.types import LoadedDocument

# Matches the style name ("Heading 2") and the style id ("Heading2"), so renamed or
# localised display names still resolve through the id.
_HEADING_STYLE = re.compile(r"heading\s*([1-9])$", re.IGNORECASE)


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style
    if style is None:
        return None
    for label in (style.name or "", style.style_id or ""):
        if label.lower() == "title":
            return 0  # above Heading 1
        if match := _HEADING_STYLE.match(label):
            return int(match.group(1))
    return None


def _row_texts(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            if text := " ".join(cell.text.split()):
                cells.append(text)
        rows.append(" | ".join(cells))
    return rows


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    """Load a ``.docx``; title = core property title, else the "Title" paragraph, else the first
    Heading 1, else the file stem."""
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # zipfile, lxml and python-docx all raise their own types
        hint = "the file may be corrupt or truncated; re-save it from Word"
        raise fail(source, f"not a readable .docx ({type(exc).__name__}: {exc})", hint) from exc
    out = TextBuilder()
    headings = HeadingStack()
    found: dict[int, str] = {}  # level 0 ("Title") or 1 -> first such heading
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in _row_texts(item):
                out.add(row, heading_path=headings.path)
            continue
        text = item.text
        level = _heading_level(item)
        if level is None or not text.strip():
            out.add(text, heading_path=headings.path)
            continue
        title = " ".join(text.split())
        out.add(text, heading_path=headings.push(level, title), is_heading=True)
        if level <= 1:
            found.setdefault(level, title)
    core_title = (document.core_properties.title or "").strip()
    title = core_title or found.get(0) or found.get(1) or fallback_title(name)
    return [out.document(key=key, source=source, title=title)]
