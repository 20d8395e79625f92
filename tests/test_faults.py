"""Reliability with many processes on one embedded data directory, and under bad input.

Each test here failed on the code before the fix it guards (issue "Reliable with many
processes and under faults"): shared temporary file names, a damaged keyword index that
made every search fail, one SQLite connection shared by every thread, migrations raced by
two processes, lone surrogates that gave 500s or killed an ingest, unknown fields accepted
by some routes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import engram
from engram.cli import cli
from engram.config import Settings
from engram.providers.embedders.fake import HashEmbedder
from engram.server import create_app
from engram.store.records import ChunkWrite, DocumentWrite
from engram.store.sqlite import SQLiteStore
from engram.store.sqlite.derived import IndexFiles

ENGRAM = [sys.executable, "-c", "from engram.cli import main; main()"]
EMB = HashEmbedder(32)


def _write(store: SQLiteStore, coll: Any, key: str, text: str) -> None:
    chunk_hash = f"h-{key}-{text}"
    doc = DocumentWrite(
        key, "", f"c-{key}-{text}", [ChunkWrite(0, text, 0, len(text), chunk_hash, text)]
    )
    store.write_documents(coll, [doc], {chunk_hash: EMB.embed_query(text)})


# -- index files shared by processes ---------------------------------------------------------
def test_four_cli_ingests_at_once_into_one_new_data_directory(tmp_path: Path) -> None:
    """Four processes migrate one new database, create one collection and save its index
    files at the same moment: all succeed, nothing is lost, the files are consistent."""
    data = tmp_path / "data"
    env = {"ENGRAM_EMBEDDING_MODEL": "hash", "PATH": "/usr/bin:/bin"}
    procs = []
    for n in range(4):
        path = tmp_path / f"set{n}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"id": f"s{n}-{i}", "text": f"record {i} of set {n} word{n}x{i}"}) + "\n"
                for i in range(150)
            )
        )
        procs.append(
            subprocess.Popen(
                [*ENGRAM, "--data-dir", str(data), "ingest", str(path), "-c", "shared"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all("150 added" in out and "Traceback" not in out for out in outputs), outputs
    with engram.open(data, embedding_model="hash") as db:
        assert db.collection("shared").document_count == 600
        for n in range(4):
            hits = db.search(f"word{n}x7", collection="shared", mode="keyword", k=3).results
            assert [h.document_key for h in hits] == [f"s{n}-7"]
    leftovers = [p.name for p in (data / "indexes").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    doctor = CliRunner().invoke(cli, ["--data-dir", str(data), "--model", "hash", "doctor"])
    assert doctor.exit_code == 0 and "indexes complete" in doctor.output, doctor.output


def test_a_process_behind_never_replaces_newer_index_files(tmp_path: Path) -> None:
    path, index_dir = tmp_path / "e.db", tmp_path / "idx"
    old = SQLiteStore(path, index_dir=index_dir)
    coll = old.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
    _write(old, coll, "a", "alpha words")
    new = SQLiteStore(path, index_dir=index_dir)
    _write(new, coll, "b", "beta words")
    new.keyword_search(coll, ["beta"], k=1)
    new.sync()  # saves files holding a and b
    files = IndexFiles(index_dir, coll.id)
    saved = files.read_manifest()
    assert saved is not None
    old._indexes[coll.id].keywords._dirty = True  # it has something to save, but is behind
    old._indexes[coll.id].vectors._dirty = True
    old.sync()
    assert files.read_manifest() == saved, "an older process replaced newer index files"
    reopened = SQLiteStore(path, index_dir=index_dir)
    hits = reopened.keyword_search(coll, ["words"], k=5)
    assert len(hits) == 2
    for store in (old, new, reopened):
        store.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
@pytest.mark.parametrize("target", ["keywords", "vectors", "manifest"])
def test_damaged_index_files_are_rebuilt_not_fatal(
    tmp_path: Path, target: str, damage: str
) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add([{"id": f"d{i}", "text": f"document number {i} about topic{i}"} for i in range(50)])
    files = IndexFiles(tmp_path / "indexes", 1)
    manifest = files.read_manifest()
    assert manifest is not None
    path = {
        "keywords": files.keywords(manifest["generation"]),
        "vectors": files.vectors(manifest["generation"]),
        "manifest": files.manifest,
    }[target]
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50, "empty": b""}[damage]
    )
    with engram.open(tmp_path, embedding_model="hash") as db:
        for mode in ("keyword", "vector", "hybrid"):
            hits = db.search("topic7", mode=mode, k=3).results  # type: ignore[arg-type]
            assert hits and (mode == "vector" or hits[0].document_key == "d7")
    assert files.read_manifest() is not None  # saved again, whole


# -- one store, many threads, two processes --------------------------------------------------
def test_threads_and_a_second_process_share_the_database_without_errors(tmp_path: Path) -> None:
    """Searches, listings and writes from many threads of one store while another store
    (another process, as SQLite sees it) writes too: no 'database is locked', no 'another
    row available', nothing lost."""
    path, index_dir = tmp_path / "e.db", tmp_path / "idx"
    store = SQLiteStore(path, index_dir=index_dir)
    other = SQLiteStore(path, index_dir=index_dir)
    coll = store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
    errors: list[BaseException] = []
    written: list[str] = []
    lock = threading.Lock()

    def guard(work: Any) -> Any:
        def run(*args: Any) -> None:
            try:
                work(*args)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        return run

    @guard
    def writer(s: SQLiteStore, name: str) -> None:
        for i in range(40):
            key = f"{name}-{i}"
            _write(s, coll, key, f"text {name} {i} common")
            with lock:
                written.append(key)
            if i % 10 == 0:
                s.sync()

    @guard
    def reader(s: SQLiteStore) -> None:
        for _ in range(150):
            s.keyword_search(coll, ["common"], k=5)
            s.vector_search(coll, EMB.embed_query("common"), k=5)
            s.list_documents(coll, limit=20)
            s.list_jobs(tenant="default")

    threads = [
        threading.Thread(target=writer, args=(store, "a")),
        threading.Thread(target=writer, args=(store, "b")),
        threading.Thread(target=writer, args=(other, "c")),
        *(threading.Thread(target=reader, args=(store,)) for _ in range(4)),
        threading.Thread(target=reader, args=(other,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    keys = {d.key for d in store.list_documents(coll, limit=1000)}
    assert keys == set(written) and len(keys) == 120
    assert len(store.keyword_search(coll, ["common"], k=500)) == 120
    store.close()
    other.close()


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    code = (
        "import sys; from engram.store.sqlite import SQLiteStore; SQLiteStore(sys.argv[1]).close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors


# -- lone surrogates and unknown fields over HTTP --------------------------------------------
@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        ok = test_client.post("/v1/collections/kb/documents", json={"id": "a", "text": "hello"})
        assert ok.status_code == 201
        yield test_client


SURROGATE = "\\ud800"  # as JSON spells it: decoded, a str no UTF-8 encoder accepts


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/search", '{"query": "x%s y", "collection": "kb"}'),
        ("/v1/collections/kb/documents", '{"id": "b", "text": "x%s"}'),
        ("/v1/collections/kb/documents", '{"id": "b%s", "text": "fine"}'),
        ("/v1/collections/kb/documents:batch", '{"documents": [{"id": "b", "text": "%s"}]}'),
        ("/v1/collections/kb/documents", '{"id": "b", "text": "t", "metadata": {"k": "%s"}}'),
        ("/v1/memories", '{"content": "I like %s", "user_id": "u1"}'),
        ("/v1/chat", '{"question": "what %s", "collection": "kb"}'),
        ("/v1/conversations", '{"user_id": "u%s"}'),
        ("/v1/memories/search", '{"query": "%s", "user_id": "u1"}'),
    ],
)
def test_lone_surrogate_is_a_422_naming_the_field(client: TestClient, path: str, body: str) -> None:
    res = client.post(
        path, content=body.replace("%s", SURROGATE), headers={"content-type": "application/json"}
    )
    assert res.status_code == 422, res.text
    error = res.json()["error"]
    assert error["code"] == "invalid_request"
    assert "not valid Unicode" in error["message"]
    assert client.get("/v1/collections/kb").json()["document_count"] == 1  # nothing written


def test_lone_surrogate_in_an_invalid_field_is_echoed_escaped(client: TestClient) -> None:
    body = '{"query": "q", "collection": "kb", "mode": "MODE"}'.replace("MODE", SURROGATE)
    res = client.post("/v1/search", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422, res.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/memories", {"content": "I like tea", "user_id": "u1", "colour": "red"}),
        ("/v1/memories/search", {"query": "tea", "user_id": "u1", "colour": "red"}),
        ("/v1/chat", {"question": "hello?", "collection": "kb", "colour": "red"}),
        ("/v1/conversations", {"user_id": "u1", "colour": "red"}),
        ("/v1/events", {"kind": "click", "document": "a", "colour": "red"}),
        ("/v1/search", {"query": "hello", "collection": "kb", "colour": "red"}),
    ],
)
def test_unknown_fields_are_refused_on_every_route(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    res = client.post(path, json=body)
    assert res.status_code == 422, res.text
    error = res.json()["error"]
    assert "colour" in error["message"] and "extra" in json.dumps(error["details"]).lower()


# -- one bad record never loses the others ---------------------------------------------------
def test_cli_ingest_skips_a_bad_record_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": "first good record"}),
        '{"id": "bad", "text": "broken S text"}'.replace("S", SURROGATE),
        "{not json",
        json.dumps({"id": "ok2", "text": "second good record"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    data = tmp_path / "data"
    result = CliRunner().invoke(
        cli, ["--data-dir", str(data), "--model", "hash", "ingest", str(path), "--json"]
    )
    report = json.loads(result.output)
    assert report["added"] == 2 and report["failed"] == 2, result.output
    reasons = " ".join(e["reason"] for e in report["errors"])
    assert (
        "line 2: text: text is not valid Unicode" in reasons and "line 3: invalid JSON" in reasons
    )
    with engram.open(data, embedding_model="hash") as db:
        assert {d.key for d in db.documents()} == {"ok1", "ok2"}


def test_library_add_reports_a_bad_record_and_keeps_the_rest(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        report = db.add(
            [
                {"id": "ok", "text": "a good record"},
                {"id": "bad", "text": "bad \ud800 text"},
                {"id": "meta", "text": "good text", "metadata": {"who": "x\udfff"}},
            ]
        )
        assert report.added == 1 and report.failed == 2
        assert "text: text is not valid Unicode" in report.errors[0][1]
        assert "metadata.who" in report.errors[1][1]
        assert [d.key for d in db.documents()] == ["ok"]


def test_vectors_survive_reopen_bitwise(tmp_path: Path) -> None:
    """Sanity for the rebuilt-from-files path: a saved and reloaded index answers exactly as
    the in-memory one did."""
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add([{"id": f"d{i}", "text": f"text {i} shared words"} for i in range(30)])
        before = [(h.document_key, h.score) for h in db.search("shared words", k=10).results]
    with engram.open(tmp_path, embedding_model="hash") as db:
        after = [(h.document_key, h.score) for h in db.search("shared words", k=10).results]
    assert [k for k, _ in before] == [k for k, _ in after]
    assert np.allclose([s for _, s in before], [s for _, s in after])


# -- slow clients ----------------------------------------------------------------------------
@pytest.fixture
def timed_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """``engram serve``'s HTTP protocol with a 1 s header limit and a 1.5 s body limit."""
    import socket
    import time

    import uvicorn
    from live import free_port

    from engram.server import protocol

    monkeypatch.setenv(protocol.HEADER_TIMEOUT_ENV, "1")
    monkeypatch.setenv(protocol.BODY_TIMEOUT_ENV, "1.5")
    protocol.limits.cache_clear()
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=protocol.TimedHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")  # a normal client is served
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        protocol.limits.cache_clear()


def _trickle(port: int, head: bytes, rest: bytes, every: float) -> tuple[bytes, float]:
    """Send ``head`` at once, then ``rest`` a byte every ``every`` s until the server closes;
    returns what the server answered and after how long."""
    import socket
    import time

    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        for byte in rest:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            s.settimeout(every)
            try:
                data = s.recv(1000)
            except TimeoutError:
                continue
            s.settimeout(10)
            return data + s.recv(1000), time.monotonic() - started
    return b"", time.monotonic() - started


def test_headers_trickled_are_cut_with_a_408(timed_server: int) -> None:
    answer, seconds = _trickle(
        timed_server, b"GET /v1/health HTTP/1.1\r\n", b"X-Slow: " + b"a" * 100, 0.2
    )
    assert answer.startswith(b"HTTP/1.1 408") and b"headers" in answer
    assert seconds < 3


def test_a_body_trickled_is_cut_with_a_408(timed_server: int) -> None:
    head = (
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 500\r\n\r\n"
    )
    answer, seconds = _trickle(timed_server, head, b'{"query": "' + b"a" * 480, 0.2)
    assert answer.startswith(b"HTTP/1.1 408") and b"body" in answer
    assert seconds < 3.5


def test_only_a_damaged_file_is_called_unreadable() -> None:
    """An SQLite error that says nothing about the file must not send people to restore a
    backup (seen: "another row available" from a connection shared between threads)."""
    import sqlite3

    from engram.errors import StoreError
    from engram.store.sqlite.sql import translate

    with pytest.raises(StoreError) as info, translate():
        raise sqlite3.DatabaseError("another row available")
    assert "unreadable" not in info.value.message and "backup" not in (info.value.hint or "")
    with pytest.raises(StoreError) as info, translate():
        raise sqlite3.DatabaseError("database disk image is malformed")
    assert "unreadable" in info.value.message and "backup" in (info.value.hint or "")


def test_a_thread_read_connection_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    """Server thread pools retire idle threads (anyio after 10 s): their SQLite connections
    must go with them, not pile up (file descriptors, page caches)."""
    import gc
    import os

    store = SQLiteStore(tmp_path / "e.db", index_dir=tmp_path / "idx")
    coll = store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
    _write(store, coll, "a", "alpha words")
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(40):
        t = threading.Thread(target=lambda: store.list_documents(coll))
        t.start()
        t.join()
    gc.collect()
    assert len(store._readers) <= 1
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 3
    assert [d.key for d in store.list_documents(coll)] == ["a"]  # the store still reads
    store.close()


def test_a_body_sent_without_a_json_content_type_says_so(client: TestClient) -> None:
    """curl -d sends application/x-www-form-urlencoded: say what to add."""
    res = client.post(
        "/v1/search",
        content=b'{"query": "hello", "collection": "kb"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert res.status_code == 422
    error = res.json()["error"]
    assert "Content-Type: application/json" in error["message"]
    assert "-H 'content-type: application/json'" in error["hint"]


def test_opening_a_new_database_waits_for_its_conversion_to_wal(tmp_path: Path) -> None:
    """Converting a file to WAL needs it to itself: while another connection reads the new
    file, connect() waits (SQLite may fail the conversion at once or return the old mode,
    so it retries with backoff) and converts once the reader is done."""
    from engram.store.sqlite.sql import connect

    path = tmp_path / "new.db"
    seed = sqlite3.connect(path)
    seed.execute("CREATE TABLE t (x)")
    seed.commit()
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds a shared lock
    release = threading.Timer(0.5, lambda: reader.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    conn = connect(path)
    release.join()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert time.monotonic() - started >= 0.4  # it waited for the reader, then converted
    conn.close()
    reader.close()
    seed.close()
