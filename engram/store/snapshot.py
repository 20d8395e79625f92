"""A consistent, read-only view of a whole store, for export (engram.transfer)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from ..types import Collection
from .records import ConversationDump, DocumentDump, EventWrite, MemoryDump


class StoreSnapshot(ABC):
    """A consistent, read-only view of a store for export: every method reads the same state,
    and the iterators stream (a collection is never held in memory whole). Orders are
    bytewise (SQLite's BINARY collation, PostgreSQL's "C"), identical on every backend."""

    @abstractmethod
    def tenants(self) -> list[str]:
        """Every tenant owning a collection, conversation, memory or event, sorted."""

    @abstractmethod
    def collections(self, tenant: str) -> list[Collection]:
        """The tenant's collections by name, with their counts."""

    @abstractmethod
    def documents(self, collection: Collection) -> Iterator[DocumentDump]:
        """Every document of the collection, by key."""

    @abstractmethod
    def embeddings(self, collection: Collection) -> Iterator[tuple[str, bytes]]:
        """(text hash, float32 little-endian vector) of every distinct text hash the
        collection's chunks use, for its model, by text hash."""

    @abstractmethod
    def conversations(self, tenant: str) -> Iterator[ConversationDump]:
        """The tenant's conversations by id, each with its messages."""

    @abstractmethod
    def memories(self, tenant: str) -> Iterator[MemoryDump]:
        """The tenant's memories (deleted ones too) by id, each with its history."""

    @abstractmethod
    def events(self, tenant: str) -> Iterator[EventWrite]:
        """The tenant's analytics events, oldest first (ties in insertion order)."""
