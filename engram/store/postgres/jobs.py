"""PostgreSQL implementation of the background-job part of the store contract (``jobs``).

A mixin of :class:`engram.store.postgres.PostgresStore`, with the semantics of
:mod:`engram.store.sqlite.jobs`, but safe for any number of worker processes on any number of
hosts sharing one database:

- claiming is one ``UPDATE … WHERE id = (SELECT … ORDER BY created_at LIMIT 1 FOR UPDATE
  SKIP LOCKED) RETURNING``: concurrent claimers each lock a different queued row (a row
  another transaction holds is skipped, not waited for), the oldest free job goes to exactly
  one, and a claim finds nothing only when every queued job is being claimed by others;
- every later write of the worker (progress, retry, finish, requeue) is fenced by
  ``status = 'running' AND attempts = <the attempt it claimed>``: once a job's lease has
  expired and another worker claimed it again (attempts grew), the first worker's writes
  change nothing, so a job is finished by one attempt only;
- recovery re-queues running jobs whose ``updated_at`` (the lease, refreshed by the worker's
  heartbeat) is older than the cutoff; row locks make it exclusive with a concurrent finish.

The worker-side methods and :meth:`~engram.store.contract.Store.pending_jobs` cross tenants, so
they run with the system tenant (:data:`~engram.store.postgres.connection.SYSTEM`); the submitting
side (create, get, list) runs under the caller's tenant.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidInput, JobNotFound
from ...jobs.types import Job, JobStatus
from .connection import SYSTEM, PostgresBase, iso

_COLS = (
    "id, tenant, kind, collection, status, progress, result, error, attempts,"
    " created_at, updated_at, started_at, finished_at"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job data is not JSON-serialisable: {exc}") from exc


def _job(r: dict[str, Any], *, with_payload: bool = False) -> Job:
    return Job(
        id=r["id"],
        tenant=r["tenant"],
        kind=r["kind"],
        collection=r["collection"],
        status=r["status"],
        progress=r["progress"],
        result=r["result"],
        error=r["error"],
        attempts=r["attempts"],
        created_at=iso(r["created_at"]) or "",
        updated_at=iso(r["updated_at"]) or "",
        started_at=iso(r["started_at"]),
        finished_at=iso(r["finished_at"]),
        payload=r["payload"] if with_payload else None,
    )


def _timestamp(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PostgresJobsMixin(PostgresBase):
    """Background jobs in PostgreSQL, claimable by workers in many processes."""

    def _job_update(self, sql: str, params: tuple[Any, ...]) -> bool:
        """One fenced UPDATE of a running job (any tenant's); True when it changed the row."""
        with self._tx(SYSTEM) as cur:
            cur.execute(sql, params)
            return cur.rowcount > 0

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
        with self._tx(tenant) as cur:
            cur.execute(
                "INSERT INTO jobs (id, tenant, kind, collection, status, payload, progress,"
                " created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, 'queued', %s::json, %s::json, %s, %s)"
                f" RETURNING {_COLS}",
                (
                    job_id,
                    tenant,
                    kind,
                    collection,
                    _dumps(payload),
                    _dumps(progress or {}),
                    now,
                    now,
                ),
            )
            row = cur.fetchone()
        assert row is not None
        return _job(row)

    def get_job(self, job_id: str, *, tenant: str) -> Job:
        with self._tx(tenant) as cur:
            cur.execute(f"SELECT {_COLS} FROM jobs WHERE id = %s AND tenant = %s", (job_id, tenant))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(
                f"no job {job_id!r}", hint="list your jobs: GET /v1/jobs (finished ones too)"
            )
        return _job(row)

    def list_jobs(
        self, *, tenant: str, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        cond, params = "tenant = %s", [tenant]
        if status is not None:
            cond += " AND status = %s"
            params.append(status)
        with self._tx(tenant) as cur:
            cur.execute(
                f"SELECT {_COLS} FROM jobs WHERE {cond}"
                " ORDER BY created_at DESC, seq DESC LIMIT %s OFFSET %s",
                (*params, None if limit < 0 else limit, max(offset, 0)),
            )
            return [_job(r) for r in cur.fetchall()]

    # -- the worker side (every tenant) ------------------------------------------------------
    def claim_job(self) -> Job | None:
        now = _now()
        with self._tx(SYSTEM) as cur:
            # SKIP LOCKED: a row being claimed by another transaction is passed over, so
            # concurrent workers never wait on each other nor take the same job. The pick is
            # a scalar subquery, i.e. an InitPlan run once per statement: as a joined
            # subquery the planner may rescan it for every row of the join (it did, once the
            # table had statistics), locking and claiming several jobs in one UPDATE.
            cur.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                " started_at = COALESCE(started_at, %s), updated_at = %s"
                " WHERE id = (SELECT id FROM jobs WHERE status = 'queued'"
                " ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" AND status = 'queued' RETURNING {_COLS}, payload",
                (now, now),
            )
            row = cur.fetchone()
        return _job(row, with_payload=True) if row else None

    def touch_job(self, job_id: str) -> None:
        self._job_update(
            "UPDATE jobs SET updated_at = %s WHERE id = %s AND status = 'running'",
            (_now(), job_id),
        )

    def set_job_progress(self, job_id: str, *, attempt: int, progress: dict[str, Any]) -> bool:
        return self._job_update(
            "UPDATE jobs SET progress = %s::json, updated_at = %s"
            " WHERE id = %s AND status = 'running' AND attempts = %s",
            (_dumps(progress), _now(), job_id, attempt),
        )

    def retry_job(self, job_id: str, *, attempt: int, error: str) -> bool:
        return self._job_update(
            "UPDATE jobs SET attempts = attempts + 1, error = %s, updated_at = %s"
            " WHERE id = %s AND status = 'running' AND attempts = %s",
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
            "UPDATE jobs SET status = %s, result = %s::json, error = %s, payload = '{}',"
            " finished_at = %s, updated_at = %s"
            " WHERE id = %s AND status = 'running' AND attempts = %s",
            (
                status,
                _dumps(result) if result is not None else None,
                error,
                now,
                now,
                job_id,
                attempt,
            ),
        )

    def requeue_job(self, job_id: str, *, attempt: int) -> bool:
        return self._job_update(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, updated_at = %s"
            " WHERE id = %s AND status = 'running' AND attempts = %s",
            (_now(), job_id, attempt),
        )

    def recover_jobs(self, *, stale_before: str, max_attempts: int) -> tuple[int, int]:
        cutoff = _timestamp(stale_before, "stale_before")
        now = _now()
        with self._tx(SYSTEM) as cur:
            # Both UPDATEs re-check their WHERE on rows a concurrent transaction changed
            # (READ COMMITTED): a job finished or recovered meanwhile is left alone.
            cur.execute(
                "UPDATE jobs SET status = 'failed', payload = '{}', finished_at = %s,"
                " updated_at = %s, error = 'interrupted: the process running it stopped"
                " during its last attempt (' || attempts || ' of ' || %s::int || ')'"
                " WHERE status = 'running' AND updated_at < %s AND attempts >= %s",
                (now, now, max_attempts, cutoff, max_attempts),
            )
            failed = cur.rowcount
            cur.execute(
                "UPDATE jobs SET status = 'queued', updated_at = %s"
                " WHERE status = 'running' AND updated_at < %s",
                (now, cutoff),
            )
            requeued = cur.rowcount
        return requeued, failed

    def pending_jobs(self) -> dict[str, int]:
        with self._tx(SYSTEM) as cur:
            cur.execute(
                "SELECT status, count(*) AS n FROM jobs WHERE status IN ('queued', 'running')"
                " GROUP BY status"
            )
            rows = cur.fetchall()
        return {"queued": 0, "running": 0, **{r["status"]: r["n"] for r in rows}}
