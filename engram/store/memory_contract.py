"""The memory part of the store contract (:class:`MemoryStore`): conversations, messages and
their recall bookkeeping, memories and their history, whole users. Composed into
:class:`~engram.store.contract.Store` with the other concerns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..memory.types import (
    Conversation,
    ErasureReport,
    HistoryEvent,
    MemoryEvent,
    MemoryRecord,
    MemoryScope,
    MemoryWrite,
    Message,
    MessageWrite,
    Role,
)


class MemoryStore(ABC):
    """Conversations, messages and long-term memories (engram.memory)."""

    # Every row here is owned by one (tenant, user_id). A method given an id also takes the
    # tenant and raises ConversationNotFound / MemoryNotFound when the id belongs to another
    # tenant, exactly as when it does not exist: a tenant never reads, changes or even learns
    # of another tenant's rows.

    # -- conversations -----------------------------------------------------------------------
    @abstractmethod
    def create_conversation(
        self,
        conversation_id: str,
        *,
        tenant: str,
        user_id: str,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation: ...

    @abstractmethod
    def get_conversation(self, conversation_id: str, *, tenant: str) -> Conversation:
        """Raises ConversationNotFound."""

    @abstractmethod
    def list_conversations(
        self, *, tenant: str, user_id: str, limit: int = 100, offset: int = 0
    ) -> list[Conversation]:
        """The user's conversations, most recently updated first."""

    @abstractmethod
    def delete_conversation(self, conversation_id: str, *, tenant: str) -> None:
        """Delete a conversation and all its messages; raises ConversationNotFound."""

    def append_message(
        self,
        conversation_id: str,
        *,
        tenant: str,
        role: Role,
        content: str,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Append a message (and bump the conversation's ``updated_at``)."""
        return self.append_messages(
            conversation_id, tenant=tenant, messages=[MessageWrite(role, content, metadata)]
        )[0]

    @abstractmethod
    def append_messages(
        self, conversation_id: str, *, tenant: str, messages: Sequence[MessageWrite]
    ) -> list[Message]:
        """Append messages in one transaction, in order: a reader sees all of them or none
        (a chat turn is a question and its answer). Each is marked not yet indexed for
        recall."""

    @abstractmethod
    def unindexed_messages(
        self, *, tenant: str, user_id: str, limit: int
    ) -> list[tuple[Message, str | None]]:
        """Up to ``limit`` of the user's messages not yet indexed for recall, oldest first,
        each with the content of the message before it in its conversation (or None)."""

    @abstractmethod
    def mark_messages_indexed(self, ids: Sequence[int], *, tenant: str) -> None:
        """Record that these messages are in the recall index (ids of other tenants and
        deleted messages are ignored)."""

    @abstractmethod
    def mark_messages_unindexed(self, *, tenant: str, user_id: str) -> None:
        """Mark every message of the user as not in the recall index (it is rebuilt)."""

    @abstractmethod
    def messages_around(
        self, ids: Sequence[int], *, tenant: str, user_id: str, before: int, after: int
    ) -> dict[int, list[Message]]:
        """For each message id of the user: the message with up to ``before`` earlier and
        ``after`` later messages of its conversation, in order. Ids that are not the user's
        (or no longer exist) are left out."""

    @abstractmethod
    def message_ids(
        self,
        *,
        tenant: str,
        user_id: str,
        conversation_id: str | None = None,
        role: str | None = None,
        speaker: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[int]:
        """Ids of the user's messages that pass the given filters (``since`` ≤ time <
        ``until``), in order."""

    @abstractmethod
    def conversation_message_ids(self, conversation_id: str, *, tenant: str) -> list[int]:
        """Ids of a conversation's messages; raises ConversationNotFound."""

    @abstractmethod
    def list_messages(
        self, conversation_id: str, *, tenant: str, last: int | None = None
    ) -> list[Message]:
        """Messages oldest first; ``last=N`` keeps only the N most recent ones."""

    # -- memories ----------------------------------------------------------------------------
    # Every change writes a memory_history row in the same transaction. The two candidate
    # searches read one user's live memories only; per-user sets are small (hundreds to a few
    # thousand), so a backend may score them exactly on the fly (the SQLite one does: numpy
    # cosine, and a BM25Index built per query) rather than keep an ANN or keyword index.
    @abstractmethod
    def add_memory(self, memory_id: str, scope: MemoryScope, write: MemoryWrite) -> MemoryRecord:
        """Insert a memory owned by ``scope`` (tenant, user, agent); history event 'add'."""

    @abstractmethod
    def get_memory(
        self, memory_id: str, *, tenant: str, include_deleted: bool = False
    ) -> MemoryRecord:
        """Raises MemoryNotFound (also for a deleted memory, unless ``include_deleted``)."""

    @abstractmethod
    def get_memories(self, ids: Sequence[str], *, tenant: str) -> dict[str, MemoryRecord]:
        """Live memories by id; ids that are unknown, deleted or another tenant's are absent."""

    @abstractmethod
    def list_memories(
        self,
        scope: MemoryScope,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[MemoryRecord]:
        """Memories in ``scope``, most recently updated first."""

    @abstractmethod
    def update_memory(
        self,
        memory_id: str,
        *,
        tenant: str,
        write: MemoryWrite,
        event: HistoryEvent = "update",
        source: str | None = None,
    ) -> MemoryRecord:
        """Replace a live memory's content, vector, metadata and source; history ``event``
        ('update', or 'merge' when a duplicate was folded into it) with ``source`` (default:
        the write's). Raises MemoryNotFound."""

    @abstractmethod
    def delete_memory(self, memory_id: str, *, tenant: str, source: str = "api") -> MemoryRecord:
        """Soft delete (``deleted_at`` set, history 'delete'); the row and its history stay
        until the user is erased. Raises MemoryNotFound if it is not live."""

    @abstractmethod
    def memory_history(self, memory_id: str, *, tenant: str) -> list[MemoryEvent]:
        """Every change of a memory (deleted ones too), oldest first. Raises MemoryNotFound."""

    @abstractmethod
    def find_memory_by_hash(self, scope: MemoryScope, content_hash: str) -> MemoryRecord | None:
        """The live memory in ``scope`` whose normalised content has this hash, if any."""

    @abstractmethod
    def memory_vector_candidates(
        self, scope: MemoryScope, vector: np.ndarray, *, model_id: str, k: int
    ) -> list[tuple[str, float]]:
        """Live memories in ``scope`` nearest to ``vector``: (memory id, cosine), best first.
        Raises ModelMismatch if memories in scope were embedded with another model."""

    @abstractmethod
    def memory_keyword_candidates(
        self, scope: MemoryScope, terms: Sequence[str], *, language: str, k: int
    ) -> list[tuple[str, float]]:
        """BM25 (k1=1.2, b=0.75) of live memories in ``scope`` for analyzed query ``terms``
        (analyzed with ``language``), OR semantics: (memory id, score), best first."""

    @abstractmethod
    def list_users(
        self, *, tenant: str, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[str]:
        """Ids of the tenant's users owning a conversation or a memory (live or deleted),
        in order: the first ``limit`` greater than ``after`` that start with ``prefix``."""

    @abstractmethod
    def erase_user(self, *, tenant: str, user_id: str) -> ErasureReport:
        """Delete every row the user owns (conversations, messages, memories including
        soft-deleted ones, memory history) in one transaction; returns the counts."""

    @abstractmethod
    def export_user(self, *, tenant: str, user_id: str) -> dict[str, Any]:
        """Everything the user owns as a JSON-able dict (vectors excepted): conversations
        with their messages, memories (deleted ones too) with their history."""
