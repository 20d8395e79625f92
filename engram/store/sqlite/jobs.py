"""SQLite implementation of the background-job part of the store contract (``jobs`` table).

A mixin of :class:`engram.store.sqlite.SQLiteStore`, sharing its connection, write lock and
error translation. Claiming is one ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`` inside
``BEGIN IMMEDIATE``: SQLite has one writer at a time, so two workers (threads or processes on
one data directory) can never claim the same job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...errors import JobNotFound
from ...jobs.types import Job, JobStatus
from .session import SQLiteSessions

_COLS = (
    "id, tenant, kind, collection, status, progress, result, error, attempts,"
    " created_at, updated_at, started_at, finished_at"
)


def _now() -> str:
    # Microseconds: jobs are listed and claimed in created_at order, and leases compare
    # updated_at with a cutoff in the same format.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _job(r: Sequence[Any], payload: str | None = None) -> Job:
    return Job(
        id=r[0],
        tenant=r[1],
        kind=r[2],
        collection=r[3],
        status=r[4],
        progress=json.loads(r[5]),
        result=json.loads(r[6]) if r[6] is not None else None,
        error=r[7],
        attempts=r[8],
        created_at=r[9],
        updated_at=r[10],
        started_at=r[11],
        finished_at=r[12],
        payload=json.loads(payload) if payload is not None else None,
    )


class SQLiteJobsMixin(SQLiteSessions):
    """Background jobs in the store's SQLite file."""

    def _job_update(self, sql: str, params: Sequence[Any]) -> bool:
        """One fenced UPDATE of a running job; True when it changed the row."""
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount > 0

    # -- the submitting side (tenant-scoped) -------------------------------------------------
    def create_job(
        self,
        job_id: str,
        *,
        tenant: str,
        kind: str,
        payload: dict[str, Any],
        collection: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        now = _now()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, tenant, kind, collection, status, payload, progress,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (
                    job_id,
                    tenant,
                    kind,
                    collection,
                    json.dumps(payload, ensure_ascii=False),
                    json.dumps(progress or {}),
                    now,
                    now,
                ),
            )
        return self.get_job(job_id, tenant=tenant)

    def get_job(self, job_id: str, *, tenant: str) -> Job:
        rows = self._read(f"SELECT {_COLS} FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant))
        row = rows[0] if rows else None
        if row is None:
            raise JobNotFound(
                f"no job {job_id!r}", hint="list your jobs: GET /v1/jobs (finished ones too)"
            )
        return _job(row)

    def list_jobs(
        self, *, tenant: str, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        cond, params = "tenant = ?", [tenant]
        if status is not None:
            cond += " AND status = ?"
            params.append(status)
        rows = self._read(
            f"SELECT {_COLS} FROM jobs WHERE {cond}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_job(r) for r in rows]

    # -- the worker side ---------------------------------------------------------------------
    def claim_job(self) -> Job | None:
        # A plain read first: an idle worker polls without taking the write lock.
        if not self._read("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1"):
            return None
        now = _now()
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?), updated_at = ?"
                " WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
                " ORDER BY created_at, rowid LIMIT 1)"
                f" RETURNING {_COLS}, payload",
                (now, now),
            ).fetchone()
        return _job(row[:-1], payload=row[-1]) if row else None

    def touch_job(self, job_id: str) -> None:
        self._job_update(
            "UPDATE jobs SET updated_at = ? WHERE id = ? AND status = 'running'",
            (_now(), job_id),
        )

    def set_job_progress(self, job_id: str, *, attempt: int, progress: dict[str, Any]) -> bool:
        return self._job_update(
            "UPDATE jobs SET progress = ?, updated_at = ?"
            " WHERE id = ? AND status = 'running' AND attempts = ?",
            (json.dumps(progress), _now(), job_id, attempt),
        )

    def retry_job(self, job_id: str, *, attempt: int, error: str) -> bool:
        return self._job_update(
            "UPDATE jobs SET attempts = attempts + 1, error = ?, updated_at = ?"
            " WHERE id = ? AND status = 'running' AND attempts = ?",
            (error, _now(), job_id, attempt),
        )

    def finish_job(
        self,
        job_id: str,
        *,
        attempt: int,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        if status not in ("succeeded", "failed"):
            raise ValueError(f"a job finishes as succeeded or failed, not {status!r}")
        now = _now()
        return self._job_update(
            "UPDATE jobs SET status = ?, result = ?, error = ?, payload = '{}',"
            " finished_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'running' AND attempts = ?",
            (
                status,
                json.dumps(result) if result is not None else None,
                error,
                now,
                now,
                job_id,
                attempt,
            ),
        )

    def requeue_job(self, job_id: str, *, attempt: int) -> bool:
        return self._job_update(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, updated_at = ?"
            " WHERE id = ? AND status = 'running' AND attempts = ?",
            (_now(), job_id, attempt),
        )

    def recover_jobs(self, *, stale_before: str, max_attempts: int) -> tuple[int, int]:
        stale = self._read(
            "SELECT 1 FROM jobs WHERE status = 'running' AND updated_at < ? LIMIT 1",
            (stale_before,),
        )
        if not stale:  # the usual case: no write transaction at all
            return 0, 0
        now = _now()
        with self._transaction() as conn:
            failed = conn.execute(
                "UPDATE jobs SET status = 'failed', payload = '{}', finished_at = ?,"
                " updated_at = ?, error = 'interrupted: the process running it stopped during"
                " its last attempt (' || attempts || ' of ' || ? || ')'"
                " WHERE status = 'running' AND updated_at < ? AND attempts >= ?",
                (now, now, max_attempts, stale_before, max_attempts),
            ).rowcount
            requeued = conn.execute(
                "UPDATE jobs SET status = 'queued', updated_at = ?"
                " WHERE status = 'running' AND updated_at < ?",
                (now, stale_before),
            ).rowcount
        return requeued, failed
