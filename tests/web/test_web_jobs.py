"""The Indexing page (/jobs) in a real browser: a failed job with its reason, Retry queues it
again and the polled lists show it finish; and its rules over HTTP (scopes, CSRF, bad ids,
polling stops when idle)."""

from __future__ import annotations

import re
import time
from typing import Any

from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in
from playwright.sync_api import expect


def failed_job(web: WebServer) -> str:
    """A batch queued into a collection of another embedding model: it fails at once."""
    web.db.store.create_collection(
        "legacy", model_id="another-model", dimension=8, language="en", settings={}
    )
    docs = [{"id": f"d{i}", "text": f"Otters and herons, note {i}."} for i in range(3)]
    r = web.api.post("/v1/collections/legacy/documents:batch?async=true", json={"documents": docs})
    assert r.status_code == 202, r.text
    job_id = str(r.json()["job_id"])
    deadline = time.monotonic() + 20
    while web.api.get(f"/v1/jobs/{job_id}").json()["status"] != "failed":
        assert time.monotonic() < deadline, "the job did not fail"
        time.sleep(0.05)
    return job_id


def test_a_failed_job_shows_its_reason_and_retry_runs_it(page: Any, web: WebServer) -> None:
    job_id = failed_job(web)
    sign_in(page, web, then="/jobs")
    failed = page.locator("section", has=page.get_by_role("heading", name=re.compile("Failed")))
    row = failed.get_by_role("row", name=re.compile(job_id[:12]))
    expect(row).to_contain_text("another-model")  # the reason, as the worker recorded it
    expect(page.get_by_role("status")).to_contain_text("Nothing is queued or running")
    check_accessibility(page)
    shoot(page, "jobs")

    assert web.api.delete("/v1/collections/legacy").status_code == 204  # the cause, fixed
    row.get_by_role("button", name=re.compile("Retry")).click()
    page.wait_for_url(re.compile(r"/jobs\?retried="))
    expect(page.get_by_role("status").first).to_contain_text(job_id)
    finished = page.locator("section", has=page.get_by_role("heading", name="Recently finished"))
    # Queued or running at the redirect: the polled lists bring the finished job in.
    page.wait_for_timeout(300)
    for _ in range(3):
        if finished.get_by_text(job_id[:12]).count():
            break
        page.reload()  # finished before the page could poll
    expect(finished.get_by_text(job_id[:12])).to_be_visible(timeout=15_000)
    expect(failed.get_by_text(job_id[:12])).to_have_count(0)
    assert web.api.get(f"/v1/jobs/{job_id}").json()["result"]["added"] == 3
    expect(page.locator(".chart svg[role=img]")).to_have_count(2)


def test_retry_needs_write_and_csrf_and_a_failed_job(web: WebServer) -> None:
    job_id = failed_job(web)
    with signed_in(web.url, web.key("read")) as (client, csrf):
        r = client.get("/jobs")
        assert r.status_code == 200 and job_id[:12] in r.text and "another-model" in r.text
        assert "/retry" not in r.text  # no Retry button without write
        r = client.post(f"/jobs/{job_id}/retry", data={"csrf": csrf})
        assert r.status_code == 403
    with signed_in(web.url, web.key("write")) as (client, csrf):
        assert client.post(f"/jobs/{job_id}/retry", data={}).status_code == 403  # no CSRF
        assert web.api.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"
        r = client.post("/jobs/job_nope/retry", data={"csrf": csrf})
        assert r.status_code == 404 and "job_nope" in r.text and "<html" in r.text
        r = client.post("/jobs/bad%20id/retry", data={"csrf": csrf})
        assert r.status_code == 422
        r = client.post(f"/jobs/{job_id}/retry", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == f"/jobs?retried={job_id}"
        assert web.api.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running", "failed")
        deadline = time.monotonic() + 20
        while web.api.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The cause was not fixed: it failed again.
        assert web.api.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"
        # A failed job without its work (failed before payloads were kept) cannot run again.
        web.db.store.create_job("job_empty", tenant="default", kind="x", payload={})
        deadline = time.monotonic() + 20
        while web.api.get("/v1/jobs/job_empty").json()["status"] != "failed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = client.post("/jobs/job_empty/retry", data={"csrf": csrf})
        assert r.status_code == 409 and "submit the batch again" in r.text


def test_the_lists_poll_only_while_jobs_are_active(web: WebServer) -> None:
    with signed_in(web.url, web.admin_key) as (client, _):
        r = client.get("/jobs")
        assert 'hx-trigger="every 2s"' not in r.text  # nothing queued: no polling
        live = client.get("/jobs/live", headers={"HX-Request": "true"})
        assert live.status_code == 286 and "Nothing is queued" in live.text
        worker = web.app.state.jobs
        worker.stop()  # so that the job stays queued
        try:
            web.db.store.create_job("job_waiting", tenant="default", kind="x", payload={})
            r = client.get("/jobs")
            assert 'hx-trigger="every 2s"' in r.text and "job_waiting" in r.text
            live = client.get("/jobs/live", headers={"HX-Request": "true"})
            assert live.status_code == 200 and "0 running, 1 queued" in live.text
        finally:
            worker.start()
