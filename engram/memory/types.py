"""Records of the memory layer: conversations, their messages, memories and memory history.

Plain frozen dataclasses shared by the store (which builds them from rows) and the
:class:`~engram.memory.service.MemoryService` (which returns them); ``to_dict`` gives the
JSON-able form used by exports and, later, the HTTP API.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")

HistoryEvent = Literal["add", "update", "delete", "merge"]

# A user's conversation recall index is a collection of engram's own (engram.memory.recall).
# Collection names with a '/' are engram's: a user's collection name never has one.
RECALL_PREFIX = "recall/"


def recall_collection(user_id: str) -> str:
    """The name of the collection holding a user's recall index."""
    return RECALL_PREFIX + user_id


def is_internal(name: str) -> bool:
    """Whether a collection is engram's own rather than a user's."""
    return "/" in name


@dataclass(frozen=True, slots=True)
class MemoryScope:
    """Whose memories a store query reads: one user of one tenant, narrowed by agent.

    ``agent_id=None`` means every memory of the user, whatever agent wrote it, unless
    ``exact_agent`` is set: then only memories with no agent. A given ``agent_id`` means that
    agent's memories only. Deduplication uses exact scopes; search and list use loose ones.
    """

    tenant: str
    user_id: str
    agent_id: str | None = None
    exact_agent: bool = False


@dataclass(slots=True)
class MemoryWrite:
    """What the store writes for a new or changed memory: content, its vector, the rest."""

    content: str
    content_hash: str  # SHA-256 of the normalised content (the exact-duplicate key)
    embedding: np.ndarray  # the model's unit vector of ``content``
    model_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation of one user; its messages are read with ``messages()``."""

    id: str
    tenant: str
    user_id: str
    title: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str  # moves on every appended message

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation; ids increase in the order messages were appended."""

    id: int
    conversation_id: str
    role: Role
    content: str
    metadata: dict[str, Any]
    created_at: str  # when it was said: given by the client (imported history) or the append
    speaker: str | None = None  # who said it, when the role is not enough (a person's name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class MessageWrite:
    """A message to append: ``created_at`` (a UTC datetime) when the client gives the time it
    was said, as when importing history; by default the time of the append."""

    role: Role
    content: str
    metadata: dict[str, Any] | None = None
    speaker: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A long-term memory of a user (optionally of one agent working for that user).

    ``source`` is its provenance (a conversation or message id, or ``"api"``).
    ``deduplicated`` is True only on the record returned by ``add`` when the new content was
    merged into this existing memory instead of creating one.
    """

    id: str
    tenant: str
    user_id: str
    agent_id: str | None
    content: str
    metadata: dict[str, Any]
    source: str
    model_id: str
    created_at: str
    updated_at: str
    deleted_at: str | None = None
    deduplicated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the embedding is not part of a record)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class MemoryEvent:
    """One entry of a memory's history: what changed, from which content to which."""

    id: int
    memory_id: str
    event: HistoryEvent
    old_content: str | None
    new_content: str | None
    created_at: str
    source: str | None = None  # who made the change: "api", or the messages it came from

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """A memory found by search, with its fused score and each leg's (rank, score)."""

    memory: MemoryRecord
    score: float
    explain: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the memory's fields plus ``score`` and ``explain``."""
        return {**self.memory.to_dict(), "score": self.score, "explain": self.explain}


@dataclass(frozen=True, slots=True)
class RecallHit:
    """A message found by recall: the message, its score and how it was reached (each leg's
    rank and score), and the turns around it in its conversation (the message included)."""

    message: Message
    score: float
    explain: dict[str, Any]
    context: list[Message]

    @property
    def conversation_id(self) -> str:
        return self.message.conversation_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "conversation_id": self.message.conversation_id,
            "message": self.message.to_dict(),
            "score": self.score,
            "explain": self.explain,
            "context": [m.to_dict() for m in self.context],
        }


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """How many rows of each kind ``erase_user`` deleted."""

    conversations: int = 0
    messages: int = 0
    memories: int = 0
    memory_history: int = 0
    state: int = 0  # agent state items under the user's namespace (user/<id>)

    def to_dict(self) -> dict[str, int]:
        """JSON-able form."""
        return dataclasses.asdict(self)
