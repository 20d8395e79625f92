"""The Indexing page (``/jobs``): the tenant's background jobs — queued, running, failed with
their reasons, recently finished — and the indexing speed of the last finished ones.

The lists live in a fragment (``/jobs/live``) that htmx reloads every 2 s while a job is
queued or running; once nothing is, the fragment comes back without its trigger and the
polling stops (the page's Refresh link starts it again). Every read is one bounded query per
list (``list_jobs`` with a status and a limit, on the jobs' tenant index): the page costs
the same with a million finished jobs as with ten.

Speed comes from the finished jobs' own reports (documents and chunks over the run's
``seconds``), so it needs no other table. A failed job can be queued again (Retry, write
scope) once its cause is fixed: the store keeps a failed job's documents for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...engine import Engram
from ...jobs.types import Job, JobStatus
from ...server.deps import DB
from ..auth import Caller, WebCaller, require
from ..charts import line_chart
from ..render import WebRoute, number, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)

ACTIVE_LIMIT = 50  # queued and running jobs shown, each
FAILED_LIMIT = 20
FINISHED_LIMIT = 20
SPEED_JOBS = 50  # finished jobs the speed chart is drawn from
JobId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


@dataclass(frozen=True)
class JobView:
    """A job as the page shows it: its record and its run's duration and speed."""

    job: Job
    seconds: float | None  # run time: finished - started, or so far for a running job
    docs_per_second: float | None
    chunks_per_second: float | None

    @property
    def done(self) -> int:
        return int(self.job.progress.get("documents_done", 0) or 0)

    @property
    def total(self) -> int:
        return int(self.job.progress.get("documents_total", 0) or 0)

    @property
    def chunks(self) -> int:
        return int(self.job.progress.get("chunks_done", 0) or 0)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def view(job: Job, now: datetime | None = None) -> JobView:
    started, finished = _time(job.started_at), _time(job.finished_at)
    end = finished or (now if job.status == "running" else None)
    seconds = (end - started).total_seconds() if started and end else None
    docs = chunks = None
    report: dict[str, Any] = job.result or {}
    run = float(report.get("seconds") or 0) or seconds
    if job.status == "succeeded" and run:
        handled = sum(int(report.get(k, 0) or 0) for k in ("added", "updated", "unchanged"))
        docs = handled / run
        chunks = int(report.get("chunks_embedded", 0) or 0) / run
    return JobView(job, seconds, docs, chunks)


@dataclass(frozen=True)
class Board:
    running: list[JobView]
    queued: list[JobView]
    failed: list[JobView]
    finished: list[JobView]

    @property
    def active(self) -> bool:
        return bool(self.running or self.queued)


def board(db: Engram, tenant: str) -> Board:
    """The four lists, one bounded query each."""
    now = datetime.now(UTC)

    def listed(status: JobStatus, limit: int) -> list[JobView]:
        return [view(j, now) for j in db.store.list_jobs(tenant=tenant, status=status, limit=limit)]

    return Board(
        running=listed("running", ACTIVE_LIMIT),
        queued=listed("queued", ACTIVE_LIMIT),
        failed=listed("failed", FAILED_LIMIT),
        finished=listed("succeeded", FINISHED_LIMIT),
    )


def speed_charts(db: Engram, caller: WebCaller) -> tuple[Any, Any, int]:
    """Documents/s and chunks/s of the tenant's last finished jobs, oldest first, and how
    many jobs they come from."""
    t = caller.t
    jobs = db.store.list_jobs(tenant=caller.principal.tenant, status="succeeded", limit=SPEED_JOBS)
    views = [v for v in (view(j) for j in reversed(jobs)) if v.docs_per_second is not None]
    when = [(v.job.finished_at or "")[:16].replace("T", " ") for v in views]

    def fmt(value: float) -> str:
        return number(value, caller.lang, 0 if value >= 100 or value.is_integer() else 1)

    docs = line_chart(
        [(w, v.docs_per_second or 0.0) for w, v in zip(when, views, strict=True)],
        title=t("jobs.docs_chart"),
        head=(t("jobs.finished_at"), t("jobs.docs_per_second")),
        empty=t("jobs.no_speed"),
        fmt=fmt,
    )
    chunks = line_chart(
        [(w, v.chunks_per_second or 0.0) for w, v in zip(when, views, strict=True)],
        title=t("jobs.chunks_chart"),
        head=(t("jobs.finished_at"), t("jobs.chunks_per_second")),
        empty=t("jobs.no_speed"),
        fmt=fmt,
    )
    return docs, chunks, len(views)


@router.get("/jobs")
async def jobs_page(request: Request, caller: Caller, db: DB) -> Response:
    require(caller, "read")
    tenant = caller.principal.tenant
    lists = await run_in_threadpool(board, db, tenant)
    docs, chunks, measured = await run_in_threadpool(speed_charts, db, caller)
    return page(
        request,
        caller,
        "jobs/jobs.html",
        title=caller.t("jobs.title"),
        board=lists,
        docs_chart=docs,
        chunks_chart=chunks,
        measured=measured,
        retried=request.query_params.get("retried"),
    )


@router.get("/jobs/live")
async def jobs_live(request: Request, caller: Caller, db: DB) -> Response:
    """The lists alone: what htmx polls while jobs are queued or running."""
    require(caller, "read")
    lists = await run_in_threadpool(board, db, caller.principal.tenant)
    # 286: htmx swaps this last version in and stops polling (nothing left to watch).
    status = 200 if lists.active else 286
    return page(request, caller, "jobs/live.html", status=status, board=lists)


@router.post("/jobs/{job_id}/retry")
async def retry(
    request: Request,
    caller: Caller,
    db: DB,
    job_id: JobId,
) -> Response:
    """Queue a failed job again (POST /v1/jobs/{id}:retry); back to the page."""
    require(caller, "write")
    job = await run_in_threadpool(
        db.store.requeue_failed_job, job_id, tenant=caller.principal.tenant
    )
    worker = getattr(request.app.state, "jobs", None)
    if worker is not None:
        worker.wake()
    return RedirectResponse(f"/jobs?retried={job.id}", status_code=303)
