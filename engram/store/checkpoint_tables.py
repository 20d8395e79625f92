"""LangGraph checkpoints (the ``checkpoints``, ``checkpoint_blobs`` and ``checkpoint_writes``
tables), written once for both backends over a :class:`~engram.store.session.Session` and a
:class:`~engram.store.session.Dialect`.

The layout is LangGraph's own savers': a checkpoint row without channel values, a blob per
(channel, version) written once and shared by every later checkpoint that did not change the
channel, and the pending writes of each task. Every statement names the tenant (and
PostgreSQL's row-level security checks it). Writes are upserts in one transaction, rows in
key order so that two PostgreSQL transactions writing the same keys wait for each other
instead of deadlocking. A read is one snapshot: the page of checkpoints, then their blobs and
their writes, each one statement per 100 checkpoints or blobs (a bound on parameters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from .checkpoint_contract import (
    CheckpointStore,
    CheckpointWrite,
    PendingWriteRow,
    StoredCheckpoint,
    Typed,
)
from .session import Session, Tables

_COLS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
    " metadata, channel_versions"
)
_BATCH = 100  # keys per VALUES list: 400 parameters at most, under SQLite's old bound of 999
_TABLES = ("checkpoint_blobs", "checkpoint_writes", "checkpoints")

Key = tuple[str, str, str]  # thread id, namespace, checkpoint id


class CheckpointTables(Tables, CheckpointStore):
    """LangGraph checkpoints in a backend's checkpoint tables."""

    def put_checkpoint(self, tenant: str, write: CheckpointWrite) -> None:
        d = self.dialect
        thread = (tenant, write.thread_id, write.checkpoint_ns)
        blobs = [
            (*thread, ch, ver, t, data) for (ch, ver), (t, data) in sorted(write.blobs.items())
        ]
        with self._session(tenant, write=True) as s:
            if blobs:
                s.run_many(
                    "INSERT INTO checkpoint_blobs (tenant, thread_id, checkpoint_ns, channel,"
                    " version, type, blob) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    blobs,
                )
            s.run(
                "INSERT INTO checkpoints (tenant, thread_id, checkpoint_ns, checkpoint_id,"
                " parent_checkpoint_id, ts, user_id, type, checkpoint, channel_versions, metadata)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {d.json_mark}, {d.json_mark})"
                " ON CONFLICT (tenant, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET"
                " parent_checkpoint_id = excluded.parent_checkpoint_id, ts = excluded.ts,"
                " user_id = COALESCE(excluded.user_id, checkpoints.user_id),"
                " type = excluded.type, checkpoint = excluded.checkpoint,"
                " channel_versions = excluded.channel_versions, metadata = excluded.metadata",
                (
                    *thread,
                    write.checkpoint_id,
                    write.parent_checkpoint_id,
                    d.time_value(write.ts.astimezone(UTC)),
                    write.user_id,
                    *write.checkpoint,
                    write.channel_versions,
                    write.metadata,
                ),
            )

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
        if not writes:
            return
        on_conflict = (
            "DO UPDATE SET channel = excluded.channel, type = excluded.type,"
            " blob = excluded.blob, task_path = excluded.task_path"
            if replace
            else "DO NOTHING"
        )
        rows = [
            (
                tenant,
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                w.task_id,
                w.idx,
                w.channel,
                *w.value,
                w.task_path,
            )  # fmt: skip
            for w in sorted(writes, key=lambda w: (w.task_id, w.idx))
        ]
        with self._session(tenant, write=True) as s:
            s.run_many(
                "INSERT INTO checkpoint_writes (tenant, thread_id, checkpoint_ns, checkpoint_id,"
                " task_id, idx, channel, type, blob, task_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, thread_id,"
                f" checkpoint_ns, checkpoint_id, task_id, idx) {on_conflict}",
                rows,
            )

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
        d = self.dialect
        conds, params = ["tenant = ?"], [tenant]
        for column, value in (
            ("thread_id", thread_id),
            ("checkpoint_ns", checkpoint_ns),
            ("checkpoint_id", checkpoint_id),
        ):
            if value is not None:
                conds.append(f"{column} = ?")
                params.append(value)
        for key, value in (metadata or {}).items():
            sql, args = d.json_equals("metadata", str(key), value)
            conds.append(sql)
            params += args
        with self._session(tenant, snapshot=True) as s:
            if before is not None:
                cond, args = self._before(s, tenant, thread_id, before)
                conds.append(cond)
                params += args
            rows = s.rows(
                f"SELECT {_COLS} FROM checkpoints WHERE {' AND '.join(conds)}"
                " ORDER BY ts DESC, checkpoint_id DESC LIMIT ?",
                (*params, d.limit(-1 if limit is None else max(limit, 0))),
            )
            found = [(r, d.decoding.json(r[6]), d.decoding.json(r[7])) for r in rows]
            values = self._blobs(
                s, tenant, [(r[0], r[1], ch, str(v)) for r, _, vs in found for ch, v in vs.items()]
            )
            writes = self._writes(s, tenant, [(r[0], r[1], r[2]) for r, _, _ in found])
        out = []
        for r, meta, versions in found:
            thread = (r[0], r[1])
            out.append(
                StoredCheckpoint(
                    thread_id=r[0],
                    checkpoint_ns=r[1],
                    checkpoint_id=r[2],
                    parent_checkpoint_id=r[3],
                    checkpoint=(r[4], bytes(r[5])),
                    metadata=meta,
                    values={
                        ch: values[blob]
                        for ch, v in versions.items()
                        if (blob := (*thread, ch, str(v))) in values
                    },
                    writes=writes.get((r[0], r[1], r[2]), []),
                )
            )
        return out

    def _before(
        self, s: Session, tenant: str, thread_id: str | None, before: str
    ) -> tuple[str, list[Any]]:
        """SQL: older than checkpoint ``before`` — by its time, then id; by id alone when
        it is not stored."""
        cond, params = "tenant = ? AND checkpoint_id = ?", [tenant, before]
        if thread_id is not None:
            cond, params = cond + " AND thread_id = ?", [*params, thread_id]
        found = s.row(f"SELECT ts FROM checkpoints WHERE {cond} ORDER BY ts DESC LIMIT 1", params)
        if found is None:
            return "checkpoint_id < ?", [before]
        return "(ts < ? OR (ts = ? AND checkpoint_id < ?))", [found[0], found[0], before]

    @staticmethod
    def _blobs(
        s: Session, tenant: str, wanted: list[tuple[str, str, str, str]]
    ) -> dict[tuple[str, str, str, str], Typed]:
        """The stored blobs among (thread, namespace, channel, version) keys; "empty" ones
        (a channel with no value at that version) left out."""
        found: dict[tuple[str, str, str, str], Typed] = {}
        keys = sorted(set(wanted))
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            rows = s.rows(
                f"WITH wanted (thread_id, checkpoint_ns, channel, version) AS"
                f" (VALUES {', '.join(['(?, ?, ?, ?)'] * len(batch))})"
                " SELECT b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.blob"
                " FROM checkpoint_blobs b JOIN wanted w ON b.thread_id = w.thread_id"
                " AND b.checkpoint_ns = w.checkpoint_ns AND b.channel = w.channel"
                " AND b.version = w.version WHERE b.tenant = ? AND b.type <> 'empty'",
                [*(v for key in batch for v in key), tenant],
            )
            for r in rows:
                found[(r[0], r[1], r[2], r[3])] = (r[4], bytes(r[5]))
        return found

    @staticmethod
    def _writes(
        s: Session, tenant: str, checkpoints: list[Key]
    ) -> dict[Key, list[tuple[str, str, Typed]]]:
        """The pending writes of each checkpoint, in LangGraph's order (task path, task id,
        index)."""
        found: dict[Key, list[tuple[str, str, Typed]]] = {}
        for start in range(0, len(checkpoints), _BATCH):
            batch = checkpoints[start : start + _BATCH]
            rows = s.rows(
                f"WITH page (thread_id, checkpoint_ns, checkpoint_id) AS"
                f" (VALUES {', '.join(['(?, ?, ?)'] * len(batch))})"
                " SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.channel,"
                " w.type, w.blob FROM checkpoint_writes w JOIN page p"
                " ON w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns"
                " AND w.checkpoint_id = p.checkpoint_id WHERE w.tenant = ?"
                " ORDER BY w.task_path, w.task_id, w.idx",
                [*(v for key in batch for v in key), tenant],
            )
            for r in rows:
                found.setdefault((r[0], r[1], r[2]), []).append((r[3], r[4], (r[5], bytes(r[6]))))
        return found

    def delete_checkpoints(self, tenant: str, thread_id: str | None = None) -> int:
        cond, params = ("tenant = ?", [tenant]) if thread_id is None else (
            "tenant = ? AND thread_id = ?", [tenant, thread_id]
        )  # fmt: skip
        with self._session(tenant, write=True) as s:
            counts = [s.run(f"DELETE FROM {table} WHERE {cond}", params) for table in _TABLES]
        return counts[-1]


def erase_user_checkpoints(s: Session, tenant: str, user_id: str) -> int:
    """Delete every thread of which a checkpoint was written for the user, whole (blobs,
    writes, and the thread's checkpoints written without a user too), in the session's
    transaction; returns how many checkpoints went. Part of erasing a user."""
    threads = "SELECT thread_id FROM checkpoints WHERE tenant = ? AND user_id = ?"
    params = (tenant, tenant, user_id)
    counts = [
        s.run(f"DELETE FROM {table} WHERE tenant = ? AND thread_id IN ({threads})", params)
        for table in _TABLES
    ]
    return counts[-1]


def versions_json(versions: Mapping[str, Any]) -> str:
    """Channel versions as the store keeps them: JSON, each version as text."""
    return json.dumps({str(ch): str(v) for ch, v in versions.items()}, sort_keys=True)
