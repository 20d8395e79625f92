"""Highlighted snippets: the window of a chunk with the most query-term matches."""

from __future__ import annotations

import re

from .analyzer import Analyzer

_SPACE = re.compile(r"\s+")


def highlight(
    text: str,
    query_terms: set[str],
    analyzer: Analyzer,
    *,
    width: int = 240,
    open_tag: str = "<mark>",
    close_tag: str = "</mark>",
) -> str:
    """A one-line snippet of about ``width`` characters around the densest cluster of
    matches, with matched words wrapped in tags. Words match when their analyzed term is a query term, so
    "regulations" is highlighted for the query "regulation"."""
    spans = analyzer.matching_spans(text, query_terms)
    if not spans:
        snippet = _SPACE.sub(" ", text[:width]).strip()
        return snippet + ("…" if len(text) > width else "")
    # Slide a window over match starts and keep the one covering the most matches.
    best_start, best_count, j = spans[0][0], 0, 0
    for i, (start, _) in enumerate(spans):
        while spans[j][0] < start - width:
            j += 1
        if i - j + 1 > best_count:
            best_count, best_start = i - j + 1, spans[j][0]
    lo = max(0, best_start - width // 4)
    space = text.rfind(" ", 0, lo)
    lo = 0 if lo == 0 or space < 0 or lo - space > 20 else space + 1
    hi = min(len(text), lo + width)
    space = text.find(" ", hi)
    hi = len(text) if space < 0 or space - hi > 20 else space
    parts, cursor = [], lo
    for s, e in spans:
        if s < lo or e > hi:
            continue
        parts.append(text[cursor:s])
        parts.append(f"{open_tag}{text[s:e]}{close_tag}")
        cursor = e
    parts.append(text[cursor:hi])
    # One line: layout whitespace (paragraph breaks, indentation) means nothing in a snippet.
    snippet = _SPACE.sub(" ", "".join(parts)).strip()
    return ("…" if lo > 0 else "") + snippet + ("…" if hi < len(text) else "")
