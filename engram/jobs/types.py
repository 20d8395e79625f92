"""The record type of a background job, shared by the store and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

JobStatus = Literal["queued", "running", "succeeded", "failed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True, slots=True)
class Job:
    """One background job, as stored.

    ``attempts`` counts the runs that started (the current one included); a run cut short by
    a graceful stop is given back. ``payload`` (the work itself, e.g. the documents of a
    batch) is only read by the worker that claims the job, and is dropped when the job
    succeeds: by then the documents are in their collection, and a document deleted later
    must leave no copy behind here. A failed job keeps it, so that it can be retried
    (``JobStore.requeue_failed_job``, ``POST /v1/jobs/{id}:retry``) once its cause is fixed.
    """

    id: str
    tenant: str
    kind: str
    collection: str | None
    status: JobStatus
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    payload: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")
