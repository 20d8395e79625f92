"""``engram worker``: a process that only runs background jobs (large ingestion batches).

``engram serve`` already runs a job worker thread in each of its processes; ``engram worker``
adds indexing capacity without serving HTTP. With PostgreSQL (``ENGRAM_DATABASE_URL``) any
number of them, on any number of hosts, share the queue with the servers: claiming uses
``FOR UPDATE SKIP LOCKED``, and a job whose worker died is resumed by another once its lease
expires. On SIGTERM or SIGINT the worker stops between document batches and puts the running
job back in the queue (a second signal exits at once).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

import click

from ..analytics.worker import AnalyticsWorker
from ..jobs import JobWorker
from .main import Context, cli

logger = logging.getLogger("engram.worker")


def _store_name(obj: Context) -> str:
    settings = obj.settings()
    url = getattr(settings, "database_url", None)
    if url:
        # Never print a password: scheme, host and database name only.
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    return str(settings.data_dir)


@cli.command()
@click.option(
    "--max-attempts",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="ENGRAM_JOB_MAX_ATTEMPTS",
    help="Runs of a job before it fails (a failed run is retried with exponential backoff).",
)
@click.option(
    "--lease",
    "lease_seconds",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    envvar="ENGRAM_JOB_LEASE",
    help="Seconds without a heartbeat after which a running job counts as orphaned and is"
    " queued again (use the same value in every process).",
)
@click.option(
    "--poll-interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between looks at an empty queue.",
)
@click.option("--burst", is_flag=True, help="Exit when the queue is empty instead of waiting.")
@click.pass_obj
def worker(
    obj: Context, max_attempts: int, lease_seconds: float, poll_interval: float, burst: bool
) -> None:
    """Run queued background jobs until stopped (SIGTERM / Ctrl-C), next to `engram serve`."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    db = obj.db()
    jobs = JobWorker(
        db, max_attempts=max_attempts, lease_seconds=lease_seconds, poll_interval=poll_interval
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: stopping after the current batch", signal.Signals(signum).name)
        stop.set()
        jobs.stop(timeout=0)  # no thread here: marks the worker stopping, the run requeues
        # A second signal ends the process at once (the job's lease then expires).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info("engram worker %d started on %s", os.getpid(), _store_name(obj))
    # Forwarding analytics events and the retention purge run beside the jobs, if configured.
    analytics = None if burst else AnalyticsWorker.from_settings(db.store, db.settings)
    if analytics is not None:
        analytics.start()
    try:
        done = _run(jobs, stop, burst=burst)
    finally:
        if analytics is not None:
            analytics.stop()
    logger.info("engram worker %d stopped after %d jobs", os.getpid(), done)


def _run(jobs: JobWorker, stop: threading.Event, *, burst: bool) -> int:
    """The worker loop in the calling thread (signals are delivered to the main thread);
    returns how many jobs it ran."""
    done = 0
    while not stop.is_set():
        try:
            jobs.maintain()
            started = time.monotonic()
            job = jobs.run_once()
        except Exception:  # the worker outlives any one failure (e.g. a database restart)
            logger.exception("job worker error; retrying in %.1f s", jobs.poll_interval)
            stop.wait(jobs.poll_interval)
            continue
        if job is not None:
            done += job.finished
            logger.info(
                "job %s (%s) %s in %.2f s (attempt %d)",
                job.id,
                job.tenant,
                job.status,
                time.monotonic() - started,
                job.attempts,
            )
            continue
        if burst:
            break
        stop.wait(jobs.poll_interval)
    return done
