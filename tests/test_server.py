"""The HTTP API: in-process (TestClient) and over a real socket (uvicorn + httpx)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from live import serve_app

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import ModelUnavailable
from engram.search.fusion import auto_alpha
from engram.server import create_app
from engram.server.deps import get_db
from engram.server.limits import MAX_REQUEST_BYTES

DOCS = [
    {
        "id": "leave/vacation.md",
        "title": "Vacation policy",
        "text": "Employees get 25 vacation days per year. Vacation requests go to your manager.",
        "metadata": {"team": "hr", "year": 2024},
    },
    {
        "id": "leave/sick.md",
        "title": "Sick leave",
        "text": "Sick leave needs a doctor's note after three days away from work.",
        "metadata": {"team": "hr", "year": 2021},
    },
    {
        "id": "it/keys.md",
        "title": "API keys",
        "text": "Rotate an API key every ninety days from the security settings page.",
        "metadata": {"team": "it", "year": 2023},
    },
    {
        "id": "it/laptops.md",
        "title": "Laptops",
        "text": "Laptops are replaced every three years; request one from the IT desk.",
        "metadata": {"team": "it", "year": 2020},
    },
]


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    # Authentication is tested in tests/test_server_auth.py; here every request is trusted.
    return Settings.build(data_dir=tmp_path, embedding_model="hash", chunk_tokens=64, auth="none")


@pytest.fixture
def client(server_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(server_settings)) as test_client:
        yield test_client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "hint"?, "details"?}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "hint", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def add_all(client: TestClient, collection: str = "kb") -> None:
    res = client.post(f"/v1/collections/{collection}/documents:batch", json={"documents": DOCS})
    assert res.status_code == 201, res.text
    assert res.json()["added"] == len(DOCS)


# -- documents and collections ---------------------------------------------------------------
def test_document_lifecycle(client: TestClient) -> None:
    doc = {"id": "faq/refunds", "text": "Refunds take five days.", "metadata": {"team": "support"}}
    res = client.post("/v1/collections/kb/documents", json=doc)
    assert res.status_code == 201
    assert res.json()["added"] == 1 and res.json()["errors"] == []

    res = client.post("/v1/collections/kb/documents", json=doc)
    assert res.status_code == 200 and res.json()["unchanged"] == 1
    res = client.post(
        "/v1/collections/kb/documents", json={**doc, "text": "Refunds take ten days."}
    )
    assert res.status_code == 200 and res.json()["updated"] == 1

    res = client.get("/v1/collections")
    assert res.status_code == 200
    body = res.json()
    assert body["count"] == 1 and body["next_cursor"] is None
    assert body["data"][0]["name"] == "kb" and body["data"][0]["document_count"] == 1
    assert body["data"][0]["model_id"].startswith("hash")

    res = client.get("/v1/collections/kb")
    assert res.status_code == 200 and res.json()["chunk_count"] >= 1

    # A key with a slash is addressed as the rest of the path.
    res = client.get("/v1/collections/kb/documents/faq/refunds")
    assert res.status_code == 200
    detail = res.json()
    assert detail["key"] == "faq/refunds" and detail["version"] == 2
    assert detail["metadata"] == {"team": "support"}
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    # ... also when the slash is percent-encoded.
    assert client.get("/v1/collections/kb/documents/faq%2Frefunds").json()["version"] == 2

    res = client.delete("/v1/collections/kb/documents/faq/refunds")
    assert res.status_code == 204 and res.content == b""
    err = assert_error(
        client.get("/v1/collections/kb/documents/faq/refunds"), 404, "document_not_found"
    )
    assert "faq/refunds" in err["message"]
    assert_error(
        client.delete("/v1/collections/kb/documents/faq/refunds"), 404, "document_not_found"
    )

    res = client.delete("/v1/collections/kb")
    assert res.status_code == 204
    err = assert_error(client.get("/v1/collections/kb"), 404, "collection_not_found")
    assert err["hint"]
    assert_error(client.delete("/v1/collections/kb"), 404, "collection_not_found")
    assert_error(client.get("/v1/collections/kb/documents"), 404, "collection_not_found")


def test_batch_reports_failures_and_duplicates(client: TestClient) -> None:
    docs = [DOCS[0], DOCS[0], DOCS[1]]
    res = client.post("/v1/collections/kb/documents:batch", json={"documents": docs})
    assert res.status_code == 201
    report = res.json()
    assert report["added"] == 2 and report["failed"] == 1
    assert "duplicate" in report["errors"][0]["reason"]

    too_many = {"documents": [{"id": f"d{i}", "text": "x"} for i in range(1001)]}
    err = assert_error(
        client.post("/v1/collections/kb/documents:batch", json=too_many), 422, "invalid_request"
    )
    assert err["details"]["errors"][0]["loc"] == ["body", "documents"]


def test_list_documents_pages_with_cursor_and_filters(client: TestClient) -> None:
    add_all(client)
    keys: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/collections/kb/documents", params=params).json()
        keys += [d["key"] for d in body["data"]]
        assert body["count"] == len(body["data"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == 2 and sorted(keys) == sorted(d["id"] for d in DOCS)

    body = client.get(
        "/v1/collections/kb/documents", params={"where": json.dumps({"team": "it"})}
    ).json()
    assert sorted(d["key"] for d in body["data"]) == ["it/keys.md", "it/laptops.md"]
    assert body["next_cursor"] is None
    body = client.get(
        "/v1/collections/kb/documents", params={"where": '{"year": {"$gte": 2023}}'}
    ).json()
    assert {d["key"] for d in body["data"]} == {"leave/vacation.md", "it/keys.md"}

    err = assert_error(
        client.get("/v1/collections/kb/documents", params={"where": "team=hr"}),
        422,
        "invalid_input",
    )
    assert "JSON" in err["message"]
    assert_error(
        client.get("/v1/collections/kb/documents", params={"where": "[1]"}), 422, "invalid_input"
    )
    assert_error(
        client.get("/v1/collections/kb/documents", params={"where": '{"year": {"$bad": 1}}'}),
        422,
        "invalid_input",
    )
    assert_error(
        client.get("/v1/collections/kb/documents", params={"cursor": "not a cursor!"}),
        422,
        "invalid_input",
    )
    assert_error(
        client.get("/v1/collections/kb/documents", params={"limit": 0}), 422, "invalid_request"
    )


def test_upload_files(client: TestClient) -> None:
    md = b"# Travel\n\nBook trains through the travel portal at least a week ahead.\n"
    res = client.post(
        "/v1/collections/kb/files", files={"file": ("travel.md", md, "text/markdown")}
    )
    assert res.status_code == 201, res.text
    assert res.json()["added"] == 1
    assert client.get("/v1/collections/kb/documents/travel.md").json()["title"] == "Travel"

    res = client.post(
        "/v1/collections/kb/files",
        files={"file": ("notes.txt", b"Parking is free on weekends.", "text/plain")},
        data={"key": "facilities/parking"},
    )
    assert res.status_code == 201
    assert client.get("/v1/collections/kb/documents/facilities/parking").status_code == 200

    records = b'{"_id": "r1", "text": "Qubits use superposition."}\n{"_id": "r2", "text": "Plants use sunlight."}\n'
    res = client.post(
        "/v1/collections/kb/files", files={"file": ("corpus.jsonl", records, "application/jsonl")}
    )
    assert res.status_code == 201 and res.json()["added"] == 2

    err = assert_error(
        client.post("/v1/collections/kb/files", files={"file": ("x.exe", b"MZ", "app/x")}),
        415,
        "unsupported_format",
    )
    assert ".md" in err["hint"]
    assert_error(
        client.post("/v1/collections/kb/files", files={"file": ("bad.pdf", b"not a pdf", "x/y")}),
        422,
        "loader_error",
    )
    assert_error(client.post("/v1/collections/kb/files", data={"key": "k"}), 422, "invalid_request")


# -- search ----------------------------------------------------------------------------------
def test_search_results_filters_explain(client: TestClient) -> None:
    add_all(client)
    res = client.post(
        "/v1/search", json={"query": "vacation days", "collection": "kb", "mode": "keyword"}
    )
    assert res.status_code == 200, res.text
    body = res.json()
    top = body["data"][0]
    assert top["document"] == "leave/vacation.md" and top["version"] == 1
    start, end = top["span"]
    assert 0 <= start < end
    assert top["heading_path"] == [] and top["page"] is None
    assert "<mark>" in top["highlight"]
    assert top["explain"]["keyword"]["rank"] == 1 and top["explain"]["vector"] is None
    assert body["mode"] == "keyword" and "keyword" in body["timings_ms"]
    assert body["count"] == len(body["data"])

    res = client.post("/v1/search", json={"query": "vacation", "collection": "kb"})
    hybrid = res.json()["data"][0]["explain"]
    assert set(hybrid) >= {"keyword", "vector", "fused"} and hybrid["fused"]["method"]

    res = client.post(
        "/v1/search",
        json={"query": "days", "collection": "kb", "mode": "keyword", "where": {"team": "it"}},
    )
    assert res.json()["data"] and all(h["metadata"]["team"] == "it" for h in res.json()["data"])
    res = client.post(
        "/v1/search",
        json={"query": "every", "collection": "kb", "where": {"year": {"$lt": 2021}}},
    )
    assert {h["document"] for h in res.json()["data"]} == {"it/laptops.md"}

    # A word absent from the index is expanded to close indexed spellings.
    res = client.post("/v1/search", json={"query": "laptps", "collection": "kb", "mode": "keyword"})
    assert res.json()["expansions"] == {"laptp": ["laptop"]}
    assert res.json()["data"][0]["document"] == "it/laptops.md"


def test_search_pages_with_cursor(client: TestClient) -> None:
    add_all(client)
    query = {"query": "every days year vacation sick keys laptops", "collection": "kb"}
    query["mode"] = "keyword"
    full = client.post("/v1/search", json={**query, "k": 100}).json()
    assert full["next_cursor"] is None and full["count"] == len(DOCS)

    seen: list[int] = []
    cursor = None
    while True:
        body = client.post("/v1/search", json={**query, "k": 3, "cursor": cursor}).json()
        seen += [h["chunk_id"] for h in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [h["chunk_id"] for h in full["data"]]

    page2 = client.post("/v1/search", json={**query, "k": 3, "offset": 3}).json()
    assert [h["chunk_id"] for h in page2["data"]] == seen[3:]
    assert_error(
        client.post("/v1/search", json={**query, "cursor": "AAAA", "offset": 3}),
        422,
        "invalid_input",
    )
    assert_error(client.post("/v1/search", json={**query, "cursor": "%%"}), 422, "invalid_input")


def test_search_errors(client: TestClient) -> None:
    assert_error(
        client.post("/v1/search", json={"query": "x", "collection": "nope"}),
        404,
        "collection_not_found",
    )
    add_all(client)
    assert_error(
        client.post("/v1/search", json={"query": "   ", "collection": "kb"}), 422, "invalid_input"
    )
    assert_error(
        client.post("/v1/search", json={"query": "x", "collection": "kb", "where": {"$x": 1}}),
        422,
        "invalid_input",
    )
    err = assert_error(
        client.post("/v1/search", json={"query": "x" * 4097, "collection": "kb"}),
        422,
        "invalid_request",
    )
    assert "input" not in err["details"]["errors"][0]  # a long input is not echoed back


def test_model_mismatch_is_a_conflict(tmp_path: Path) -> None:
    with TestClient(
        create_app(Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none"))
    ) as c:
        add_all(c)
    with engram.open(tmp_path, embedding_model="hash") as db:  # a model found by no name
        db.store.create_collection("old", model_id="gone", dimension=8, language="en", settings={})
    other = Settings.build(data_dir=tmp_path, embedding_model="hash-32", auth="none")
    with TestClient(create_app(other)) as c:
        # Another model configured: the collection is still embedded by its own.
        found = c.post("/v1/search", json={"query": "vacation", "collection": "kb"})
        assert found.status_code == 200 and found.json()["data"]
        err = assert_error(
            c.post("/v1/search", json={"query": "vacation", "collection": "old"}),
            409,
            "model_mismatch",
        )
        assert "ENGRAM_EMBEDDING_MODEL" in err["hint"]
        assert_error(
            c.post("/v1/collections/old/documents", json={"id": "x", "text": "more words"}),
            409,
            "model_mismatch",
        )
        ready = c.get("/v1/ready").json()  # its searches fail, not the server's
        assert ready["status"] == "degraded"
        assert ready["checks"]["collection_models"]["status"] == "error"


# -- the one error shape ---------------------------------------------------------------------
def test_validation_errors_have_the_shape(client: TestClient) -> None:
    res = client.post("/v1/search", json={"query": "", "k": 0, "mode": "fuzzy", "extra": 1})
    err = assert_error(res, 422, "invalid_request")
    problems = err["details"]["errors"]
    assert {tuple(p["loc"]) for p in problems} == {
        ("body", "query"),
        ("body", "k"),
        ("body", "mode"),
        ("body", "extra"),
    }
    assert all(set(p) <= {"loc", "msg", "type", "input", "ctx"} for p in problems)
    assert err["message"].startswith("body.") and "(and 3 more)" in err["message"]
    json.dumps(err)  # JSON-safe all the way down

    err = assert_error(
        client.post(
            "/v1/search", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "invalid_request",
    )
    assert err["details"]["errors"][0]["type"] == "json_invalid"
    assert_error(
        client.post("/v1/collections/kb/documents", json={"id": "x"}), 422, "invalid_request"
    )


def test_request_too_large(client: TestClient) -> None:
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    res = client.post(
        "/v1/collections/kb/documents", content=big, headers={"content-type": "application/json"}
    )
    err = assert_error(res, 413, "request_too_large")
    assert f"{MAX_REQUEST_BYTES:,}" in err["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(11):
            yield b" " * (1024 * 1024)

    res = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert assert_error(res, 413, "request_too_large")["hint"]
    upload = {"file": ("big.txt", big, "text/plain")}
    assert_error(client.post("/v1/collections/kb/files", files=upload), 413, "request_too_large")
    assert client.get("/v1/collections").status_code == 200  # the server is fine afterwards


def test_unknown_route_and_method(client: TestClient) -> None:
    err = assert_error(client.get("/v1/nope"), 404, "not_found")
    assert "/v1/nope" in err["message"]
    assert_error(client.get("/collections"), 404, "not_found")
    res = client.put("/v1/search", json={})
    err = assert_error(res, 405, "method_not_allowed")
    assert "POST" in res.headers["allow"] and "POST" in err["hint"]


def test_unexpected_exception_is_a_500_without_the_traceback(
    server_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(server_settings)

    def broken() -> None:
        raise RuntimeError("secret connection string postgres://u:p@db")

    app.dependency_overrides[get_db] = broken
    with TestClient(app) as c, caplog.at_level(logging.ERROR, logger="engram.server"):
        res = c.get("/v1/collections")
        err = assert_error(res, 500, "internal")
        assert err["message"] == "internal error"
        assert "secret" not in res.text and "Traceback" not in res.text
        assert "RuntimeError" not in res.text
        # The route still works for others, and the traceback went to the log.
        assert c.get("/v1/health").status_code == 200
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "GET /v1/collections" in logged[0].getMessage()
    assert "secret" in caplog.text


# -- health, lifespan ------------------------------------------------------------------------
def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    res = client.get("/v1/ready")
    assert res.status_code == 200
    assert res.json()["status"] == "ok"
    checks = res.json()["checks"]
    assert set(checks) == {"store", "embedder", "collection_models", "reranker", "llm", "redis"}
    assert all(c["latency_ms"] >= 0 for c in checks.values())
    assert {name: c["status"] for name, c in checks.items()} == {
        "store": "ok",
        "embedder": "ok",
        "collection_models": "ok",
        "reranker": "ok",
        "llm": "not_configured",
        "redis": "not_configured",
    }


def test_not_ready_when_the_model_cannot_load(
    server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engram.open(settings=server_settings) as db:

        def unavailable() -> None:
            raise ModelUnavailable("model 'x' not found", hint="install it")

        monkeypatch.setattr(db, "embedder", unavailable)
        with TestClient(create_app(server_settings, db=db)) as c:
            err = assert_error(c.get("/v1/ready"), 503, "not_ready")
            checks = err["details"]["checks"]
            assert checks["store"]["status"] == "ok"
            assert checks["embedder"] == {
                "status": "error",
                "latency_ms": checks["embedder"]["latency_ms"],
                "error": "model 'x' not found",
            }
            assert c.get("/v1/health").status_code == 200
        # A database passed in belongs to the caller: the app leaves it open.
        assert db.collections() == []


def test_app_owns_and_closes_its_database(server_settings: Settings) -> None:
    app = create_app(server_settings)
    with TestClient(app) as c:
        add_all(c)
        assert app.state.db is not None
    assert app.state.db is None
    with TestClient(app) as c:  # can start again: a fresh database each time
        assert c.get("/v1/collections/kb").json()["document_count"] == len(DOCS)


# -- OpenAPI ---------------------------------------------------------------------------------
def test_openapi_operation_ids_and_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "engram" and schema["info"]["version"]
    assert client.get("/docs").status_code == 200
    operation_ids = []
    for path, operations in schema["paths"].items():
        assert path.startswith("/v1/")
        for method, op in operations.items():
            assert op.get("operationId"), f"{method} {path} has no operationId"
            operation_ids.append(op["operationId"])
            errors = {s: r for s, r in op["responses"].items() if int(s) >= 400}
            assert "500" in errors
            for status, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse", (method, path, status)
    assert len(operation_ids) == len(set(operation_ids))
    assert {
        "listCollections",
        "getCollection",
        "deleteCollection",
        "createDocument",
        "createDocuments",
        "uploadFile",
        "listDocuments",
        "getDocument",
        "deleteDocument",
        "getDocumentVersion",
        "diffDocumentVersions",
        "restoreDocumentVersion",
        "purgeVersions",
        "search",
        "suggest",
        "chat",
        "createChatCompletion",
        "listModels",
        "createEmbeddings",
        "health",
        "ready",
        "addMemory",
        "listMemories",
        "searchMemories",
        "getMemory",
        "updateMemory",
        "deleteMemory",
        "memoryHistory",
        "createConversation",
        "listConversations",
        "getConversation",
        "deleteConversation",
        "appendMessage",
        "appendMessages",
        "recall",
        "listMessages",
        "exportUser",
        "listEventKinds",
        "registerEventKind",
        "deleteEventKind",
        "exportEvents",
        "eraseUser",
        "recordEvent",
        "getStats",
        "listImports",
        "rollbackImport",
        "listJobs",
        "getJob",
        "retryJob",
        "createCollection",
        "putState",
        "getState",
        "deleteState",
        "listState",
        "searchState",
        "listStateNamespaces",
    } == set(operation_ids)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


# -- over a real socket ----------------------------------------------------------------------
@pytest.fixture
def live_server(server_settings: Settings) -> Iterator[str]:
    with serve_app(create_app(server_settings)) as url:
        yield url


def test_over_a_real_socket(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as http:
        assert http.get("/v1/health").json() == {"status": "ok"}
        res = http.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
        assert res.status_code == 201
        res = http.post("/v1/search", json={"query": "rotate api key", "collection": "kb", "k": 2})
        assert res.status_code == 200
        assert res.json()["data"][0]["document"] == "it/keys.md"
        assert_error(http.get("/v1/collections/missing"), 404, "collection_not_found")
        assert http.get("/v1/ready").status_code == 200


def test_concurrent_ingest_and_search_over_a_socket(live_server: str) -> None:
    """Handlers run in a threadpool on one Engram: concurrent writes and reads all succeed."""
    failures: list[str] = []

    def writer(n: int) -> None:
        with httpx.Client(base_url=live_server, timeout=60) as http:
            for i in range(8):
                doc = {"id": f"w{n}-{i}", "text": f"note {i} from writer {n} about vacation days"}
                res = http.post("/v1/collections/kb/documents", json=doc)
                if res.status_code != 201:
                    failures.append(res.text)

    def reader() -> None:
        with httpx.Client(base_url=live_server, timeout=60) as http:
            for _ in range(15):
                res = http.post("/v1/search", json={"query": "vacation", "collection": "kb"})
                if res.status_code != 200:
                    failures.append(res.text)

    with httpx.Client(base_url=live_server) as http:
        assert http.post("/v1/collections/kb/documents:batch", json={"documents": DOCS}).is_success
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with httpx.Client(base_url=live_server) as http:
        assert http.get("/v1/collections/kb").json()["document_count"] == len(DOCS) + 24


# -- engram serve ----------------------------------------------------------------------------
@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    # `serve` hands options to worker processes through the environment: setting the
    # variable here makes monkeypatch restore it (to unset) after the test.
    monkeypatch.setenv("ENGRAM_AUTH", "api_key")
    monkeypatch.setenv("ENGRAM_HTTP_HEADER_TIMEOUT", "10")
    monkeypatch.setenv("ENGRAM_HTTP_BODY_TIMEOUT", "60")
    return calls


def test_serve_binds_loopback_with_an_app_factory(uvicorn_calls: list[dict[str, Any]]) -> None:
    res = CliRunner().invoke(cli, ["serve"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (call,) = uvicorn_calls
    assert call["host"] == "127.0.0.1" and call["port"] == 8000 and call["factory"] is True
    app = call["app"]()
    assert app.title == "engram"
    assert "Warning" not in res.output


def test_serve_workers_and_dev_use_the_import_string(
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    res = CliRunner().invoke(
        cli, ["--model", "hash-32", "serve", "--workers", "2", "--port", "9001"]
    )
    assert res.exit_code == 0, res.output
    call = uvicorn_calls[-1]
    assert call["app"] == "engram.server.app:create_app_from_env"
    assert call["workers"] == 2 and call["port"] == 9001 and call["reload"] is False
    # The worker processes build their settings from the environment the CLI set.
    from engram.server.app import create_app_from_env

    assert create_app_from_env().state.settings.embedding_model == "hash-32"

    res = CliRunner().invoke(cli, ["serve", "--dev"])
    assert res.exit_code == 0 and uvicorn_calls[-1]["reload"] is True


def test_serve_refusals_and_warnings(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    res = CliRunner().invoke(cli, ["serve", "--dev", "--workers", "2"])
    assert res.exit_code == 2 and "--dev reloads a single process" in res.output

    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])  # API keys: any address
    assert res.exit_code == 0, res.output
    assert uvicorn_calls[-1]["host"] == "0.0.0.0"

    count = len(uvicorn_calls)
    res = CliRunner().invoke(cli, ["serve", "--dev", "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "without authentication: refused on 0.0.0.0" in res.output
    assert len(uvicorn_calls) == count

    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "1")
    count = len(uvicorn_calls)
    res = CliRunner().invoke(cli, ["serve"])
    assert res.exit_code == 1
    assert "Error: invalid setting chunk_tokens" in res.output
    assert len(uvicorn_calls) == count  # nothing started


def test_startup_warms_the_model_and_the_indexes(tmp_path: Path) -> None:
    """``engram serve`` accepts requests once the embedding model and every collection's
    indexes are loaded: the first search pays for neither."""
    with engram.open(tmp_path) as db:  # the bundled model, end to end
        db.add([{"id": "a", "text": "Vacation requests go to your manager."}], collection="kb")
        db.add([{"id": "b", "text": "Note."}], collection="notes", tenant="acme")
    settings = Settings.build(data_dir=tmp_path, auth="none")
    with TestClient(create_app(settings)) as client:
        db = client.app.state.db  # type: ignore[attr-defined]
        assert db.embedder().loaded
        assert len(db.store._indexes) == 2  # both tenants' collections
        # The route templates (from the OpenAPI schema, ≈ 1.5 s to build) are ready too.
        assert client.app.state.route_templates  # type: ignore[attr-defined]
        res = client.post("/v1/search", json={"query": "vacation", "collection": "kb"})
        assert res.json()["data"][0]["document"] == "a"


def test_create_a_collection_with_its_language_and_fusion(client: TestClient) -> None:
    res = client.post(
        "/v1/collections",
        json={"name": "lois", "language": "fr", "fusion": "rrf", "fusion_alpha": 0.5},
    )
    assert res.status_code == 201, res.text
    body = res.json()
    assert (body["name"], body["language"], body["document_count"]) == ("lois", "fr", 0)
    assert body["settings"]["fusion"] == "rrf" and body["settings"]["fusion_alpha"] == 0.5
    assert_error(
        client.post("/v1/collections", json={"name": "lois", "language": "fr"}), 409, "conflict"
    )
    # The server's default language is auto: an empty collection needs one named.
    assert_error(client.post("/v1/collections", json={"name": "x"}), 422, "invalid_input")
    assert_error(
        client.post("/v1/collections", json={"name": "x", "language": "de"}), 422, "invalid_request"
    )
    unknown = client.post(
        "/v1/collections", json={"name": "x", "language": "en", "model": "bge-m3"}
    )
    assert_error(unknown, 422, "invalid_input")
    assert client.get("/v1/collections/x").status_code == 404  # nothing half-made
    # Writes go into it, and its search fuses as it was created to (RRF scores are tiny).
    docs = [{"id": "a", "text": "Les congés payés sont de cinq semaines."}]
    assert (
        client.post("/v1/collections/lois/documents:batch", json={"documents": docs}).status_code
        == 201
    )
    hit = client.post("/v1/search", json={"query": "congés payés", "collection": "lois"})
    assert hit.status_code == 200 and hit.json()["data"][0]["score"] < 0.05
    # A query may fuse its own way (as Qdrant's query API allows): explain says which.
    body = {"query": "congés payés", "collection": "lois"}
    own = client.post("/v1/search", json={**body, "fusion": "dbsf", "alpha": 0.3}).json()
    fused = own["data"][0]["explain"]["fused"]
    assert own["data"][0]["score"] > 0.05 and (fused["method"], fused["alpha"]) == ("dbsf", 0.3)
    assert fused["alpha_from"] == "fixed"
    auto = client.post("/v1/search", json={**body, "alpha": "auto"}).json()  # the rule's α
    fused = auto["data"][0]["explain"]["fused"]
    assert (fused["method"], fused["alpha_from"]) == ("rrf", "auto: 2 query words")
    assert fused["alpha"] == auto_alpha(2)
    for bad in ({"fusion": "max"}, {"alpha": 1.5}, {"alpha": "high"}):
        assert_error(client.post("/v1/search", json={**body, **bad}), 422, "invalid_request")


def test_serve_on_a_busy_port_says_so_in_one_line(uvicorn_calls: list[dict[str, Any]]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(cli, ["serve", "--port", str(port)])
    assert res.exit_code == 1 and not uvicorn_calls
    assert f"port {port} on 127.0.0.1 is already in use" in res.output
    assert "--port" in res.output and "Traceback" not in res.output
