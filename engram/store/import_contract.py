"""The import-batch part of the store contract: every import (``engram import``) is recorded
as a batch of what it added, updated and deleted, with the state it replaced, so that it can
be rolled back (``engram import --rollback BATCH``).

A document an import replaced or deleted is kept as it was (title, metadata, source, content
hash, file stamp and its chunks exactly as indexed: text, offsets, headings, keyword terms)
together with the vectors of those chunks: the embedding cache forgets a vector once no chunk
uses it, so the batch keeps its own copy, and a rollback writes the old chunks back with
those vectors without calling the model. The capture happens inside the write transaction
that replaces the document (``write_documents(..., batch=...)``), so it is exactly what was
replaced even with other writers about.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..types import Collection
from .records import ChunkWrite, DocumentWrite

BatchStatus = Literal["running", "finished", "failed", "rolled_back"]
ItemKind = Literal["conversation", "memory"]
Action = Literal["added", "updated", "deleted"]


@dataclass(slots=True)
class ImportBatch:
    """One import: ``kind`` is where it came from ("jsonl", "chroma", "export"), ``source``
    the file or directory; ``counts`` what it did (added, updated, deleted, conversations,
    memories); ``irreversible`` says why it cannot be rolled back (None: it can)."""

    id: str
    tenant: str
    kind: str
    source: str
    collections: list[str]
    status: BatchStatus
    counts: dict[str, int]
    started_at: str
    finished_at: str | None = None
    rolled_back_at: str | None = None
    irreversible: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "kind": self.kind,
            "source": self.source,
            "collections": self.collections,
            "status": self.status,
            "counts": self.counts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "rolled_back_at": self.rolled_back_at,
            "irreversible": self.irreversible,
        }


@dataclass(slots=True)
class RollbackReport:
    """What a rollback did: ``counts`` of documents deleted (the batch added them), restored
    (it updated them), re-created (it deleted them), conversations and memories removed;
    ``conflicts``: what later writes had changed (overridden with ``force``)."""

    batch: ImportBatch
    counts: Counter[str] = field(default_factory=Counter)
    conflicts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch.to_dict(),
            "counts": dict(self.counts),
            "conflicts": self.conflicts,
        }


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One document a batch touched: its first action in the batch, the state it replaced
    (None for an added one) and the (version, content hash) it left (None: deleted)."""

    collection_id: int
    key: str
    action: Action
    before: dict[str, Any] | None
    after: tuple[int, str] | None


def before_state(
    title: str,
    version: int,
    content_hash: str,
    metadata: dict[str, Any],
    source: str,
    file_stamp: str | None,
    chunks: Sequence[ChunkWrite],
) -> dict[str, Any]:
    """A document as a batch keeps it (JSON), to write it back on rollback."""
    return {
        "title": title,
        "version": version,
        "content_hash": content_hash,
        "metadata": metadata,
        "source": source,
        "file_stamp": file_stamp,
        "chunks": [
            [c.ordinal, c.text, c.start, c.end, c.text_hash, c.terms, c.page, list(c.heading_path)]
            for c in chunks
        ],
    }


def document_write(key: str, before: dict[str, Any]) -> DocumentWrite:
    """The write that puts a kept document back, chunks exactly as they were."""
    return DocumentWrite(
        key=key,
        title=before["title"],
        content_hash=before["content_hash"],
        chunks=[
            ChunkWrite(o, text, start, end, h, terms, page, tuple(heading))
            for o, text, start, end, h, terms, page, heading in before["chunks"]
        ],
        metadata=before["metadata"],
        source=before["source"],
        file_stamp=before["file_stamp"],
    )


def conflicts_of(
    entries: Sequence[DocumentEntry],
    current: dict[str, tuple[int, str]],
    collection: Collection,
) -> list[str]:
    """The documents of ``collection`` a later write changed: those whose current (version,
    content hash) is not what the batch left."""
    return [
        f"{collection.name}/{e.key}"
        for e in entries
        if current.get(e.key) != (tuple(e.after) if e.after is not None else None)
    ]


class ImportStore(ABC):
    """Import batches (engram.transfer.batches): recorded while an import writes, listed,
    and rolled back."""

    @abstractmethod
    def begin_import(
        self, batch_id: str, *, tenant: str, kind: str, source: str, collections: Sequence[str]
    ) -> ImportBatch:
        """Record a new batch, 'running'."""

    @abstractmethod
    def finish_import(
        self,
        batch_id: str,
        *,
        tenant: str,
        status: BatchStatus,
        counts: dict[str, int],
        collections: Sequence[str],
        created: Sequence[int] = (),
        irreversible: str | None = None,
    ) -> ImportBatch:
        """Close a batch ('finished' or 'failed'); ``created``: ids of the collections the
        import created (a rollback deletes them once empty)."""

    @abstractmethod
    def import_batches(self, *, tenant: str, limit: int = 100) -> list[ImportBatch]:
        """The tenant's batches, newest first."""

    @abstractmethod
    def get_import_batch(self, batch_id: str, *, tenant: str) -> ImportBatch:
        """Raises NotFound (also for a batch of another tenant)."""

    @abstractmethod
    def record_import_items(
        self, batch_id: str, *, tenant: str, kind: ItemKind, ids: Sequence[str]
    ) -> None:
        """Note conversations or memories an import wrote (new ids): a rollback removes them
        unless they changed since."""

    @abstractmethod
    def record_import_documents(
        self, batch_id: str, collection: Collection, written: Sequence[tuple[str, int, str]]
    ) -> None:
        """Note documents an import added by bulk copy (import_documents): (key, version,
        content hash) of each."""

    @abstractmethod
    def rollback_import(self, batch_id: str, *, tenant: str, force: bool = False) -> RollbackReport:
        """Put back what the batch changed, in one transaction: documents it added are
        deleted, those it updated get their previous content back as a new version, those it
        deleted are re-created; conversations and memories it added are removed. Refuses
        (Conflict, nothing changed) when a later write changed one of them, unless ``force``;
        a batch already rolled back, still running or irreversible is refused too."""
