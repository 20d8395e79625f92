"""The running side of the job queue: :class:`JobWorker`, one thread per server process.

The worker claims the oldest queued job, runs it, records progress (at most every
``progress_interval`` seconds) and stores the result. A run that raises is retried with
exponential backoff (``retry_delay`` × 1, 2, 4 …) until ``max_attempts`` runs have failed,
then the job fails with the last error; errors that retrying cannot fix (an
:class:`~engram.errors.EngramError` with a 4xx status, e.g. a collection built with another
embedding model, or an uploaded file that cannot be parsed) fail it at once. Documents that
fail to parse are not job failures: they are in the result's ``errors``, like a synchronous
batch. Between jobs, when due, a worker recovers jobs whose process died (every half lease)
and deletes finished jobs older than ``job_retention_days`` (hourly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import EngramError
from ..memory import extract
from .files import run_file
from .queue import EXTRACT_MEMORIES, INGEST_BATCH, INGEST_FILE
from .types import Job

if TYPE_CHECKING:  # engram.engine imports the store, which imports engram.jobs.types
    from ..engine import Engram
    from ..providers.llms.base import LLM
    from ..store.contract import JobStore
    from ..types import IngestReport

logger = logging.getLogger("engram.jobs")

PURGE_INTERVAL = 3600.0  # seconds between two purges of old finished jobs by one worker


class _Stopped(Exception):
    """Raised from the progress callback when the worker is asked to stop mid-job."""


class _TakenOver(Exception):
    """Raised from the progress callback when the job is no longer this run's: its lease
    expired and another worker claimed it (this run's writes are fenced off anyway)."""


class _PermanentFailure(Exception):
    """A job that can never succeed (e.g. of an unknown kind): not retried."""


class JobWorker:
    """Runs queued jobs of ``db`` in a background thread: :meth:`start`, :meth:`stop`.

    :meth:`run_once` runs one job in the calling thread (tests, scripts).
    """

    def __init__(
        self,
        db: Engram,
        *,
        max_attempts: int = 3,
        retry_delay: float = 1.0,
        poll_interval: float = 0.5,
        lease_seconds: float = 60.0,
        progress_interval: float = 0.5,
        on_finish: Callable[[str], None] | None = None,
        on_ingest: Callable[[Job, IngestReport], None] | None = None,
        llm: LLM | None = None,
        retention_days: int | None = None,
        purge_interval: float = PURGE_INTERVAL,
    ) -> None:
        self.db = db
        # The model of memory extraction jobs (the server's chain; else built on first use).
        self.llm = llm
        self._owns_llm = False  # built here, closed by stop()
        self._model_lock = threading.Lock()
        # Told "succeeded", "failed" or "retried" as attempts end (the server's metrics).
        self._on_finish = on_finish
        # Told the report of each uploaded file ingested (the server's ingest metrics/events).
        self._on_ingest = on_ingest
        self.store: JobStore = db.store
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.progress_interval = progress_interval
        # Finished jobs older than this many days are deleted (0: kept); default: the setting.
        self.retention_days = (
            db.settings.job_retention_days if retention_days is None else retention_days
        )
        self.purge_interval = purge_interval
        self._next_recovery = 0.0
        self._next_purge = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread; it first recovers jobs orphaned by a dead process."""
        if self._thread is not None:
            raise RuntimeError("the job worker is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="engram-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop between jobs, or between document batches of the running job, which goes
        back to the queue to resume later. Waits for the thread up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._model_lock:
            if self._owns_llm and self.llm is not None:
                self.llm.close()
                self.llm, self._owns_llm = None, False

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def recover(self) -> tuple[int, int]:
        """Queue again the jobs left running by a dead process, or fail those that used up
        their attempts; returns (requeued, failed)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.lease_seconds)
        requeued, failed = self.store.recover_jobs(
            stale_before=cutoff.isoformat(timespec="microseconds"),
            max_attempts=self.max_attempts,
        )
        if requeued or failed:
            logger.warning("recovered interrupted jobs: %d requeued, %d failed", requeued, failed)
        return requeued, failed

    def purge(self, now: datetime | None = None) -> int:
        """Delete finished jobs older than ``retention_days`` (a failed one with the work it
        kept for a retry); returns how many. Nothing when retention is 0."""
        if not self.retention_days:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        gone = self.store.purge_jobs(finished_before=cutoff.isoformat(timespec="microseconds"))
        if gone:
            logger.info("purged %d finished job(s) older than %d days", gone, self.retention_days)
        return gone

    def maintain(self) -> None:
        """What a worker loop does between jobs when it is due: recover interrupted jobs
        (every half lease) and purge old finished ones (every ``purge_interval``)."""
        if time.monotonic() >= self._next_recovery:
            self.recover()
            self._next_recovery = time.monotonic() + self.lease_seconds / 2
        if self.retention_days and time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + self.purge_interval
            self.purge()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.maintain()
                if self.run_once() is not None:
                    continue
            except Exception:  # the worker outlives any one failure (e.g. a locked database)
                logger.exception("job worker error; retrying in %.1f s", self.poll_interval)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # -- running jobs ------------------------------------------------------------------------
    def run_once(self) -> Job | None:
        """Claim and run the oldest queued job; returns its final state, or None if the queue
        was empty."""
        job = self.store.claim_job()
        if job is None:
            return None
        heartbeat = _Heartbeat(self, job.id)
        heartbeat.start()
        try:
            self._execute(job)
        finally:
            heartbeat.stop()
        return self.store.get_job(job.id, tenant=job.tenant)

    def _execute(self, job: Job) -> None:
        attempt = job.attempts
        while True:
            progress = _Progress(self, job, attempt)
            try:
                result = self._run(job, progress)
                progress.flush()
            except _Stopped:
                self.store.requeue_job(job.id, attempt=attempt)
                logger.info("job %s stopped; queued again", job.id)
                return
            except _TakenOver:
                logger.warning(
                    "job %s was taken over by another worker (attempt %d lost its lease);"
                    " leaving it to that worker",
                    job.id,
                    attempt,
                )
                return
            except Exception as exc:
                message = _describe(exc)
                permanent = isinstance(exc, _PermanentFailure) or (
                    isinstance(exc, EngramError) and exc.status < 500
                )
                if permanent or attempt >= self.max_attempts:
                    logger.warning("job %s failed (attempt %d): %s", job.id, attempt, message)
                    self.store.finish_job(job.id, attempt=attempt, status="failed", error=message)
                    self._finished("failed")
                    return
                delay = self.retry_delay * 2 ** (attempt - 1)
                logger.warning(
                    "job %s attempt %d failed, retrying in %.1f s: %s",
                    job.id,
                    attempt,
                    delay,
                    message,
                )
                if not self.store.retry_job(job.id, attempt=attempt, error=message):
                    return  # recovered and claimed elsewhere: not ours any more
                self._finished("retried")
                attempt += 1
                if self._stop.wait(delay):
                    self.store.requeue_job(job.id, attempt=attempt)
                    return
                continue
            self.store.finish_job(job.id, attempt=attempt, status="succeeded", result=result)
            self._finished("succeeded")
            return

    def _model(self) -> LLM | None:
        """The model extraction jobs ask: the one given, else built once from the settings
        (ENGRAM_LLM); None when there is none."""
        with self._model_lock:
            if self.llm is None and self.db.settings.llm:
                from ..providers.llms import llm_chain

                s = self.db.settings
                self.llm = llm_chain(
                    s.llm, timeout=s.llm_timeout, retries=s.llm_retries, deadline=s.llm_deadline
                )
                self._owns_llm = True
            return self.llm

    def _finished(self, status: str) -> None:
        if self._on_finish is not None:
            try:
                self._on_finish(status)
            except Exception:  # a metrics hook must never fail a job
                logger.exception("the job finish hook failed")

    def _run(self, job: Job, progress: _Progress) -> dict[str, Any]:
        if job.kind == EXTRACT_MEMORIES:
            return extract.run(self.db.memory, self._model(), job, progress.save)
        if job.kind == INGEST_FILE:
            report = run_file(self.db, job, progress)
            if self._on_ingest is not None:
                try:
                    self._on_ingest(job, report)
                except Exception:  # a metrics hook must never fail a job
                    logger.exception("the job ingest hook failed")
            return report.to_dict()
        if job.kind != INGEST_BATCH:
            raise _PermanentFailure(f"unknown job kind {job.kind!r}")
        documents = (job.payload or {}).get("documents", [])
        report = self.db.add(
            documents,
            collection=job.collection or "default",
            tenant=job.tenant,
            progress=progress,
        )
        return report.to_dict()


class _Progress:
    """The ingestion progress callback: records progress, and stops the run on request."""

    def __init__(self, worker: JobWorker, job: Job, attempt: int) -> None:
        self.worker, self.job, self.attempt = worker, job, attempt
        self.total = int(job.progress.get("documents_total", 0))
        self.documents = self.chunks = 0
        self.written = time.monotonic()
        self.saved = False

    def __call__(self, documents: int, chunks: int) -> None:
        if self.worker._stop.is_set():
            raise _Stopped
        self.documents, self.chunks = documents, chunks
        if time.monotonic() - self.written >= self.worker.progress_interval:
            self.flush()

    def expect(self, total: int) -> None:
        """The documents total, known once the job's file is parsed: recorded now."""
        self.total = total
        self.flush()

    def save(self, progress: dict[str, Any]) -> None:
        """Record a job's own progress (an extraction's plan and how far it got) now."""
        if self.worker._stop.is_set():
            raise _Stopped
        if not self.worker.store.set_job_progress(
            self.job.id, attempt=self.attempt, progress=progress
        ):
            raise _TakenOver
        self.saved = True

    def flush(self) -> None:
        if self.saved:
            return  # the job records its own progress
        progress = {
            "documents_done": self.documents,
            "documents_total": self.total,
            "chunks_done": self.chunks,
        }
        owned = self.worker.store.set_job_progress(
            self.job.id, attempt=self.attempt, progress=progress
        )
        self.written = time.monotonic()
        if not owned:
            raise _TakenOver


class _Heartbeat:
    """Keeps a running job's lease fresh while one step (a long model call, a backoff) makes
    no progress: without it another process would think the job orphaned."""

    def __init__(self, worker: JobWorker, job_id: str) -> None:
        self.store, self.job_id = worker.store, job_id
        self.interval = max(worker.lease_seconds / 4, 0.05)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="engram-jobs-heartbeat")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.store.touch_job(self.job_id)
            except Exception:  # a missed beat only shortens the lease
                logger.exception("job %s heartbeat failed", self.job_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (EngramError, _PermanentFailure)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
