"""Conversations and long-term memories of users: ``db.memory`` (a :class:`MemoryService`).

Record types are in :mod:`engram.memory.types`; the service in :mod:`engram.memory.service`.
"""

from .service import DEDUP_THRESHOLD, MemoryService
from .types import (
    ROLES,
    Conversation,
    ErasureReport,
    MemoryEvent,
    MemoryHit,
    MemoryRecord,
    MemoryScope,
    Message,
    Role,
)

__all__ = [
    "DEDUP_THRESHOLD",
    "ROLES",
    "Conversation",
    "ErasureReport",
    "MemoryEvent",
    "MemoryHit",
    "MemoryRecord",
    "MemoryScope",
    "MemoryService",
    "Message",
    "Role",
]
