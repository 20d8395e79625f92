"""The knowledge pages in a real browser (uploads of files with live progress and their
background jobs, the document list, versions and their diff, deleting with confirmation, a
failing file and its Retry), and their rules over HTTP: scopes, tenants, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in

DONE = "li.upload-item[data-state=done]"
FAILED = "li.upload-item[data-state=failed]"
QUEUED = "li.upload-item[data-state=queued]"
INDEXING = "li.upload-item[data-state=indexing]"


def _pdf(path: Path, text: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def _text(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_upload_list_versions_diff_and_delete(page: Any, web: WebServer, tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "handbook.pdf", "The travel policy covers trains and planes.")
    sign_in(page, web, then="/knowledge")
    assert page.get_by_text("No collections yet").count() == 1
    check_accessibility(page)

    # A PDF into a new collection, from the knowledge page: uploaded, then its background
    # job is followed. The server's worker is paused, so the job waits in the queue.
    worker = web.app.state.jobs
    worker.stop()
    page.get_by_label("Collection", exact=True).fill("handbooks")
    page.get_by_label("Choose files").set_input_files(str(pdf))
    queued = page.locator(QUEUED).filter(has_text="handbook.pdf")
    queued.wait_for()
    assert "Queued" in queued.inner_text()
    link = queued.get_by_role("link", name="Indexing page (the job of handbook.pdf)")
    assert link.get_attribute("href") == "/jobs"
    [job] = web.db.store.list_jobs(tenant="default")
    assert job.kind == "ingest.file" and job.status == "queued"
    # A worker takes it and reports progress: the row shows it.
    claimed = web.db.store.claim_job()
    assert claimed is not None and claimed.id == job.id
    progress = {"documents_done": 0, "documents_total": 1, "chunks_done": 0}
    web.db.store.set_job_progress(job.id, attempt=claimed.attempts, progress=progress)
    indexing = page.locator(INDEXING).filter(has_text="handbook.pdf")
    indexing.filter(has_text="0/1 document(s)").wait_for()
    assert "Indexing" in indexing.inner_text()
    check_accessibility(page)
    # Back in the queue, and the server's worker running again: the job ends, the row too.
    web.db.store.requeue_job(job.id, attempt=claimed.attempts)
    worker.start()
    item = page.locator(DONE).filter(has_text="handbook.pdf")
    item.wait_for()
    assert "Done" in item.inner_text() and "added" in item.inner_text()
    assert web.db.store.get_job(job.id, tenant="default").status == "succeeded"
    assert page.locator("[data-upload-summary]").inner_text().startswith("1 of 1 file(s) done")
    # The collections table reloads with the new collection and its size.
    row = page.locator("#collections tbody tr").filter(has_text="handbooks")
    row.wait_for()
    assert row.locator("td.num").first.inner_text() == "1"
    check_accessibility(page)
    shoot(page, "knowledge")

    # The collection's documents: the PDF is listed.
    row.get_by_role("link", name="handbooks").click()
    page.wait_for_url(f"{web.url}/knowledge/handbooks")
    assert page.locator("#documents tbody tr").filter(has_text="handbook.pdf").count() == 1

    # A text file, then a changed file of the same name: version 2 of one document.
    first = _text(
        tmp_path / "v1", "notes.txt", "Meetings happen on Monday at noon.\nBring coffee.\n"
    )
    second = _text(
        tmp_path / "v2", "notes.txt", "Meetings happen on Friday at noon.\nBring coffee.\n"
    )
    files = page.get_by_label("Choose files")
    files.set_input_files(str(first))
    page.locator(DONE).filter(has_text="notes.txt").wait_for()
    files.set_input_files(str(second))
    page.locator(DONE).filter(has_text="new version").wait_for()
    notes = page.locator("#documents tbody tr").filter(has_text="notes.txt")
    notes.filter(has=page.locator("td.num", has_text="2")).first.wait_for()  # list reloaded
    check_accessibility(page)
    shoot(page, "documents")

    # The filter by key narrows the list.
    page.get_by_label("Title or key contains").fill("notes")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.wait_for_url("**q=notes*")
    assert page.locator("#documents tbody tr").count() == 1

    # Its page: two versions; the diff between them marks the changed words.
    page.get_by_role("link", name="notes.txt").click()
    page.wait_for_url("**/knowledge/handbooks/documents/notes.txt")
    assert page.locator("#versions-title + table tbody tr").count() == 2
    assert page.get_by_role("link", name="View text").get_attribute("href") == (
        "/source/handbooks/notes.txt"
    )
    page.get_by_label("From").select_option("1")
    page.get_by_label("To").select_option("2")
    page.get_by_role("button", name="Show changes").click()
    page.wait_for_url("**from=1&to=2*")
    diff = page.locator("pre.diff")
    assert "Friday" in diff.locator("ins").inner_text()
    assert "Monday" in diff.locator("del").inner_text()
    assert "coffee" in diff.inner_text()  # context around the change
    check_accessibility(page)
    shoot(page, "versions")

    # Restoring version 1 makes a version 3 with its text.
    page.get_by_role("button", name="Restore version 1").click()
    page.get_by_role("status").filter(has_text="Version 1 is current again").wait_for()
    assert web.db.document("notes.txt", "handbooks").version == 3
    assert "Monday" in web.db.document_text("notes.txt", "handbooks")

    # Deleting asks first: dismissed, nothing happens; accepted, the document is gone.
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Delete document").click()
    assert web.db.document("notes.txt", "handbooks").key == "notes.txt"
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete document").click()
    page.wait_for_url("**/knowledge/handbooks?deleted=notes.txt")
    assert page.get_by_role("status").inner_text() == "Deleted document notes.txt."
    assert page.locator("#documents tbody tr").filter(has_text="notes.txt").count() == 0
    assert page.locator("#documents tbody tr").filter(has_text="handbook.pdf").count() == 1


def test_a_failing_file_shows_its_error_and_a_retry(
    page: Any, web: WebServer, tmp_path: Path
) -> None:
    web.db.create_collection("kb", language="en")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a PDF")
    unknown = _text(tmp_path, "picture.xyz", "not a document format")
    good = _text(tmp_path, "fine.md", "# Fine\n\nA good file among bad ones.\n")
    sign_in(page, web, then="/knowledge/kb")
    page.get_by_label("Choose files").set_input_files([str(broken), str(unknown), str(good)])
    page.locator(DONE).filter(has_text="fine.md").wait_for()
    # The PDF was uploaded, then its job failed with the parser's reason.
    bad_pdf = page.locator(FAILED).filter(has_text="broken.pdf")
    bad_pdf.wait_for()
    assert "not a readable PDF" in bad_pdf.locator(".notice.error").inner_text()
    assert bad_pdf.get_by_role("link", name="Indexing page (the job of broken.pdf)").count() == 1
    # The unknown type was refused by the upload itself: no job.
    bad_ext = page.locator(FAILED).filter(has_text="picture.xyz")
    assert "cannot tell the format" in bad_ext.locator(".notice.error").inner_text()
    assert bad_ext.get_by_role("link").count() == 0
    summary = page.locator("[data-upload-summary]")
    summary.filter(has_text="1 of 3 file(s) done, 2 failed").wait_for()
    check_accessibility(page)
    jobs = {j.kind: j for j in web.db.store.list_jobs(tenant="default", status="failed")}
    assert "not a readable PDF" in (jobs["ingest.file"].error or "")
    # Retry queues the failed job again (it kept the file); it fails again, with its message.
    retry = bad_pdf.get_by_role("button", name="Retry broken.pdf")
    with page.expect_response(lambda r: r.url.endswith(":retry")) as requeued:
        retry.click()
    assert requeued.value.status == 200
    assert jobs["ingest.file"].id in requeued.value.url
    page.locator(FAILED).filter(has_text="broken.pdf").locator("button").wait_for()
    assert "not a readable PDF" in bad_pdf.inner_text()
    assert len(web.db.store.list_jobs(tenant="default")) == 2  # no new upload: fine.md, broken
    # Retry of a refused upload sends the file again.
    with page.expect_request(lambda r: "/files" in r.url) as resent:
        bad_ext.get_by_role("button", name="Retry picture.xyz").click()
    assert resent.value.method == "POST"
    page.locator(FAILED).filter(has_text="picture.xyz").locator("button").wait_for()
    assert page.locator("#documents tbody tr").filter(has_text="fine.md").count() == 1


def test_french_knowledge_page(page: Any, web: WebServer) -> None:
    web.db.add([{"id": "a", "text": "bonjour"}], collection="kb")
    sign_in(page, web, then="/knowledge")
    page.context.add_cookies([{"name": "engram_lang", "value": "fr", "url": web.url}])
    page.goto(f"{web.url}/knowledge")
    assert page.get_by_role("heading", name="Connaissances").count() == 1
    assert page.get_by_role("button", name="Créer la collection").count() == 1


# -- HTTP ----------------------------------------------------------------------------------------


@pytest.fixture
def kb(web: WebServer) -> WebServer:
    web.db.add(
        [{"id": "guide/setup.md", "text": "Install it.", "metadata": {"team": "it"}}],
        collection="kb",
    )
    web.db.add([{"id": "secret", "text": "Other tenant."}], collection="theirs", tenant="acme")
    return web


def test_a_read_only_session_sees_but_cannot_change(kb: WebServer) -> None:
    with signed_in(kb.url, kb.key("read")) as (client, csrf):
        page = client.get("/knowledge/kb")
        assert page.status_code == 200 and "guide/setup.md" in page.text
        assert "Delete" not in page.text and "Upload files" not in page.text
        assert client.get("/knowledge/kb/documents/guide%2Fsetup.md").status_code == 200
        r = client.post("/knowledge/kb/delete", data={"key": "guide/setup.md", "csrf": csrf})
        assert r.status_code == 403 and "write" in r.text and "<html" in r.text
        r = client.post(
            "/knowledge/kb/restore", data={"key": "guide/setup.md", "version": 1, "csrf": csrf}
        )
        assert r.status_code == 403
        r = client.post("/knowledge", data={"name": "new", "csrf": csrf})
        assert r.status_code == 403
    assert kb.db.document("guide/setup.md", "kb").version == 1
    assert [c.name for c in kb.db.collections()] == ["kb"]


def test_changes_need_the_csrf_secret(kb: WebServer) -> None:
    with signed_in(kb.url, kb.admin_key) as (client, _):
        r = client.post("/knowledge/kb/delete", data={"key": "guide/setup.md"})
        assert r.status_code == 403
    assert kb.db.document("guide/setup.md", "kb").version == 1


def test_another_tenants_collection_is_not_found(kb: WebServer) -> None:
    with signed_in(kb.url, kb.key("write")) as (client, csrf):
        assert "theirs" not in client.get("/knowledge").text
        assert client.get("/knowledge/theirs").status_code == 404
        assert client.get("/knowledge/theirs/documents/secret").status_code == 404
        r = client.post("/knowledge/theirs/delete", data={"key": "secret", "csrf": csrf})
        assert r.status_code == 404
    assert kb.db.document("secret", "theirs", tenant="acme").key == "secret"


def test_create_collection_and_bad_input(kb: WebServer) -> None:
    with signed_in(kb.url, kb.key("write")) as (client, csrf):
        r = client.post(
            "/knowledge",
            data={
                "name": "notes",
                "language": "fr",
                "fusion": "rrf",
                "keep_versions": "5",
                "csrf": csrf,
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/knowledge/notes"
        created = kb.db.collection("notes")
        assert created.language == "fr" and created.settings["keep_versions"] == 5
        r = client.post("/knowledge", data={"name": "notes", "language": "en", "csrf": csrf})
        assert r.status_code == 409 and "notes" in r.text  # the form again, with the reason
        r = client.post(
            "/knowledge", data={"name": "x", "language": "en", "fusion_alpha": "2", "csrf": csrf}
        )
        assert r.status_code == 422 and "fusion_alpha" in r.text
        r = client.get("/knowledge/kb", params={"where": "{not json"})
        assert r.status_code == 422 and "not valid JSON" in r.text
        r = client.get("/knowledge/kb", params={"start": "-1"})
        assert r.status_code == 422
        r = client.get("/knowledge/kb/documents/guide/setup.md", params={"from": "1"})
        assert r.status_code == 422 and "two versions" in r.text
        r = client.get("/knowledge/kb/documents/missing")
        assert r.status_code == 404


def test_documents_filters_and_pages(kb: WebServer) -> None:
    kb.db.add(
        [{"id": f"doc-{i:03d}", "text": f"text {i}", "metadata": {"n": i}} for i in range(120)],
        collection="kb",
    )
    with signed_in(kb.url, kb.key("read")) as (client, _):
        first = client.get("/knowledge/kb").text
        assert first.count('class="mono">doc-') == 50
        assert "start=50" in first
        last = client.get("/knowledge/kb", params={"start": 100}).text
        assert last.count('class="mono">doc-') == 20 and "guide/setup.md" in last
        assert 'rel="next"' not in last
        r = client.get("/knowledge/kb", params={"where": "n>=110"}).text
        assert r.count('class="mono">doc-') == 10
        r = client.get("/knowledge/kb", params={"where": '{"team": "it"}'}).text
        assert "guide/setup.md" in r and "doc-001" not in r
        r = client.get("/knowledge/kb", params={"q": "SETUP"}).text
        assert "guide/setup.md" in r and "doc-0" not in r


def test_a_folder_and_dropped_files_are_uploaded(page: Any, web: WebServer, tmp_path: Path) -> None:
    """The folder picker sends every supported file with its path inside the folder and
    counts the rest; files dropped on the zone are sent like picked ones."""
    root = tmp_path / "policies"
    _text(root, "travel.md", "# Travel\n\nTrains are booked through the company portal.\n")
    _text(root / "hr", "leave.txt", "Annual leave is twenty-five days a year.\n")
    _text(root, ".draft.md", "A hidden draft is not sent.\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    sign_in(page, web, then="/knowledge")
    page.get_by_label("Collection", exact=True).fill("policies")
    page.get_by_label("Choose a folder").set_input_files(str(root))
    for name in ("policies/travel.md", "policies/hr/leave.txt"):
        page.locator(DONE).filter(has_text=name).wait_for()
    summary = page.locator("[data-upload-summary]").inner_text()
    assert summary.startswith("2 of 2 file(s) done"), summary
    assert "2 file(s) of unsupported types skipped" in summary, summary
    keys = {d.key for d in web.db.documents("policies")}
    assert keys == {"policies/travel.md", "policies/hr/leave.txt"}, keys
    hits = web.db.search("annual leave days", collection="policies", k=1).data
    assert hits[0].document == "policies/hr/leave.txt"

    # Dropped on the zone (a DataTransfer of files, as the browser hands a drop over).
    page.evaluate(
        """() => {
          const transfer = new DataTransfer();
          transfer.items.add(new File(["Otters hold hands while they sleep."], "otters.md"));
          const zone = document.querySelector("[data-dropzone]");
          for (const type of ["dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true,
                                                    cancelable: true}));
          }
        }"""
    )
    page.locator(DONE).filter(has_text="otters.md").wait_for()
    assert "otters.md" in {d.key for d in web.db.documents("policies")}
    check_accessibility(page)
