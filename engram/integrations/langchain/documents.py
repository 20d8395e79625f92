"""engram's search hits as LangChain ``Document`` objects, and scores in [0, 1]."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.documents import Document

from ...types import SearchMode, SearchResult

ATTRIBUTION = "engram"  # the metadata key of engram's attribution, when asked for


def to_document(hit: SearchResult, collection: str, *, attribution: bool) -> Document:
    """The chunk ``hit`` as a Document: its text, its document's key as ``id`` and its
    document's metadata; with ``attribution``, plus ``metadata["engram"]``: where the text
    comes from (document key, version, character span, title, page, headings, chunk id),
    its score and the collection."""
    metadata: dict[str, Any] = dict(hit.metadata)
    if attribution:
        metadata[ATTRIBUTION] = {
            "document": hit.document_key,
            "version": hit.version,
            "span": [hit.start, hit.end],
            "score": hit.score,
            "collection": collection,
            "chunk_id": hit.chunk_id,
            "title": hit.title,
            "page": hit.page,
            "heading_path": list(hit.heading_path),
        }
    return Document(id=hit.document_key, page_content=hit.text, metadata=metadata)


def relevance_scores(hits: list[SearchResult], mode: SearchMode) -> list[float]:
    """Each hit's relevance in [0, 1], 1 the most relevant.

    ``vector``: the cosine similarity of query and chunk (0 when negative): an absolute
    measure, comparable across queries. ``hybrid`` and ``keyword``: the hit's score over the
    best hit's (fused scores and BM25 have no fixed scale), so the first hit has 1 and a
    ``score_threshold`` of 0.5 keeps the hits at least half as good as the best one."""
    if mode == "vector":
        return [_clamp(_cosine(hit)) for hit in hits]
    best = max((hit.score for hit in hits), default=0.0)
    return [_clamp(hit.score / best) if best > 0 else 0.0 for hit in hits]


def _cosine(hit: SearchResult) -> float:
    leg = hit.explain.get("vector") if hit.explain else None
    return float(leg["score"]) if leg else float(hit.score)  # reranked: the leg's own score


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def whole_documents(chunks: Iterable[SearchResult]) -> dict[str, Document]:
    """Documents rebuilt from all their chunks, by key: the chunks' texts put back at their
    character offsets (overlaps once). Text no chunk covers, whitespace between paragraphs
    that engram does not index, comes back as one blank line (or a space when it was one
    character)."""
    by_key: dict[str, list[SearchResult]] = {}
    for chunk in chunks:
        by_key.setdefault(chunk.document_key, []).append(chunk)
    out: dict[str, Document] = {}
    for key, parts in by_key.items():
        parts.sort(key=lambda c: (c.start, c.end))
        text, end = "", parts[0].start
        for part in parts:
            if part.start > end:
                text += "\n\n" if part.start - end > 1 else " "
            if part.end > end:
                text += part.text[max(0, end - part.start) :]
                end = part.end
        out[key] = Document(id=key, page_content=text, metadata=dict(parts[0].metadata))
    return out
