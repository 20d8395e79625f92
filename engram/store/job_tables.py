"""The background-job part of the store contract (``jobs`` table), written once for both
backends over a :class:`~engram.store.session.Session` and a
:class:`~engram.store.session.Dialect`.

A job belongs to a tenant (``create_job``, ``get_job``, ``list_jobs``); the worker side
(claim, progress, retry, finish, requeue, recover, pending counts) serves every tenant and
runs in :data:`~engram.store.session.ALL_TENANTS` sessions. Every change a worker makes is
fenced by the job's ``attempts`` as that worker last saw it, so a worker whose job was
recovered and claimed again elsewhere changes nothing.

Claiming is one ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING``: on SQLite inside
``BEGIN IMMEDIATE`` (one writer at a time: two workers never claim the same job), on
PostgreSQL with ``FOR UPDATE SKIP LOCKED`` in the pick (a row being claimed by another
transaction is passed over, so concurrent workers neither wait on each other nor take the
same job).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from ..errors import Conflict, JobNotFound
from ..jobs.types import Job, JobStatus
from . import rows as shared
from .contract import JobStore
from .rows import JOB_COLS, Decoding
from .session import ALL_TENANTS, Tables

# Finished jobs deleted per transaction while purging (short write locks).
PURGE_BATCH = 1000
# A running job whose attempt is still the one the worker holds.
_FENCE = "WHERE id = ? AND status = 'running' AND attempts = ?"


class JobTables(Tables, JobStore):
    """Background jobs in a backend's tables, claimable by workers in many processes."""

    # How the driver returns the json (not jsonb) columns of jobs: their keys keep the order
    # they were written in on both backends.
    job_decoding: ClassVar[Decoding]
    # A parameter stored in a json column ("?" or "?::json").
    json_text_mark: ClassVar[str]
    # Appended to the claim's pick (PostgreSQL: " FOR UPDATE SKIP LOCKED").
    claim_lock: ClassVar[str]

    def _job_time(self) -> Any:
        # Microseconds: jobs are listed and claimed in created_at order, and leases compare
        # updated_at with a cutoff.
        return self.dialect.time_value(datetime.now(UTC))

    def _job(self, r: tuple[Any, ...], *, with_payload: bool = False) -> Job:
        if with_payload:
            return shared.job(r[:-1], self.job_decoding, payload=r[-1])
        return shared.job(r, self.job_decoding)

    def _job_update(self, sql: str, params: tuple[Any, ...]) -> bool:
        """One fenced UPDATE of a running job (any tenant's); True when it changed the row."""
        with self._session(ALL_TENANTS, write=True) as s:
            return s.run(sql, params) > 0

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
        now, mark = self._job_time(), self.json_text_mark
        with self._session(tenant, write=True) as s:
            row = s.row(
                "INSERT INTO jobs (id, tenant, kind, collection, status, payload, progress,"
                f" created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', {mark}, {mark}, ?, ?)"
                f" RETURNING {JOB_COLS}",
                (
                    job_id,
                    tenant,
                    kind,
                    collection,
                    shared.job_json(payload),
                    shared.job_json(progress or {}),
                    now,
                    now,
                ),
            )
        return self._job(shared.required_row(row))

    def get_job(self, job_id: str, *, tenant: str) -> Job:
        with self._session(tenant) as s:
            row = s.row(
                f"SELECT {JOB_COLS} FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
            )
        if row is None:
            raise JobNotFound(
                f"no job {job_id!r}", hint="list your jobs: GET /v1/jobs (finished ones too)"
            )
        return self._job(row)

    def list_jobs(
        self, *, tenant: str, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        d = self.dialect
        cond, params = "tenant = ?", [tenant]
        if status is not None:
            cond += " AND status = ?"
            params.append(status)
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT {JOB_COLS} FROM jobs WHERE {cond}"
                f" ORDER BY created_at DESC, {d.insertion_order} DESC LIMIT ? OFFSET ?",
                (*params, d.limit(limit), d.offset(offset)),
            )
        return [self._job(r) for r in found]

    # -- the worker side (every tenant) ------------------------------------------------------
    def claim_job(self) -> Job | None:
        now = self._job_time()
        with self._session(ALL_TENANTS, write=True) as s:
            # The pick is a scalar subquery, run once per statement (PostgreSQL: an
            # InitPlan; as a joined subquery the planner may rescan it for every row of the
            # join, locking and claiming several jobs in one UPDATE).
            row = s.row(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?), updated_at = ?"
                " WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
                f" ORDER BY created_at, {self.dialect.insertion_order} LIMIT 1{self.claim_lock})"
                f" AND status = 'queued' RETURNING {JOB_COLS}, payload",
                (now, now),
            )
        return self._job(row, with_payload=True) if row else None

    def touch_job(self, job_id: str) -> None:
        self._job_update(
            "UPDATE jobs SET updated_at = ? WHERE id = ? AND status = 'running'",
            (self._job_time(), job_id),
        )

    def set_job_progress(self, job_id: str, *, attempt: int, progress: dict[str, Any]) -> bool:
        return self._job_update(
            f"UPDATE jobs SET progress = {self.json_text_mark}, updated_at = ? {_FENCE}",
            (shared.job_json(progress), self._job_time(), job_id, attempt),
        )

    def retry_job(self, job_id: str, *, attempt: int, error: str) -> bool:
        return self._job_update(
            f"UPDATE jobs SET attempts = attempts + 1, error = ?, updated_at = ? {_FENCE}",
            (error, self._job_time(), job_id, attempt),
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
        now = self._job_time()
        # A succeeded job's work is done: its payload goes. A failed one keeps it, for
        # requeue_failed_job (its documents are not, or not all, in their collection).
        payload = "'{}'" if status == "succeeded" else "payload"
        return self._job_update(
            f"UPDATE jobs SET status = ?, result = {self.json_text_mark}, error = ?,"
            f" payload = {payload}, finished_at = ?, updated_at = ? {_FENCE}",
            (
                status,
                shared.job_json(result) if result is not None else None,
                error,
                now,
                now,
                job_id,
                attempt,
            ),
        )

    def requeue_job(self, job_id: str, *, attempt: int) -> bool:
        return self._job_update(
            f"UPDATE jobs SET status = 'queued', attempts = attempts - 1, updated_at = ? {_FENCE}",
            (self._job_time(), job_id, attempt),
        )

    def requeue_failed_job(self, job_id: str, *, tenant: str) -> Job:
        now = self._job_time()
        with self._session(tenant, write=True) as s:
            # A fresh start: attempts from 0 (the worker's full allowance), no error, no
            # timings. Progress stays: it holds what the job's kind needs to resume (an
            # ingestion's document total, an extraction's plan).
            row = s.row(
                "UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, result = NULL,"
                " started_at = NULL, finished_at = NULL, updated_at = ?"
                " WHERE id = ? AND tenant = ? AND status = 'failed'"
                " AND CAST(payload AS TEXT) <> '{}'"
                f" RETURNING {JOB_COLS}",
                (now, job_id, tenant),
            )
        if row is not None:
            return self._job(row)
        job = self.get_job(job_id, tenant=tenant)  # JobNotFound
        if job.status != "failed":
            raise Conflict(
                f"job {job_id!r} is {job.status}: only a failed job can be retried",
                hint="a queued or running job is retried by the worker on its own",
            )
        raise Conflict(
            f"job {job_id!r} no longer holds its work (it failed before retries were kept)",
            hint="submit the batch again",
        )

    def _cutoff(self, value: str, name: str) -> Any:
        """``value`` (an ISO timestamp, the parameter ``name``) as the backend compares it
        with the jobs' times."""
        return value

    def recover_jobs(self, *, stale_before: str, max_attempts: int) -> tuple[int, int]:
        cutoff, now = self._cutoff(stale_before, "stale_before"), self._job_time()
        with self._session(ALL_TENANTS, write=True) as s:
            # Both UPDATEs re-check their WHERE on rows a concurrent transaction changed
            # (PostgreSQL's READ COMMITTED): a job finished or recovered meanwhile is left
            # alone.
            failed = s.run(
                "UPDATE jobs SET status = 'failed', finished_at = ?,"
                " updated_at = ?, error = 'interrupted: the process running it stopped during"
                " its last attempt (' || attempts || ' of ' || CAST(? AS INTEGER) || ')'"
                " WHERE status = 'running' AND updated_at < ? AND attempts >= ?",
                (now, now, max_attempts, cutoff, max_attempts),
            )
            requeued = s.run(
                "UPDATE jobs SET status = 'queued', updated_at = ?"
                " WHERE status = 'running' AND updated_at < ?",
                (now, cutoff),
            )
        return requeued, failed

    def purge_jobs(self, *, finished_before: str) -> int:
        cutoff, total = self._cutoff(finished_before, "finished_before"), 0
        while True:  # a batch per transaction: short write locks
            with self._session(ALL_TENANTS, write=True) as s:
                # created_at narrows by the (status, created_at) index (a job is created
                # before it finishes). Concurrent purgers (every worker purges) lock
                # different rows on PostgreSQL rather than wait on each other's.
                gone = s.run(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
                    " WHERE status IN ('succeeded', 'failed') AND created_at < ?"
                    f" AND finished_at < ? ORDER BY created_at LIMIT ?{self.claim_lock})",
                    (cutoff, cutoff, PURGE_BATCH),
                )
            total += gone
            if gone < PURGE_BATCH:
                return total

    def pending_jobs(self) -> dict[str, int]:
        with self._session(ALL_TENANTS) as s:
            found = s.rows(
                "SELECT status, count(*) FROM jobs WHERE status IN ('queued', 'running')"
                " GROUP BY status"
            )
        return {"queued": 0, "running": 0, **{status: n for status, n in found}}
