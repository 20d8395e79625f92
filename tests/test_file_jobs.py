"""Uploaded files ingested as background jobs (``POST /v1/collections/{name}/files?async=true``)
on both backends: the 202 and its job, the parsed structure kept (PDF pages), a corrupt file
failing its job with the parser's message and its retry, and the queue shared by processes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.server.app import create_app

TIMEOUT = 20.0
BROKEN_PDF = b"%PDF-1.4 this is not really a PDF"


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
    return Settings.build(
        data_dir=tmp_path,
        embedding_model="hash",
        auth="none",
        database_url=url,
        chunk_tokens=64,
        chunk_overlap=8,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def pdf(*pages: str) -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("Helvetica", size=12)
    for text in pages:
        doc.add_page()
        doc.multi_cell(0, 8, text)
    return bytes(doc.output())


def upload(client: TestClient, name: str, data: bytes, **form: str) -> Any:
    return client.post(
        "/v1/collections/kb/files?async=true",
        files={"file": (name, io.BytesIO(data), "application/octet-stream")},
        data=form,
    )


def poll(client: TestClient, job_id: str) -> Any:
    def finished() -> Any:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_until(finished)


def payload_size(db: engram.Engram, job_id: str) -> int:
    """The length of a job's stored payload (``{}`` once dropped), read through the store."""
    with db.store._session("default") as s:  # type: ignore[attr-defined]
        row = s.row("SELECT CAST(payload AS TEXT) FROM jobs WHERE id = ?", (job_id,))
    return len(str(row[0])) if row else 0


def test_an_uploaded_pdf_is_queued_then_searchable_with_its_pages(client: TestClient) -> None:
    travel = " ".join(
        f"Trains and planes are booked through the travel desk {i}." for i in range(20)
    )
    data = pdf(travel, "Parking permits are issued by facilities.")
    r = upload(client, "handbook.pdf", data, key="guides/handbook.pdf")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["kind"] == "ingest.file" and body["status"] == "queued"
    assert body["collection"] == "kb" and body["job_id"].startswith("job_")
    assert body["progress"] == {"documents_done": 0, "documents_total": 0, "chunks_done": 0}
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"

    job = poll(client, body["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["added"] == 1 and job["error"] is None and job["attempts"] == 1
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 1
    assert job["progress"]["chunks_done"] >= 1
    hits = client.post(
        "/v1/search", json={"query": "parking permits", "collection": "kb", "mode": "keyword"}
    ).json()["data"]
    assert hits[0]["document"] == "guides/handbook.pdf" and hits[0]["page"] == 2
    document = client.get("/v1/collections/kb/documents/guides/handbook.pdf").json()
    assert document["source"] == "handbook.pdf"
    # Done: the file's bytes are not kept in the job any more.
    assert payload_size(client.app.state.db, job["job_id"]) <= 2  # type: ignore[attr-defined]

    # The same file again: unchanged, like a synchronous upload.
    again = poll(
        client, upload(client, "handbook.pdf", data, key="guides/handbook.pdf").json()["job_id"]
    )
    assert again["status"] == "succeeded" and again["result"]["unchanged"] == 1


def test_a_record_file_counts_its_documents_and_records_ingest_metrics(
    client: TestClient,
) -> None:
    records = b"".join(
        b'{"_id": "r%d", "text": "Record %d is about herons."}\n' % (i, i) for i in range(5)
    )
    records += b"not json\n"
    job = poll(client, upload(client, "corpus.jsonl", records).json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["documents_total"] == 6 and job["progress"]["documents_done"] == 6
    assert job["result"]["added"] == 5 and job["result"]["failed"] == 1
    assert job["errors"][0]["reason"]
    client.app.state.observability.flush()  # type: ignore[attr-defined]
    stats = client.app.state.db.analytics.stats(tenant="default")  # type: ignore[attr-defined]
    assert stats["counts"].get("ingest") == 1
    metrics = client.get("/metrics").text
    added = re.search(r'engram_ingested_documents_total\{outcome="added"\} ([0-9.]+)', metrics)
    assert added and float(added.group(1)) == 5


def test_a_corrupt_pdf_fails_its_job_with_the_parsers_message_and_retries_cleanly(
    client: TestClient,
) -> None:
    job = poll(client, upload(client, "broken.pdf", BROKEN_PDF).json()["job_id"])
    assert job["status"] == "failed" and job["attempts"] == 1  # not retried: it cannot work
    assert "broken.pdf" in job["error"] and "not a readable PDF" in job["error"]
    assert job["result"] is None
    # The failed job keeps its file: a retry runs it again, and it fails again the same way.
    r = client.post(f"/v1/jobs/{job['job_id']}:retry")
    assert r.status_code == 200 and r.json()["status"] == "queued" and r.json()["error"] is None
    again = poll(client, job["job_id"])
    assert again["status"] == "failed" and again["attempts"] == 1
    assert again["error"] == job["error"]
    assert client.get("/v1/collections/kb").status_code == 404  # nothing was ingested


def test_the_upload_is_checked_before_queueing(client: TestClient) -> None:
    r = upload(client, "picture.xyz", b"not a document")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_format"
    assert client.get("/v1/jobs").json()["data"] == []
    # Without async=true the upload stays synchronous.
    r = client.post(
        "/v1/collections/kb/files", files={"file": ("a.md", b"# A\n\nSynchronous.\n", "text/md")}
    )
    assert r.status_code == 201 and r.json()["added"] == 1
    assert client.get("/v1/jobs").json()["data"] == []


def test_a_file_queued_by_one_app_is_run_by_another_process(settings: Settings) -> None:
    """The queue lives in the store: an ``engram worker`` process on the same database
    (PostgreSQL) or data directory (SQLite) runs an upload queued by a server."""
    with TestClient(create_app(settings)) as client:
        client.app.state.jobs.stop()  # type: ignore[attr-defined]  # this one runs nothing
        job_id = upload(client, "notes.md", b"# Notes\n\n## Otters\n\nOtters hold hands.\n")
        job_id = job_id.json()["job_id"]
        env = {**os.environ, "ENGRAM_DATA_DIR": str(settings.data_dir)}
        env["ENGRAM_EMBEDDING_MODEL"] = "hash"
        if settings.database_url:
            env["ENGRAM_DATABASE_URL"] = str(settings.database_url)
        cli = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
        run = subprocess.run(
            [sys.executable, "-c", cli, "worker", "--burst"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert f"job {job_id} (default) succeeded" in run.stderr
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded" and job["result"]["added"] == 1
        hits = client.post(
            "/v1/search", json={"query": "otters", "collection": "kb", "mode": "keyword"}
        ).json()["data"]
        assert hits[0]["document"] == "notes.md" and hits[0]["heading_path"][:1] == ["Notes"]
