"""LangGraph's checkpointer on engram: ``EngramSaver(db)`` is a
``langgraph.checkpoint.base.BaseCheckpointSaver`` that keeps a graph's threads (the state
after each step, pending writes, interrupts) in engram's database — the SQLite file of a
data directory, or PostgreSQL shared by many processes — so a run interrupted for a human
can be resumed by another process, and a thread's history replayed or forked.

Storage (:mod:`engram.store.checkpoint_tables`) follows LangGraph's own savers: a checkpoint
row without channel values, one blob per (channel, version), written once and shared by the
later checkpoints that did not change the channel, and the writes of each task. Values are
serialized with the saver's ``serde`` (LangGraph's ``JsonPlusSerializer`` unless given),
metadata is kept as JSON for ``list(filter=...)``. Every write is an idempotent upsert in one
transaction: two processes on one thread (a retried step, a resumed run) leave it whole.

- A saver belongs to one engram ``tenant``, like :class:`~engram.integrations.langgraph.
  EngramStore`; another tenant's threads are invisible to it.
- ``user_id`` (the saver's, else ``config["configurable"]["user_id"]``) marks whose thread
  it is: ``db.memory.erase_user(user_id)`` deletes the user's threads whole.
- ``delete_thread`` deletes a thread's checkpoints, blobs and writes; :meth:`EngramSaver.
  clear` every thread of the tenant.
- ``list`` is newest first (by the checkpoint's time, then id), ``filter`` matches top-level
  metadata keys exactly, ``before`` and ``limit`` page.
- The ``a…`` methods run the same calls in a worker thread (engram's store is blocking).

Install with ``pip install 'engram[langgraph]'``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_checkpoint_id,
        get_serializable_checkpoint_metadata,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "engram.integrations.langgraph_checkpoint needs LangGraph: pip install 'engram[langgraph]'"
    ) from exc

from ..state.service import DEFAULT_TENANT
from ..store.checkpoint_contract import CheckpointWrite, PendingWriteRow, StoredCheckpoint
from ..store.checkpoint_tables import versions_json

if TYPE_CHECKING:
    from ..engine import Engram
    from ..store.checkpoint_contract import CheckpointStore

__all__ = ["EngramSaver"]


class EngramSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer over an engram database (see the module docstring).

    ``tenant``: the engram tenant the threads belong to. ``user_id``: the user every thread
    of this saver belongs to (default: ``configurable.user_id`` of each run's config, if
    any). ``serde``: LangGraph's serializer (default ``JsonPlusSerializer``)."""

    def __init__(
        self,
        db: Engram,
        *,
        tenant: str = DEFAULT_TENANT,
        user_id: str | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.db = db
        self.tenant = tenant
        self.user_id = user_id

    @property
    def store(self) -> CheckpointStore:
        return self.db.store

    # -- reading -----------------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The thread's checkpoint ``checkpoint_id`` of the config, or its latest one."""
        conf = config["configurable"]
        found = self.store.get_checkpoints(
            self.tenant,
            thread_id=str(conf["thread_id"]),
            checkpoint_ns=conf.get("checkpoint_ns", ""),
            checkpoint_id=get_checkpoint_id(config),
            limit=1,
        )
        return self._tuple(found[0]) if found else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangGraph's name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of the config's thread (every thread of the tenant
        without a config), its ``checkpoint_ns`` if it names one, its ``checkpoint_id`` if
        it names one; ``filter``: top-level metadata keys with exactly these values;
        ``before``: older than that checkpoint; at most ``limit``."""
        conf = config["configurable"] if config else {}
        thread_id = conf.get("thread_id")
        found = self.store.get_checkpoints(
            self.tenant,
            thread_id=None if thread_id is None else str(thread_id),
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=conf.get("checkpoint_id"),
            before=get_checkpoint_id(before) if before else None,
            metadata=filter,
            limit=limit,
        )
        for stored in found:
            yield self._tuple(stored)

    # -- writing -----------------------------------------------------------------------------
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store the checkpoint with the values of the channels in ``new_versions`` (the
        others are stored already, at their current version); returns its config."""
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        without_values: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = without_values.pop("channel_values", {}) or {}
        user = self.user_id if self.user_id is not None else conf.get("user_id")
        self.store.put_checkpoint(
            self.tenant,
            CheckpointWrite(
                thread_id=thread_id,
                checkpoint_ns=ns,
                checkpoint_id=checkpoint["id"],
                parent_checkpoint_id=conf.get("checkpoint_id"),
                ts=_time(checkpoint.get("ts")),
                checkpoint=self.serde.dumps_typed(without_values),
                channel_versions=versions_json(checkpoint.get("channel_versions", {})),
                metadata=json.dumps(
                    get_serializable_checkpoint_metadata(config, metadata),
                    ensure_ascii=False,
                    sort_keys=True,
                ),
                blobs={
                    (channel, str(version)): (
                        self.serde.dumps_typed(values[channel])
                        if channel in values
                        else ("empty", b"")
                    )
                    for channel, version in new_versions.items()
                },
                user_id=None if user is None else str(user),
            ),
        )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes under the config's checkpoint. A write is kept once per
        (task, index): storing it again changes nothing, except for LangGraph's special
        channels (error, interrupt, resume, scheduled), which have fixed negative indexes
        and replace what was there (``WRITES_IDX_MAP``)."""
        conf = config["configurable"]
        rows = [
            PendingWriteRow(
                task_id=task_id,
                idx=WRITES_IDX_MAP.get(channel, idx),
                channel=channel,
                value=self.serde.dumps_typed(value),
                task_path=task_path,
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        self.store.put_checkpoint_writes(
            self.tenant,
            str(conf["thread_id"]),
            conf.get("checkpoint_ns", ""),
            conf["checkpoint_id"],
            rows,
            replace=all(channel in WRITES_IDX_MAP for channel, _ in writes),
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, channel values and writes, in every namespace."""
        self.store.delete_checkpoints(self.tenant, str(thread_id))

    def clear(self) -> int:
        """Delete every thread of the saver's tenant; returns how many checkpoints went."""
        return self.store.delete_checkpoints(self.tenant)

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """A version that sorts after ``current``: a zero-padded counter and a random
        fraction (the form LangGraph's own savers use)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"  # noqa: S311 - not a secret

    # -- async: the same in a worker thread ----------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """:meth:`get_tuple` in a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangGraph's name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """:meth:`list` in a worker thread (the page is read at once)."""
        found = await asyncio.to_thread(
            lambda: [*self.list(config, filter=filter, before=before, limit=limit)]
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """:meth:`put` in a worker thread."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """:meth:`put_writes` in a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """:meth:`delete_thread` in a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    # -- helpers -----------------------------------------------------------------------------
    def _tuple(self, stored: StoredCheckpoint) -> CheckpointTuple:
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, loads(stored.checkpoint))
        checkpoint["channel_values"] = {ch: loads(value) for ch, value in stored.values.items()}
        thread = {"thread_id": stored.thread_id, "checkpoint_ns": stored.checkpoint_ns}
        parent = stored.parent_checkpoint_id
        return CheckpointTuple(
            config={"configurable": {**thread, "checkpoint_id": stored.checkpoint_id}},
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, stored.metadata),
            parent_config={"configurable": {**thread, "checkpoint_id": parent}} if parent else None,
            pending_writes=[(task, ch, loads(value)) for task, ch, value in stored.writes],
        )


def _time(text: Any) -> datetime:
    """The checkpoint's ISO time (now when it has none or it does not parse), in UTC."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
