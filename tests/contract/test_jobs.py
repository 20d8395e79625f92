"""Contract: background jobs (JobStore), on every backend."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from engram.errors import Conflict, JobNotFound
from engram.store.contract import Store


def test_store_job_lifecycle(store: Store) -> None:
    first = store.create_job("j1", tenant="acme", kind="k", payload={"n": 1}, collection="kb")
    store.create_job("j2", tenant="globex", kind="k", payload={"n": 2})
    assert first.status == "queued" and first.attempts == 0 and first.payload is None
    assert [j.id for j in store.list_jobs(tenant="acme")] == ["j1"]
    with pytest.raises(JobNotFound):
        store.get_job("j1", tenant="globex")

    claimed = store.claim_job()  # oldest first, whoever it belongs to
    assert claimed is not None and claimed.id == "j1" and claimed.payload == {"n": 1}
    assert claimed.status == "running" and claimed.attempts == 1 and claimed.started_at
    assert store.set_job_progress("j1", attempt=1, progress={"documents_done": 1})
    assert not store.set_job_progress("j1", attempt=2, progress={})  # fenced
    assert store.retry_job("j1", attempt=1, error="boom")
    assert store.get_job("j1", tenant="acme").attempts == 2
    assert store.requeue_job("j1", attempt=2)  # a graceful stop gives the attempt back
    assert store.get_job("j1", tenant="acme").status == "queued"

    claims = [store.claim_job(), store.claim_job()]
    assert [c.id for c in claims if c is not None] == ["j1", "j2"]
    assert store.claim_job() is None
    assert store.finish_job("j1", attempt=2, status="succeeded", result={"added": 1})
    done = store.get_job("j1", tenant="acme")
    assert done.status == "succeeded" and done.result == {"added": 1} and done.finished_at
    assert [j.id for j in store.list_jobs(tenant="acme", status="running")] == []

    # j2 is running with a fresh lease: only a cutoff after its heartbeat recovers it.
    assert store.recover_jobs(stale_before="2000-01-01", max_attempts=3) == (0, 0)
    assert store.recover_jobs(stale_before="9999-01-01", max_attempts=3) == (1, 0)
    assert store.get_job("j2", tenant="globex").status == "queued"


def test_store_requeues_a_failed_job_with_its_payload(store: Store) -> None:
    store.create_job("j1", tenant="acme", kind="k", payload={"n": 1}, collection="kb")
    store.create_job("j2", tenant="acme", kind="k", payload={"n": 2})
    with pytest.raises(Conflict):  # queued: nothing to retry
        store.requeue_failed_job("j1", tenant="acme")
    assert store.claim_job() is not None and store.claim_job() is not None
    assert store.finish_job("j1", attempt=1, status="failed", error="model mismatch")
    assert store.finish_job("j2", attempt=1, status="succeeded", result={"added": 1})
    with pytest.raises(JobNotFound):  # another tenant's job looks missing
        store.requeue_failed_job("j1", tenant="globex")
    with pytest.raises(Conflict):  # succeeded: not retried
        store.requeue_failed_job("j2", tenant="acme")

    again = store.requeue_failed_job("j1", tenant="acme")
    assert again.status == "queued" and again.attempts == 0 and again.error is None
    assert again.finished_at is None and again.started_at is None and again.result is None
    assert again.collection == "kb"
    claimed = store.claim_job()  # the failed run's work, intact
    assert claimed is not None and claimed.id == "j1" and claimed.payload == {"n": 1}
    assert claimed.attempts == 1
    assert store.finish_job("j1", attempt=1, status="succeeded", result={"added": 1})
    with pytest.raises(Conflict):
        store.requeue_failed_job("j1", tenant="acme")

    # A job recovered as failed (its process died on its last attempt) keeps its work too.
    store.create_job("j3", tenant="acme", kind="k", payload={"n": 3})
    assert store.claim_job() is not None
    assert store.recover_jobs(stale_before="9999-01-01", max_attempts=1) == (0, 1)
    assert store.requeue_failed_job("j3", tenant="acme").status == "queued"
    claimed = store.claim_job()
    assert claimed is not None and claimed.payload == {"n": 3}


def test_store_purges_finished_jobs_only(store: Store) -> None:
    def finished(job_id: str, tenant: str, status: str) -> None:
        store.create_job(job_id, tenant=tenant, kind="k", payload={"doc": job_id})
        claimed = store.claim_job()
        assert claimed is not None and claimed.id == job_id
        assert store.finish_job(job_id, attempt=1, status=status, error="x")  # type: ignore[arg-type]

    finished("old-ok", "acme", "succeeded")
    finished("old-failed", "globex", "failed")  # keeps its payload for a retry until purged
    store.create_job("running", tenant="acme", kind="k", payload={})
    assert store.claim_job() is not None
    time.sleep(0.002)
    cutoff = datetime.now(UTC).isoformat(timespec="microseconds")
    time.sleep(0.002)
    finished("new-ok", "acme", "succeeded")
    store.create_job("queued", tenant="acme", kind="k", payload={})

    assert store.purge_jobs(finished_before="2000-01-01T00:00:00+00:00") == 0
    assert store.purge_jobs(finished_before=cutoff) == 2  # every tenant's
    for job_id, tenant in (("old-ok", "acme"), ("old-failed", "globex")):
        with pytest.raises(JobNotFound):
            store.get_job(job_id, tenant=tenant)
    assert {j.id for j in store.list_jobs(tenant="acme")} == {"running", "queued", "new-ok"}
    assert store.purge_jobs(finished_before="9999-01-01T00:00:00+00:00") == 1
    assert {j.id for j in store.list_jobs(tenant="acme")} == {"running", "queued"}
    assert store.pending_jobs() == {"queued": 1, "running": 1}
