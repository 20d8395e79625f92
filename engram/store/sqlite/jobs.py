"""The embedded store's part of the job contract: the table is written once for both
backends (:mod:`engram.store.job_tables`); SQLite adds a plain read before the claim and the
recovery, so that idle workers polling a data directory never take its write lock.

Claiming runs inside ``BEGIN IMMEDIATE``: SQLite has one writer at a time, so two workers
(threads or processes on one data directory) can never claim the same job.
"""

from __future__ import annotations

from ...jobs.types import Job
from ..job_tables import JobTables
from .session import DIALECT, SQLiteSessions
from .sql import DECODING


class SQLiteJobsMixin(SQLiteSessions, JobTables):
    """Background jobs in the store's SQLite file."""

    dialect = DIALECT
    job_decoding = DECODING
    json_text_mark = "?"
    claim_lock = ""

    def claim_job(self) -> Job | None:
        # A plain read first: an idle worker polls without taking the write lock.
        if not self._read("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1"):
            return None
        return super().claim_job()

    def recover_jobs(self, *, stale_before: str, max_attempts: int) -> tuple[int, int]:
        stale = self._read(
            "SELECT 1 FROM jobs WHERE status = 'running' AND updated_at < ? LIMIT 1",
            (stale_before,),
        )
        if not stale:  # the usual case: no write transaction at all
            return 0, 0
        return super().recover_jobs(stale_before=stale_before, max_attempts=max_attempts)
