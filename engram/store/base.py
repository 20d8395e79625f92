"""The store contract every backend implements (embedded SQLite now, PostgreSQL next).

The store is the source of truth for collections, documents, versions, chunks and their
embeddings, and it answers the two retrieval legs: BM25 over analyzed terms and nearest
neighbours over vectors. Everything above it (ingestion, fusion, reranking, highlighting) is
backend-independent and lives in ``engram.ingest`` and ``engram.search``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..keys import ApiKey
from ..types import Collection, DocumentInfo


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


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    version: int
    content_hash: str
    chunk_count: int
    created_at: str


# A metadata filter: {"field": value | {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": v,
# "$in": [..], "$exists": bool}}; several fields are ANDed. See engram.search.filters.
Where = dict[str, Any]


class Store(ABC):
    """Persistent state of one engram data directory or database."""

    # -- collections -------------------------------------------------------------------------
    # Collections are named within a tenant. Every other method takes a Collection (obtained
    # through a tenant-scoped lookup), so the tenant check happens once, here.
    @abstractmethod
    def create_collection(
        self,
        name: str,
        *,
        model_id: str,
        dimension: int,
        language: str,
        settings: dict[str, Any],
        tenant: str = "default",
    ) -> Collection: ...

    @abstractmethod
    def get_collection(
        self, name: str, *, tenant: str = "default", counts: bool = True
    ) -> Collection:
        """Raises CollectionNotFound. ``counts=False`` skips counting documents and chunks
        (left at 0), for hot paths such as search."""

    @abstractmethod
    def list_collections(self, *, tenant: str = "default") -> list[Collection]: ...

    @abstractmethod
    def delete_collection(self, name: str, *, tenant: str = "default") -> None:
        """Remove the collection and every trace of its documents from every index."""

    # -- documents ---------------------------------------------------------------------------
    @abstractmethod
    def document_hashes(self, collection: Collection) -> dict[str, str]:
        """key → content hash of the current version of every document."""

    @abstractmethod
    def write_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        embeddings: dict[str, np.ndarray],
    ) -> list[tuple[str, int]]:
        """Insert or replace documents in one transaction; returns (key, version) of each.

        ``embeddings`` maps text hashes to new vectors for the collection's model; every
        chunk's ``text_hash`` must be in it or already in the store's embedding cache.
        """

    @abstractmethod
    def cached_embeddings(self, model_id: str, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` already have a vector for ``model_id``."""

    @abstractmethod
    def delete_documents(self, collection: Collection, keys: Sequence[str]) -> int:
        """Delete documents (all versions, chunks, index entries); returns how many existed."""

    @abstractmethod
    def list_documents(
        self,
        collection: Collection,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
    ) -> list[DocumentInfo]: ...

    @abstractmethod
    def get_document(self, collection: Collection, key: str) -> DocumentInfo:
        """Raises DocumentNotFound."""

    @abstractmethod
    def document_versions(self, collection: Collection, key: str) -> list[DocumentVersion]: ...

    # -- retrieval ---------------------------------------------------------------------------
    @abstractmethod
    def keyword_search(
        self, collection: Collection, terms: Sequence[str], *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        """BM25 (k1=1.2, b=0.75) over analyzed terms, OR semantics: (chunk id, score), best
        first. Higher scores are better."""

    @abstractmethod
    def term_frequencies(self, collection: Collection, terms: Sequence[str]) -> dict[str, int]:
        """Number of chunks containing each term (absent terms map to 0)."""

    @abstractmethod
    def revision(self, collection: Collection) -> int:
        """A number that changes whenever the collection's content changes (cache key)."""

    @abstractmethod
    def vocabulary(self, collection: Collection) -> list[str]:
        """Every distinct indexed term of the collection (for typo expansion)."""

    @abstractmethod
    def vector_search(
        self, collection: Collection, vector: np.ndarray, *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity: (chunk id, similarity), best first."""

    @abstractmethod
    def get_chunks(self, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunks by id, joined with their document; ids that no longer exist are absent."""

    @abstractmethod
    def get_vectors(self, collection: Collection, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of the given chunks."""

    # -- API keys ----------------------------------------------------------------------------
    @abstractmethod
    def create_api_key(self, key: ApiKey, secret_hash: str) -> None: ...

    @abstractmethod
    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key record and its secret hash, or None."""

    @abstractmethod
    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke at once; returns False if there is no such active key."""

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Flush derived indexes (e.g. save HNSW files) so the next open starts fast."""

    @abstractmethod
    def close(self) -> None: ...
