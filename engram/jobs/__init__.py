"""Background jobs: work too large for one HTTP request (big ingestion batches, uploaded
files parsed and indexed after the upload answered).

A job is a row of the store's ``jobs`` table: queued by the API
(:func:`~engram.jobs.queue.enqueue_batch`), run by a :class:`~engram.jobs.worker.JobWorker`
thread in each server process, read back with ``GET /v1/jobs/{id}``::

    queued ──claim──▶ running ──▶ succeeded
      ▲                  │  └────▶ failed      (attempts used up, or an error retrying cannot fix)
      └── graceful stop, or recovered after a crash

Nothing is lost on a crash. Claiming is atomic (one ``UPDATE … RETURNING`` in a write
transaction), and a running job's ``updated_at`` is its lease: the worker refreshes it at least
every ``lease_seconds / 4`` (progress writes and a heartbeat). A worker starting, and every
``lease_seconds / 2`` after that, puts the running jobs whose lease expired (default 60 s)
back in the queue, or fails them if their attempts are used up. So a job of a process killed
mid-run resumes in this or any other process on the same data directory within about a
minute; ingestion is idempotent (content hashes), so the rerun only does the remaining work.
A lease rather than "every running job at start-up" because ``engram serve --workers N`` runs
several processes on one SQLite file, and one starting must not take the jobs of a live one.
Workers on several hosts sharing one database (``SELECT … FOR UPDATE SKIP LOCKED``) are the
PostgreSQL backend's business.
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .queue import INGEST_BATCH, INGEST_FILE, enqueue_batch, enqueue_file
    from .types import JOB_STATUSES, Job, JobStatus
    from .worker import JobWorker

__all__ = [
    "INGEST_BATCH",
    "INGEST_FILE",
    "JOB_STATUSES",
    "Job",
    "JobStatus",
    "JobWorker",
    "enqueue_batch",
    "enqueue_file",
]

# Imported on first use: the store imports the record types (engram.jobs.types), and must
# not pull the queue and the worker in with them (a one-shot search runs neither).
_SOURCES = {
    "INGEST_BATCH": ".queue",
    "INGEST_FILE": ".queue",
    "enqueue_batch": ".queue",
    "enqueue_file": ".queue",
    "JOB_STATUSES": ".types",
    "Job": ".types",
    "JobStatus": ".types",
    "JobWorker": ".worker",
}


__getattr__, __dir__ = exports(__name__, _SOURCES, globals(), __all__)
