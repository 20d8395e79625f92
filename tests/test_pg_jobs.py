"""Job claiming across processes on PostgreSQL: concurrent claimers, `engram worker`
processes sharing one queue, a worker killed mid-job, a worker stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import engram
from engram.jobs import Job, enqueue_batch
from engram.store.postgres import PostgresStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TIMEOUT = 60.0


def docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"doc-{i}", "text": f"Document {i} is about the {['otter', 'heron'][i % 2]}."}
        for i in range(start, start + n)
    ]


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def db(pg_url: str, tmp_path: Path) -> Iterator[engram.Engram]:
    with engram.open(tmp_path, embedding_model="hash", database_url=pg_url) as database:
        yield database


def versions(db: engram.Engram, collection: str = "kb") -> dict[str, int]:
    return {d.key: d.version for d in db.documents(collection, limit=100_000)}


# -- many claimers, one queue ----------------------------------------------------------------
def test_concurrent_claimers_each_take_a_different_job(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, pool_size=2) for _ in range(4)]
    try:
        # A history of finished jobs and fresh statistics, as in a long-running queue: the
        # planner then picks other plans than on an empty table (which once let a claim
        # come back empty while jobs were free).
        for i in range(100):
            stores[0].create_job(f"old{i:03d}", tenant="t0", kind="k", payload={"i": i})
        while (job := stores[0].claim_job()) is not None:
            stores[0].finish_job(job.id, attempt=job.attempts, status="succeeded")
        total = 120
        for i in range(total):
            stores[0].create_job(f"j{i:03d}", tenant=f"t{i % 3}", kind="k", payload={"i": i})
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ANALYZE jobs")

        claims: list[tuple[int, str]] = []
        finishes: list[bool] = []
        empty_handed: list[int] = []  # queued jobs left after a claim that found none
        lock = threading.Lock()
        start = threading.Barrier(len(stores))

        def claimer(n: int) -> None:
            start.wait()
            while True:
                job = stores[n].claim_job()
                if job is None:
                    queued = stores[n].pending_jobs()["queued"]
                    if not queued:
                        return
                    with lock:
                        empty_handed.append(queued)
                    continue
                with lock:
                    claims.append((n, job.id))
                time.sleep(0.002)  # the "work"
                won = stores[n].finish_job(job.id, attempt=job.attempts, status="succeeded")
                with lock:
                    finishes.append(won)

        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        counted = Counter(job_id for _, job_id in claims)
        assert len(counted) == total and set(counted.values()) == {1}  # each job once
        assert finishes == [True] * total
        # SKIP LOCKED may pass over the rows the 3 other claimers are taking, never more:
        # with 4 or more still queued after a claim found nothing, one of them was free.
        assert [q for q in empty_handed if q >= len(stores)] == []
        assert len({n for n, _ in claims}) > 1  # the claimers really did share the queue
        assert stores[1].pending_jobs() == {"queued": 0, "running": 0}
        # Oldest first: each claimer saw the jobs it took in creation order.
        for n in range(len(stores)):
            mine = [job_id for m, job_id in claims if m == n]
            assert mine == sorted(mine)
    finally:
        for s in stores:
            s.close()


def test_a_job_is_finished_by_one_attempt_only_even_when_recovered_early(pg_url: str) -> None:
    """A recoverer with a zero lease keeps taking running jobs back while the claimers work:
    jobs get claimed several times, yet exactly one run of each finishes it (fencing)."""
    stores = [PostgresStore(pg_url, pool_size=2) for _ in range(4)]
    try:
        total = 60
        for i in range(total):
            stores[0].create_job(f"j{i:03d}", tenant="acme", kind="k", payload={})
        finished: list[tuple[str, int]] = []
        lost: list[tuple[str, int]] = []
        lock = threading.Lock()
        done = threading.Event()

        def claimer(n: int) -> None:
            while (job := stores[n].claim_job()) is not None:
                time.sleep(0.005)
                won = stores[n].finish_job(
                    job.id, attempt=job.attempts, status="succeeded", result={"by": n}
                )
                with lock:
                    (finished if won else lost).append((job.id, job.attempts))

        def recoverer() -> None:
            while not done.is_set():
                now = datetime.now(UTC).isoformat(timespec="microseconds")
                stores[3].recover_jobs(stale_before=now, max_attempts=1000)
                time.sleep(0.01)

        rec = threading.Thread(target=recoverer)
        rec.start()
        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        done.set()
        rec.join(TIMEOUT)
        # A job recovered after the claimers' last look is queued again: drain it.
        claimer(0)

        assert Counter(job_id for job_id, _ in finished) == dict.fromkeys(
            (f"j{i:03d}" for i in range(total)), 1
        )
        assert lost, "the recoverer never took a running job back: the test proved nothing"
        for job_id, attempt in finished:
            job = stores[0].get_job(job_id, tenant="acme")
            assert job.status == "succeeded" and job.attempts == attempt
    finally:
        for s in stores:
            s.close()


# -- real `engram worker` processes ----------------------------------------------------------
# The CLI, run by this interpreter; SLOW_CLI slows the hash embedder down first so that a
# job is still running when the test signals its worker.
CLI = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
SLOW_CLI = textwrap.dedent(
    """
    import sys, time
    from engram.providers.embedders.fake import HashEmbedder

    real = HashEmbedder.embed_batch

    def slow(self, texts, **kw):
        time.sleep(0.02 * len(texts))  # per text: the pipeline embeds 32 or more per call
        return real(self, texts, **kw)

    HashEmbedder.embed_batch = slow
    from engram.cli import main
    sys.argv[0] = "engram"
    main()
    """
)


def worker(db: engram.Engram, *args: str, slow: bool = False, **env: str) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "ENGRAM_DATABASE_URL": str(db.settings.database_url),
        "ENGRAM_DATA_DIR": str(db.settings.data_dir),
        "ENGRAM_EMBEDDING_MODEL": "hash",
        **env,
    }
    cmd = [sys.executable, "-c", SLOW_CLI if slow else CLI, "worker", *args]
    return subprocess.Popen(cmd, env=environ, stderr=subprocess.PIPE, text=True)


def succeeded_in(log: str) -> list[str]:
    return re.findall(r"job (job_\w+) \(\w+\) succeeded in", log)


def test_engram_worker_processes_share_the_queue(db: engram.Engram) -> None:
    jobs = [
        enqueue_batch(db.store, docs(25, start=25 * i), collection="kb", tenant="default")
        for i in range(8)
    ]
    procs = [worker(db, "--burst") for _ in range(2)]
    logs = []
    for proc in procs:
        _, log = proc.communicate(timeout=TIMEOUT)
        logs.append(log)
        assert proc.returncode == 0, log
    ran = [job_id for log in logs for job_id in succeeded_in(log)]
    assert sorted(ran) == sorted(j.id for j in jobs)  # every job run once, by one worker
    for job in jobs:
        done = db.store.get_job(job.id, tenant="default")
        assert done.status == "succeeded" and done.attempts == 1
        assert done.result is not None and done.result["added"] == 25
    assert versions(db) == {f"doc-{i}": 1 for i in range(200)}


def running_past(db: engram.Engram, job: Job, documents: int) -> Callable[[], bool]:
    def check() -> bool:
        now = db.store.get_job(job.id, tenant="default")
        return now.status == "running" and now.progress["documents_done"] >= documents

    return check


def test_a_killed_worker_job_is_resumed_by_another_after_its_lease(db: engram.Engram) -> None:
    total = 300
    job = enqueue_batch(db.store, docs(total), collection="kb", tenant="default")
    small = {"ENGRAM_EMBED_BATCH_SIZE": "1"}  # a transaction per 64 chunks
    first = worker(db, "--lease", "2", slow=True, **small)
    try:
        wait_until(running_past(db, job, 64))
        first.send_signal(signal.SIGKILL)
        first.wait(TIMEOUT)
    finally:
        first.kill()
        first.communicate()
    killed = db.store.get_job(job.id, tenant="default")
    assert killed.status == "running" and killed.attempts == 1
    written = len(versions(db))
    assert 64 <= written < total
    killed_at = time.monotonic()

    second = worker(db, "--lease", "2")
    try:
        done = wait_until(lambda: (j := db.store.get_job(job.id, tenant="default")).finished and j)
        resumed_after = time.monotonic() - killed_at
    finally:
        second.send_signal(signal.SIGTERM)
        _, log = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 0, log
    # Not before the lease (2 s, refreshed every 0.5 s until the kill) expired.
    assert resumed_after > 1.4
    assert "recovered interrupted jobs: 1 requeued" in log and succeeded_in(log) == [job.id]
    assert done.status == "succeeded" and done.attempts == 2
    assert done.result["unchanged"] == written and done.result["added"] == total - written
    assert versions(db) == {f"doc-{i}": 1 for i in range(total)}


def test_sigterm_puts_the_running_job_back_for_another_worker(db: engram.Engram) -> None:
    total = 300
    job = enqueue_batch(db.store, docs(total), collection="kb", tenant="default")
    first = worker(db, slow=True, ENGRAM_EMBED_BATCH_SIZE="1")
    wait_until(running_past(db, job, 64))
    first.send_signal(signal.SIGTERM)
    _, log = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, log
    assert "SIGTERM received" in log
    stopped = db.store.get_job(job.id, tenant="default")
    assert stopped.status == "queued" and stopped.attempts == 0  # the attempt is given back
    written = len(versions(db))
    assert 0 < written < total

    second = worker(db, "--burst")  # no lease to wait for: the job is queued
    _, log = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 0, log
    done = db.store.get_job(job.id, tenant="default")
    assert done.status == "succeeded" and done.attempts == 1
    assert done.result is not None and done.result["unchanged"] == written
    assert versions(db) == {f"doc-{i}": 1 for i in range(total)}
