"""The checkpoint part of the store contract: LangGraph's checkpoints of a graph's threads
(:mod:`engram.integrations.langgraph_checkpoint`), kept as the saver hands them over.

The store never decodes a checkpoint nor a channel value: they arrive serialized by the
saver, as ``(type, bytes)``; metadata and channel versions arrive as JSON text, the store's
to filter on and to join by. Every write is an idempotent upsert in one transaction, so two
processes writing one thread (a retried step, a resumed run) leave it whole.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Typed = tuple[str, bytes]  # (serializer's type name, payload)


@dataclass(frozen=True)
class CheckpointWrite:
    """One checkpoint to store: ``checkpoint`` without its channel values; ``blobs`` the
    values of the channels whose version is new in it, by (channel, version)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    ts: datetime
    checkpoint: Typed
    channel_versions: str  # JSON: {channel: version as text}
    metadata: str  # JSON object
    blobs: Mapping[tuple[str, str], Typed] = field(default_factory=dict)
    user_id: str | None = None


@dataclass(frozen=True)
class PendingWriteRow:
    """One write of a task, stored under the checkpoint it follows."""

    task_id: str
    idx: int
    channel: str
    value: Typed
    task_path: str = ""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as read back: ``values`` has the blob of each channel of
    ``channel_versions`` that has one; ``writes`` are in LangGraph's order (task path, task
    id, index)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Typed
    metadata: dict[str, Any]
    values: dict[str, Typed]
    writes: list[tuple[str, str, Typed]]


class CheckpointStore(ABC):
    """LangGraph checkpoints by (tenant, thread, namespace, checkpoint id)."""

    @abstractmethod
    def put_checkpoint(self, tenant: str, write: CheckpointWrite) -> None:
        """Store the checkpoint and its new blobs in one transaction; storing the same
        checkpoint again replaces its row (blobs are immutable per version)."""

    @abstractmethod
    def put_checkpoint_writes(
        self,
        tenant: str,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[PendingWriteRow],
        *,
        replace: bool,
    ) -> None:
        """Store the writes of a task; one already stored under (task id, index) is kept,
        or replaced with ``replace`` (LangGraph's special channels: errors, interrupts)."""

    @abstractmethod
    def get_checkpoints(
        self,
        tenant: str,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[StoredCheckpoint]:
        """Checkpoints newest first (by their time, then id), with their values and pending
        writes: of one thread (or every thread of the tenant), one namespace (or all), one
        id; ``before``: older than that checkpoint; ``metadata``: whose metadata has each of
        these top-level keys with exactly this value (None: missing or null)."""

    @abstractmethod
    def delete_checkpoints(self, tenant: str, thread_id: str | None = None) -> int:
        """Delete the thread's checkpoints, blobs and writes (None: every thread of the
        tenant); returns how many checkpoints went."""
