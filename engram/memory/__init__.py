"""Conversations and long-term memories of users: ``db.memory`` (a :class:`MemoryService`).

Record types are in :mod:`engram.memory.types`; the service in :mod:`engram.memory.service`.
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
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

# Imported on first use: the store imports the record types (engram.memory.types), and must
# not pull the service in with them (a one-shot search never runs it).
_SOURCES = {
    "DEDUP_THRESHOLD": ".service",
    "MemoryService": ".service",
    "ROLES": ".types",
    "Conversation": ".types",
    "ErasureReport": ".types",
    "MemoryEvent": ".types",
    "MemoryHit": ".types",
    "MemoryRecord": ".types",
    "MemoryScope": ".types",
    "Message": ".types",
    "Role": ".types",
}


__getattr__, __dir__ = exports(__name__, _SOURCES, globals(), __all__)
