"""The records the store reads and writes, shared by every backend and by the code above
it: what an ingest writes (ChunkWrite, DocumentWrite), what retrieval returns (ChunkRecord),
versions, analytics events, the dumps that export and import move, and metadata filters
(Where). Nothing here touches a database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from ..errors import InvalidInput
from ..memory.types import Conversation, MemoryEvent, MemoryRecord, Message
from ..types import Collection, SearchResult


@dataclass(frozen=True, slots=True)
class ChunkWrite:
    ordinal: int
    text: str
    start: int
    end: int
    text_hash: str  # hash of the exact text that was embedded (embedding cache key)
    terms: str  # analyzed keyword terms, space separated
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(slots=True)
class DocumentWrite:
    """A whole new version of a document; its chunks replace the previous version's at once."""

    key: str
    title: str
    content_hash: str
    chunks: list[ChunkWrite]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    file_stamp: str | None = None  # the fingerprint of its file (engram.ingest.stamps)
    # The whole text, kept with the version so that it can be read, compared and restored
    # later (None: only the chunks are kept, e.g. messages indexed for recall).
    text: str | None = None
    restored_from: int | None = None  # the version whose content this one restores
    # Versions of the document to keep, this one included; older ones are dropped in the
    # same transaction. 0: keep every version.
    keep_versions: int = 0


class StampedDocument(NamedTuple):
    """A document's file stamp (engram.ingest.stamps), with the content hash of the version
    it describes."""

    key: str
    content_hash: str
    stamp: str


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    id: int
    document_id: int
    document_key: str
    version: int
    title: str
    text: str
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    metadata: dict[str, Any]

    def result(self, score: float, **extra: Any) -> SearchResult:
        """This chunk as a search result with ``score`` (and ``explain``, ``highlight``...)."""
        return SearchResult(
            chunk_id=self.id,
            document_key=self.document_key,
            document_id=self.document_id,
            version=self.version,
            title=self.title,
            text=self.text,
            start=self.start,
            end=self.end,
            score=score,
            heading_path=self.heading_path,
            page=self.page,
            metadata=self.metadata,
            **extra,
        )


class TermCompletion(NamedTuple):
    """An indexed term completing a prefix (:meth:`RetrievalStore.complete_terms`)."""

    term: str
    df: int  # live chunks holding it
    texts: list[str]  # the text of a few of those chunks, where its surface words are read


class QueryEvent(NamedTuple):
    """A search that returned results, or an erasure (:meth:`EventStore.suggest_events`)."""

    id: int
    collection: str | None  # None for an erasure: the events read before may be gone
    query: str | None


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One entry of a document's history. ``kept``: its content (text, title, metadata,
    chunk spans) is kept, so it can be read, compared and restored; versions written before
    engram kept content only list their hash. ``restored_from``: the version it restored."""

    version: int
    content_hash: str
    chunk_count: int
    created_at: str
    kept: bool = False
    restored_from: int | None = None


@dataclass(frozen=True, slots=True)
class VersionChunk:
    """Where one chunk of a kept version lies in its text, and the hash of the text that was
    embedded for it (the embedding cache's key, so a restore needs no model call)."""

    ordinal: int
    start: int
    end: int
    text_hash: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A version as the store keeps it (:meth:`DocumentStore.document_version`). ``text`` is
    None when it was not kept (the current version of a document written before engram kept
    texts: its chunks still hold it)."""

    key: str
    version: int
    current: bool
    content_hash: str
    created_at: str
    title: str
    metadata: dict[str, Any]
    source: str
    text: str | None
    chunks: list[VersionChunk]
    restored_from: int | None = None


@dataclass(frozen=True, slots=True)
class EventWrite:
    """One analytics event for :meth:`Store.record_events` (a search, a click, a message...)."""

    tenant: str
    kind: str
    user_id: str | None = None
    key_id: str | None = None
    query: str | None = None  # stored normalised (see normalise_query)
    result_count: int | None = None
    latency_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None  # ISO 8601 UTC; None: now


def normalise_query(query: str | None) -> str | None:
    """The form a query is stored and counted in: lower case, whitespace collapsed, at most
    1,000 characters, so "Vacation  days" and "vacation days" are one top query."""
    if query is None:
        return None
    return " ".join(query.split()).lower()[:1000] or None


def collection_vector(collection: Collection, vector: Any, *, query: bool = False) -> np.ndarray:
    """``vector`` as float32, refused (InvalidInput) unless it has the collection's dimension:
    a chunk's embedding, or with ``query`` the vector of a search."""
    vec = np.asarray(vector, dtype=np.float32)
    if vec.shape != (collection.dimension,):
        raise InvalidInput(
            f"query vector has shape {vec.shape}, collection dimension is {collection.dimension}"
            if query
            else f"vector of shape {vec.shape} for a collection of dimension {collection.dimension}"
        )
    return vec


@dataclass(slots=True)
class DocumentDump:
    """A whole document as exported and imported (engram.transfer): its current version with
    its chunks, and the history of its versions, timestamps preserved. No backend ids."""

    key: str
    title: str
    version: int
    content_hash: str
    metadata: dict[str, Any]
    source: str
    created_at: str
    updated_at: str
    versions: list[DocumentVersion]
    chunks: list[ChunkWrite]  # of the current version, by ordinal
    # The content kept of versions (by number): text, title, metadata and chunk spans.
    kept: dict[int, StoredVersion] = field(default_factory=dict)


@dataclass(slots=True)
class ConversationDump:
    """A conversation with its messages (oldest first); message ids are not carried over."""

    conversation: Conversation
    messages: list[Message]


@dataclass(slots=True)
class MemoryDump:
    """A memory (deleted ones too) with its vector and its history (oldest first)."""

    record: MemoryRecord
    content_hash: str
    embedding: bytes  # float32, little-endian, of record.model_id
    history: list[MemoryEvent]


# What an import does with a conversation or memory whose id already exists for the tenant.
OnConflict = Literal["error", "skip", "replace"]


# A metadata filter: {"field": value | {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": v,
# "$in": [..], "$exists": bool}}; several fields are ANDed. See engram.search.filters.
Where = dict[str, Any]
