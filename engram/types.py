"""Plain data types passed between the layers (loaders → chunker → pipeline → store → search)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SearchMode = Literal["hybrid", "keyword", "vector"]


@dataclass(frozen=True, slots=True)
class Block:
    """A structural unit of a loaded document: a paragraph, list item, table row or heading.

    ``start``/``end`` are character offsets into :attr:`LoadedDocument.text`.
    """

    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # 1-based page number (PDF)
    is_heading: bool = False


@dataclass(slots=True)
class LoadedDocument:
    """What a loader returns: the text of one document and the structure inside it."""

    key: str  # stable identity within a collection (relative path, record id, ...)
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    source: str = ""  # where it came from (path, "stdin", ...)
    # The stamp of its file (engram.ingest.stamps), set when a folder or file is ingested.
    file_stamp: str | None = None


@dataclass(slots=True)
class Failure:
    """A source (a file, a record) that could not be loaded: reported, never fatal to the
    batch it is part of."""

    source: str
    reason: str
    keys: tuple[str, ...] = ()  # document keys it would have produced, if known


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file in a folder that was not ingested on purpose (a format with no loader, a
    binary file without a known extension): counted and listed, not an error."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """One chunk produced by the chunker; offsets point into the document text."""

    text: str
    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    token_count: int = 0


@dataclass(frozen=True, slots=True)
class Collection:
    id: int
    name: str
    model_id: str
    dimension: int
    language: str
    settings: dict[str, Any]
    created_at: str
    document_count: int = 0
    chunk_count: int = 0
    tenant: str = "default"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    id: int
    collection: str
    key: str
    title: str
    version: int
    content_hash: str
    metadata: dict[str, Any]
    source: str
    chunk_count: int
    created_at: str
    updated_at: str


@dataclass(slots=True)
class LegHit:
    """Rank (1-based) and raw score of a chunk in one retrieval leg."""

    rank: int
    score: float


SourceKind = Literal["document", "conversation", "memory"]


@dataclass(slots=True)
class SearchResult:
    chunk_id: int
    document_key: str
    document_id: int
    version: int
    title: str
    text: str
    start: int
    end: int
    score: float
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    highlight: str = ""
    explain: dict[str, Any] = field(default_factory=dict)
    # group_by="document": how many more of the document's chunks were among the candidates
    # (None when results are chunks).
    more_chunks: int | None = None
    # What an answer's passage is: a document's chunk, a turn of an earlier conversation of
    # the user, or a memory of the user (engram.answers.sources). Search returns documents.
    kind: SourceKind = "document"
    # The collection the chunk is in: a search over several collections says which one.
    collection: str = ""

    # One vocabulary (issue 16): the JSON names, also readable here. ``document_key``,
    # ``start`` and ``end`` stay as they were for code written against them.
    @property
    def document(self) -> str:
        """The document's key (``"document"`` in JSON)."""
        return self.document_key

    @property
    def span(self) -> tuple[int, int]:
        """(start, end) character offsets in the document (``"span"`` in JSON)."""
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "collection": self.collection,
            "document": self.document_key,
            "document_id": self.document_id,
            "version": self.version,
            "title": self.title,
            "text": self.text,
            "span": [self.start, self.end],
            "page": self.page,
            "heading_path": list(self.heading_path),
            "score": self.score,
            "metadata": self.metadata,
            "highlight": self.highlight,
            "explain": self.explain,
            "more_chunks": self.more_chunks,
        }


@dataclass(slots=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    seconds: float = 0.0
    model_seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files not ingested: (path, why)

    def note(self, item: Skipped | Failure) -> None:
        """Count a file left out, or a source that could not be loaded."""
        if isinstance(item, Skipped):
            self.skipped.append((item.source, item.reason))
        else:
            self.failed += 1
            self.errors.append((item.source, item.reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "failed": self.failed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "errors": [{"source": s, "reason": r} for s, r in self.errors],
            "skipped": len(self.skipped),
            "skipped_files": [{"source": s, "reason": r} for s, r in self.skipped],
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class ContentChunk:
    """One chunk of a document version: its text and where it lies in the version's text."""

    ordinal: int
    text: str
    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()

    @property
    def span(self) -> tuple[int, int]:
        """(start, end) character offsets in the version's text (``"span"`` in JSON)."""
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ordinal": self.ordinal,
            "text": self.text,
            "span": [self.start, self.end],
            "page": self.page,
            "heading_path": list(self.heading_path),
        }


@dataclass(slots=True)
class DocumentContent:
    """A document as it was at one of its kept versions (``current``: the one searched):
    its whole text, title, metadata and chunks. ``restored_from``: the version it restored."""

    key: str
    collection: str
    version: int
    current: bool
    title: str
    text: str
    metadata: dict[str, Any]
    source: str
    content_hash: str
    created_at: str
    chunks: list[ContentChunk] = field(default_factory=list)
    restored_from: int | None = None

    @property
    def document(self) -> str:
        """The document's key (``"document"`` in JSON)."""
        return self.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "document": self.key,
            "collection": self.collection,
            "version": self.version,
            "current": self.current,
            "title": self.title,
            "text": self.text,
            "metadata": self.metadata,
            "source": self.source,
            "content_hash": self.content_hash,
            "created_at": self.created_at,
            "restored_from": self.restored_from,
            "chunks": [c.to_dict() for c in self.chunks],
        }


@dataclass(frozen=True, slots=True)
class MetadataChange:
    """A metadata field that differs between two versions: ``added`` (``new`` only),
    ``removed`` (``old`` only) or ``changed``."""

    field: str
    change: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


@dataclass(slots=True)
class VersionDiff:
    """How version ``to_version`` of a document differs from ``from_version``: ``text`` is a
    unified diff of their texts ("" when equal), ``title`` the (old, new) titles when they
    differ, ``metadata`` the fields that differ, by name."""

    key: str
    from_version: int
    to_version: int
    text: str
    title: tuple[str, str] | None = None
    metadata: list[MetadataChange] = field(default_factory=list)

    @property
    def document(self) -> str:
        """The document's key (``"document"`` in JSON)."""
        return self.key

    @property
    def identical(self) -> bool:
        return not self.text and self.title is None and not self.metadata

    def to_dict(self) -> dict[str, Any]:
        return {
            "document": self.key,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "text": self.text,
            "title": list(self.title) if self.title else None,
            "metadata": [
                {"field": m.field, "change": m.change, "old": m.old, "new": m.new}
                for m in self.metadata
            ],
        }
