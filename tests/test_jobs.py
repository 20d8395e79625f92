"""Background jobs: large batches over HTTP, the worker's retries, restarts and stops."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.errors import CollectionNotFound, JobNotFound
from engram.ingest import pipeline as pipeline_module
from engram.jobs import Job, JobWorker, enqueue_batch
from engram.providers.embedders.fake import HashEmbedder
from engram.server.app import create_app
from engram.server.routes.documents import ASYNC_THRESHOLD
from engram.store.job_tables import PURGE_BATCH

TIMEOUT = 20.0


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


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none", database_url=url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def db(settings: Settings) -> Iterator[engram.Engram]:
    with engram.open(settings=settings) as database:
        yield database


def poll(client: TestClient, job_id: str, headers: dict[str, str] | None = None) -> Any:
    def finished() -> Any:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_until(finished)


def execute(db: engram.Engram, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run SQL on the job table with a connection of its own (``?`` placeholders), behind
    the store's back: sqlite3, or psycopg as the system tenant (row-level security)."""
    if db.settings.database_url:
        import psycopg

        with psycopg.connect(db.settings.database_url) as pg:
            pg.execute("SELECT set_config('engram.tenant', '*', true)")
            cur = pg.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    with sqlite3.connect(db.settings.db_path) as conn:
        rows = conn.execute(sql, params).fetchall()
    conn.close()
    return rows


def set_row(db: engram.Engram, job_id: str, **values: Any) -> None:
    """Change a job row behind the store's back, as a crashed process would have left it."""
    sets = ", ".join(f"{k} = ?" for k in values)
    execute(db, f"UPDATE jobs SET {sets} WHERE id = ?", (*values.values(), job_id))


def payload_of(db: engram.Engram, job_id: str) -> str:
    [(payload,)] = execute(db, "SELECT CAST(payload AS TEXT) FROM jobs WHERE id = ?", (job_id,))
    return str(payload)


def versions(db: engram.Engram, collection: str = "kb") -> dict[str, int]:
    return {d.key: d.version for d in db.documents(collection, limit=10_000)}


# -- over HTTP -------------------------------------------------------------------------------
def test_async_batch_is_queued_then_searchable(client: TestClient) -> None:
    r = client.post("/v1/collections/kb/documents:batch?async=true", json={"documents": docs(3)})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and body["job_id"].startswith("job_")
    assert body["progress"] == {"documents_done": 0, "documents_total": 3, "chunks_done": 0}
    assert body["collection"] == "kb" and body["kind"] == "ingest.batch"
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"

    job = poll(client, body["job_id"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and job["error"] is None and job["errors"] == []
    assert job["result"]["added"] == 3
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 3
    assert job["started_at"] and job["finished_at"] >= job["started_at"] >= job["created_at"]
    hits = client.post(
        "/v1/search", json={"query": "heron", "collection": "kb", "mode": "keyword"}
    ).json()
    assert {h["document"] for h in hits["data"]} == {"doc-1"}


def test_large_batches_run_as_jobs_automatically(client: TestClient) -> None:
    url = "/v1/collections/kb/documents:batch"
    at_threshold = client.post(url, json={"documents": docs(ASYNC_THRESHOLD)})
    assert at_threshold.status_code == 201 and at_threshold.json()["added"] == ASYNC_THRESHOLD
    over = client.post(url, json={"documents": docs(ASYNC_THRESHOLD + 1, start=1000)})
    assert over.status_code == 202
    # Opting out keeps a large batch synchronous.
    forced = client.post(url + "?async=false", json={"documents": docs(ASYNC_THRESHOLD + 1)})
    assert forced.status_code == 201
    assert forced.json()["unchanged"] == ASYNC_THRESHOLD and forced.json()["added"] == 1
    job = poll(client, over.json()["job_id"])
    assert job["status"] == "succeeded" and job["result"]["added"] == ASYNC_THRESHOLD + 1
    assert client.get("/v1/collections/kb").json()["document_count"] == 2 * ASYNC_THRESHOLD + 2


def test_per_document_errors_do_not_fail_the_job(client: TestClient) -> None:
    batch = [*docs(2), {"id": "doc-0", "text": "the same key twice"}]
    job_id = client.post(
        "/v1/collections/kb/documents:batch?async=true", json={"documents": batch}
    ).json()["job_id"]
    job = poll(client, job_id)
    assert job["status"] == "succeeded" and job["result"]["added"] == 2
    assert job["result"]["failed"] == 1 and "duplicate" in job["errors"][0]["reason"]


def test_list_jobs(client: TestClient) -> None:
    ids = [
        client.post(
            "/v1/collections/kb/documents:batch?async=true", json={"documents": docs(1, i)}
        ).json()["job_id"]
        for i in range(3)
    ]
    for job_id in ids:
        poll(client, job_id)
    first = client.get("/v1/jobs?limit=2").json()
    assert [j["job_id"] for j in first["data"]] == ids[::-1][:2] and first["count"] == 2
    rest = client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}").json()
    assert [j["job_id"] for j in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    assert len(client.get("/v1/jobs?status=succeeded").json()["data"]) == 3
    assert client.get("/v1/jobs?status=failed").json()["data"] == []
    bad = client.get("/v1/jobs?status=done")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    missing = client.get("/v1/jobs/job_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_jobs_are_tenant_scoped(settings: Settings) -> None:
    settings = settings.model_copy(update={"auth": "api_key"})
    with engram.open(settings=settings) as db:
        acme = {"X-API-Key": db.create_key(tenant="acme", scopes=["write"])[1]}
        globex = {"X-API-Key": db.create_key(tenant="globex", scopes=["admin"])[1]}
        reader = {"X-API-Key": db.create_key(tenant="acme", scopes=["read"])[1]}
    with TestClient(create_app(settings)) as client:
        denied = client.post(
            "/v1/collections/kb/documents:batch?async=true",
            json={"documents": docs(2)},
            headers=reader,
        )
        assert denied.status_code == 403
        job_id = client.post(
            "/v1/collections/kb/documents:batch?async=true",
            json={"documents": docs(2)},
            headers=acme,
        ).json()["job_id"]
        assert poll(client, job_id, acme)["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{job_id}", headers=reader).status_code == 200
        other = client.get(f"/v1/jobs/{job_id}", headers=globex)
        assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"
        assert client.get("/v1/jobs", headers=globex).json()["data"] == []
        assert len(client.get("/v1/jobs", headers=acme).json()["data"]) == 1
        # The documents went to acme's collection, not globex's.
        assert client.get("/v1/collections/kb", headers=globex).status_code == 404


# -- the worker ------------------------------------------------------------------------------
def flaky_embedder(monkeypatch: pytest.MonkeyPatch, failures: int | None) -> list[float]:
    """Make the embedder raise ``failures`` times (None: always); returns the call times."""
    calls: list[float] = []
    real = HashEmbedder.embed_batch

    def embed_batch(self: HashEmbedder, texts: Sequence[str], **kw: Any) -> np.ndarray:
        calls.append(time.monotonic())
        if failures is None or len(calls) <= failures:
            raise RuntimeError("embedding model crashed")
        return real(self, texts, **kw)

    monkeypatch.setattr(HashEmbedder, "embed_batch", embed_batch)
    return calls


def test_failed_runs_are_retried_with_backoff(
    db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = flaky_embedder(monkeypatch, failures=2)
    job = enqueue_batch(db.store, docs(3), collection="kb", tenant="default")
    done = JobWorker(db, retry_delay=0.1).run_once()
    assert done is not None and done.id == job.id
    assert done.status == "succeeded" and done.attempts == 3 and done.error is None
    assert done.result is not None and done.result["added"] == 3
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # 0.1 s, then twice that
    assert len(versions(db)) == 3


def test_a_job_failing_every_time_fails_with_its_error(
    db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = flaky_embedder(monkeypatch, failures=None)
    job = enqueue_batch(db.store, docs(3), collection="kb", tenant="default")
    done = JobWorker(db, retry_delay=0.01, max_attempts=3).run_once()
    assert done is not None and done.status == "failed" and done.attempts == 3
    assert done.error == "RuntimeError: embedding model crashed" and done.result is None
    assert len(calls) == 3 and done.finished_at
    assert payload_of(db, job.id) != "{}"  # the documents are kept, for a retry
    assert JobWorker(db).run_once() is None  # nothing left to do


def test_an_error_retrying_cannot_fix_fails_at_once(db: engram.Engram) -> None:
    db.store.create_collection(
        "kb", model_id="another-model", dimension=8, language="en", settings={}
    )
    enqueue_batch(db.store, docs(1), collection="kb", tenant="default")
    done = JobWorker(db, retry_delay=10.0).run_once()
    assert done is not None and done.status == "failed" and done.attempts == 1
    assert done.error is not None and "another-model" in done.error


def test_a_failed_job_is_retried_over_http_once_its_cause_is_fixed(
    client: TestClient,
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    db.store.create_collection(
        "kb", model_id="another-model", dimension=8, language="en", settings={}
    )
    r = client.post("/v1/collections/kb/documents:batch?async=true", json={"documents": docs(2)})
    job = poll(client, r.json()["job_id"])
    assert job["status"] == "failed" and "another-model" in job["error"]
    url = f"/v1/jobs/{job['job_id']}:retry"
    assert client.post("/v1/jobs/job_missing:retry").status_code == 404
    db.delete_collection("kb")  # the cause, fixed
    r = client.post(url)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["error"] is None
    done = poll(client, job["job_id"])
    assert done["status"] == "succeeded" and done["result"]["added"] == 2, done
    assert client.post(url).status_code == 409  # succeeded: nothing to retry


def orphan(db: engram.Engram, *, attempts: int, age: str = "2000-01-01T00:00:00+00:00") -> Job:
    """A job left running by a process that died (its lease expired long ago)."""
    job = enqueue_batch(db.store, docs(10), collection="kb", tenant="default")
    set_row(db, job.id, status="running", attempts=attempts, updated_at=age, started_at=age)
    return job


def test_a_job_left_running_is_resumed_on_start(db: engram.Engram) -> None:
    db.add(docs(5), collection="kb")  # what the dead worker had written before dying
    job = orphan(db, attempts=1)
    worker = JobWorker(db, poll_interval=0.05)
    worker.start()
    try:
        done = wait_until(lambda: (j := db.store.get_job(job.id, tenant="default")).finished and j)
    finally:
        worker.stop()
    assert done.status == "succeeded" and done.attempts == 2
    assert done.result["unchanged"] == 5 and done.result["added"] == 5
    assert versions(db) == {f"doc-{i}": 1 for i in range(10)}  # nothing twice


def test_a_job_out_of_attempts_is_failed_not_lost(db: engram.Engram) -> None:
    job = orphan(db, attempts=3)
    assert JobWorker(db, max_attempts=3).recover() == (0, 1)
    failed = db.store.get_job(job.id, tenant="default")
    assert failed.status == "failed" and failed.error and "interrupted" in failed.error


def test_a_live_lease_is_left_alone(db: engram.Engram) -> None:
    job = enqueue_batch(db.store, docs(1), collection="kb", tenant="default")
    claimed = db.store.claim_job()
    assert claimed is not None and claimed.id == job.id and claimed.payload is not None
    assert db.store.claim_job() is None  # claimed once only
    assert JobWorker(db, lease_seconds=60).recover() == (0, 0)
    assert db.store.get_job(job.id, tenant="default").status == "running"
    # A fenced write from a worker that lost the job changes nothing.
    assert not db.store.finish_job(job.id, attempt=7, status="succeeded")


@pytest.fixture
def small_batches_db(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[engram.Engram]:
    """Small model batches: the pipeline writes a transaction every 64 chunks, even when
    chunks are quick to embed (transactions otherwise grow to about half a second)."""
    monkeypatch.setattr(pipeline_module, "_MAX_BATCH_CHUNKS", 64)
    with engram.open(settings=settings, embed_batch_size=1) as database:
        yield database


def test_graceful_stop_leaves_the_job_queued(
    small_batches_db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = small_batches_db
    entered, release = threading.Event(), threading.Event()
    real = HashEmbedder.embed_batch

    def embed_batch(self: HashEmbedder, texts: Sequence[str], **kw: Any) -> np.ndarray:
        entered.set()
        release.wait(TIMEOUT)
        return real(self, texts, **kw)

    monkeypatch.setattr(HashEmbedder, "embed_batch", embed_batch)
    total = 200  # one chunk each: several transactions of 64+ chunks
    job = enqueue_batch(db.store, docs(total), collection="kb", tenant="default")
    worker = JobWorker(db, poll_interval=0.05)
    worker.start()
    assert entered.wait(TIMEOUT)
    stopping = threading.Thread(target=worker.stop)
    stopping.start()
    wait_until(lambda: worker._stop.is_set())
    release.set()  # the batch in flight is written, then the worker stops
    stopping.join(TIMEOUT)
    stopped = db.store.get_job(job.id, tenant="default")
    assert stopped.status == "queued" and stopped.attempts == 0
    written = len(versions(db))
    assert 0 < written < total

    monkeypatch.setattr(HashEmbedder, "embed_batch", real)
    done = JobWorker(db).run_once()
    assert done is not None and done.status == "succeeded" and done.attempts == 1
    assert done.result is not None and done.result["unchanged"] == written
    assert versions(db) == {f"doc-{i}": 1 for i in range(total)}


def test_stopping_the_server_requeues_and_restarting_resumes(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.jobs.stop()  # no worker: the job stays queued
        job_id = client.post(
            "/v1/collections/kb/documents:batch?async=true", json={"documents": docs(4)}
        ).json()["job_id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    with TestClient(create_app(settings)) as client:
        assert poll(client, job_id)["status"] == "succeeded"


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from engram.providers.embedders.fake import HashEmbedder

    real = HashEmbedder.embed_batch

    def slow(self, texts, **kw):
        time.sleep(0.05)
        return real(self, texts, **kw)

    HashEmbedder.embed_batch = slow
    import engram
    from engram.jobs import JobWorker

    db = engram.open(sys.argv[1], embedding_model="hash", embed_batch_size=1)
    JobWorker(db, progress_interval=0.0).run_once()
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_job_of_a_killed_process_resumes_without_duplicates(
    tmp_path: Path, db: engram.Engram
) -> None:
    total = 320
    job = enqueue_batch(db.store, docs(total), collection="kb", tenant="default")
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    env = dict(os.environ)
    if db.settings.database_url:
        env["ENGRAM_DATABASE_URL"] = db.settings.database_url
    proc = subprocess.Popen([sys.executable, str(script), str(db.settings.data_dir)], env=env)
    try:
        # Kill it once its first transaction is in, well before the last.
        wait_until(
            lambda: db.store.get_job(job.id, tenant="default").progress["documents_done"] >= 64
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    finally:
        proc.kill()
    killed = db.store.get_job(job.id, tenant="default")
    assert killed.status == "running" and killed.attempts == 1
    written = len(versions(db))
    assert 64 <= written < total

    worker = JobWorker(db, lease_seconds=0.0, poll_interval=0.05)  # its lease has expired
    worker.start()
    try:
        done = wait_until(lambda: (j := db.store.get_job(job.id, tenant="default")).finished and j)
    finally:
        worker.stop()
    assert done.status == "succeeded" and done.attempts == 2
    assert done.result["unchanged"] == written and done.result["added"] == total - written
    assert versions(db) == {f"doc-{i}": 1 for i in range(total)}


def test_a_collection_created_meanwhile_by_another_process_is_used(
    db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers ingesting parts of one batch may all find the collection missing and create
    it at once: the losers of that race use the winner's collection instead of failing."""
    real_get = db.store.get_collection
    raced: list[str] = []

    def get_collection(name: str, **kw: Any) -> Any:
        if not raced:  # between this look and the create, another process creates it
            raced.append(name)
            with engram.open(settings=db.settings) as other:
                other.add(docs(1), collection=name)
            raise CollectionNotFound(f"no collection {name!r}")
        return real_get(name, **kw)

    monkeypatch.setattr(db.store, "get_collection", get_collection)
    report = db.add(docs(3, start=1), collection="kb")
    assert raced == ["kb"] and report.added == 3 and report.failed == 0
    assert versions(db) == {f"doc-{i}": 1 for i in range(4)}


def test_job_not_found_is_tenant_scoped(db: engram.Engram) -> None:
    job = enqueue_batch(db.store, docs(1), collection="kb", tenant="acme")
    assert db.store.get_job(job.id, tenant="acme").id == job.id
    with pytest.raises(JobNotFound):
        db.store.get_job(job.id, tenant="globex")
    assert db.store.list_jobs(tenant="globex") == []


# -- the store contract ----------------------------------------------------------------------


def test_a_run_that_lost_its_job_stops_at_its_next_progress_write(
    small_batches_db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose lease expired (e.g. a long pause) while another claimed the job stops
    at its next progress write instead of ingesting the rest twice."""
    db = small_batches_db
    job = enqueue_batch(db.store, docs(200), collection="kb", tenant="default")
    claimed = db.store.claim_job()
    assert claimed is not None and claimed.id == job.id
    worker = JobWorker(db, progress_interval=0)
    calls = []
    real = db.store.set_job_progress

    def taken_over(job_id: str, *, attempt: int, progress: dict[str, Any]) -> bool:
        calls.append(progress["documents_done"])
        if progress["documents_done"] >= 100 and len(calls) == next(
            i for i, n in enumerate(calls, 1) if n >= 100
        ):  # another worker claims the job meanwhile
            set_row(db, job_id, attempts=attempt + 1)
        return real(job_id, attempt=attempt, progress=progress)

    monkeypatch.setattr(db.store, "set_job_progress", taken_over)
    worker._execute(claimed)
    assert calls[-1] >= 100 and calls[-2] < 100  # stopped at the write that was refused
    after = db.store.get_job(job.id, tenant="default")
    assert after.status == "running" and after.attempts == claimed.attempts + 1
    assert 0 < len(versions(db)) < 200


# -- retention of finished jobs ---------------------------------------------------------------
LONG_AGO = "2000-01-01T00:00:00+00:00"


def finished_long_ago(db: engram.Engram, status: str, n: int = 1) -> list[str]:
    """``n`` jobs finished (``status``) long ago, written behind the store's back."""
    ids = [enqueue_batch(db.store, docs(1), collection="kb", tenant="default").id for _ in range(n)]
    execute(
        db,
        f"UPDATE jobs SET status = ?, created_at = ?, finished_at = ?, updated_at = ?"
        f" WHERE id IN ({', '.join('?' * len(ids))})",
        (status, LONG_AGO, LONG_AGO, LONG_AGO, *ids),
    )
    return ids


def job_ids(db: engram.Engram) -> set[str]:
    return {j.id for j in db.store.list_jobs(tenant="default", limit=10_000)}


def test_the_worker_purges_finished_jobs_past_the_retention(db: engram.Engram) -> None:
    old = finished_long_ago(db, "succeeded") + finished_long_ago(db, "failed")
    recent = enqueue_batch(db.store, docs(2), collection="kb", tenant="default")
    assert JobWorker(db).run_once() is not None  # finished just now
    queued = enqueue_batch(db.store, docs(1), collection="kb", tenant="default")
    set_row(db, queued.id, created_at=LONG_AGO)  # waiting a long time, still to do

    assert JobWorker(db, retention_days=0).purge() == 0  # 0 keeps everything
    assert job_ids(db) == {*old, recent.id, queued.id}
    worker = JobWorker(db)  # the setting's 30 days
    assert worker.retention_days == 30
    worker.maintain()  # a worker's first round purges
    assert job_ids(db) == {recent.id, queued.id}
    for job_id in old:
        with pytest.raises(JobNotFound):
            db.store.get_job(job_id, tenant="default")
    # 31 days on, the job finished today is past the retention too; the queued one never is.
    future = datetime.now(UTC) + timedelta(days=31)
    assert worker.purge(now=future) == 1
    assert job_ids(db) == {queued.id}


def test_worker_processes_purge_and_claim_side_by_side(db: engram.Engram) -> None:
    """Two ``engram worker --burst`` processes on one data directory or database purge
    old finished jobs (more than one batch) while they claim and run the queued ones."""
    old = finished_long_ago(db, "succeeded", n=PURGE_BATCH + 300)
    queued = [
        enqueue_batch(db.store, docs(5, start=5 * i), collection="kb", tenant="default")
        for i in range(4)
    ]
    env = {**os.environ, "ENGRAM_DATA_DIR": str(db.settings.data_dir)}
    env |= {"ENGRAM_EMBEDDING_MODEL": "hash", "ENGRAM_JOB_RETENTION_DAYS": "30"}
    if db.settings.database_url:
        env["ENGRAM_DATABASE_URL"] = str(db.settings.database_url)
    cli = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", cli, "worker", "--burst"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    logs = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], logs
    assert job_ids(db) == {j.id for j in queued}  # the old ones gone, once each
    purged = [int(n) for log in logs for n in re.findall(r"purged (\d+) finished job", log)]
    assert sum(purged) == len(old), logs
    for job in queued:
        assert db.store.get_job(job.id, tenant="default").status == "succeeded"
    assert versions(db) == {f"doc-{i}": 1 for i in range(20)}
