"""``/v1/jobs``: background jobs (large ingestion batches) of the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...jobs import JobStatus
from ..deps import DB, Reader, Writer
from ..pagination import fetch_page
from ..schemas import JobList, JobPublic, error_responses

router = APIRouter(tags=["jobs"])


@router.get("/jobs", operation_id="listJobs", responses=error_responses(422))
def list_jobs(
    db: DB,
    principal: Reader,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> JobList:
    """The tenant's jobs, newest first, a page at a time."""
    page, next_cursor = fetch_page(
        lambda n, offset: db.store.list_jobs(
            tenant=principal.tenant, status=status, limit=n, offset=offset
        ),
        cursor,
        limit,
    )
    return JobList(data=[JobPublic.of(j) for j in page], count=len(page), next_cursor=next_cursor)


@router.get("/jobs/{job_id}", operation_id="getJob", responses=error_responses(404, 422))
def get_job(job_id: str, db: DB, principal: Reader) -> JobPublic:
    """A job's status, progress, attempts and, once it has finished, its result or error."""
    return JobPublic.of(db.store.get_job(job_id, tenant=principal.tenant))


@router.post(
    "/jobs/{job_id}:retry", operation_id="retryJob", responses=error_responses(404, 409, 422)
)
def retry_job(job_id: str, db: DB, principal: Writer, request: Request) -> JobPublic:
    """Queue a failed job again, once its cause is fixed (e.g. the collection of another
    embedding model deleted): its attempts start over and its error is cleared. 409 when the
    job has not failed."""
    job = db.store.requeue_failed_job(job_id, tenant=principal.tenant)
    worker = getattr(request.app.state, "jobs", None)
    if worker is not None:
        worker.wake()
    return JobPublic.of(job)
