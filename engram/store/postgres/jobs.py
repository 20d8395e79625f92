"""PostgreSQL implementation of the background-job part of the store contract (``jobs``).

Jobs in PostgreSQL have the semantics of :mod:`engram.store.sqlite.jobs`, but are safe for any number of worker processes on any number of
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

The table itself is written once for both backends (:mod:`engram.store.job_tables`). The
worker-side methods and ``pending_jobs`` cross tenants, so they run with the system tenant
(:data:`~engram.store.session.ALL_TENANTS`); the submitting side (create, get, list) runs
under the caller's tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidInput
from ..job_tables import JobTables
from .connection import DIALECT, JOB_DECODING, PostgresBase


def _timestamp(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PostgresJobsMixin(PostgresBase, JobTables):
    """Background jobs in PostgreSQL, claimable by workers in many processes."""

    dialect = DIALECT
    job_decoding = JOB_DECODING
    json_text_mark = "?::json"
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def _cutoff(self, value: str, name: str) -> Any:
        return _timestamp(value, name)
