"""Operations: Prometheus metrics, request ids, JSON access logs, analytics events and stats,
and readiness of the optional dependencies."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import engram
from engram.cli import cli
from engram.config import Settings
from engram.server import create_app
from engram.server.logs import JsonFormatter, redact
from engram.server.metrics import Metrics
from engram.server.observability import observe_ingest
from engram.server.recorder import EventRecorder
from engram.store.records import EventWrite
from engram.store.sqlite import SQLiteStore
from engram.types import IngestReport

DOCS = [
    {"id": "hr/vacation.md", "text": "Employees get 25 vacation days per year."},
    {"id": "it/keys.md", "text": "Rotate an API key every ninety days."},
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.build(data_dir=tmp_path, embedding_model="hash", chunk_tokens=64, auth="none")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        res = c.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
        assert res.status_code == 201, res.text
        yield c


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called ``name`` in a Prometheus exposition."""
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = [
        v for sample_labels, v in samples(text, name) if labels.items() <= sample_labels.items()
    ]
    assert found, f"no sample {name}{labels}"
    return sum(found)


# -- metrics ---------------------------------------------------------------------------------
def test_metrics_by_route_template(client: TestClient) -> None:
    for query in ("vacation days", "rotate keys"):
        assert client.post("/v1/search", json={"query": query, "collection": "kb"}).is_success
    assert client.get("/v1/collections/kb").status_code == 200
    assert client.get("/v1/collections/missing").status_code == 404
    assert client.get("/v1/no/such/route").status_code == 404

    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    text = res.text
    total = "engram_http_requests_total"
    assert value(text, total, method="POST", route="/v1/search", status="200") == 2
    assert value(text, total, route="/v1/collections/{name}/documents:batch", status="201") == 1
    assert value(text, total, method="GET", route="/v1/collections/{name}", status="200") == 1
    assert value(text, total, method="GET", route="/v1/collections/{name}", status="404") == 1
    assert value(text, total, route="unmatched", status="404") == 1
    routes = {labels["route"] for labels, _ in samples(text, total)}
    assert not any("kb" in r or "missing" in r or "/no/such" in r for r in routes), routes
    duration = "engram_http_request_duration_seconds_count"
    assert value(text, duration, method="POST", route="/v1/search", status="200") == 2

    legs = {labels["leg"] for labels, _ in samples(text, "engram_search_leg_seconds_count")}
    assert {"keyword", "vector", "embed", "fusion", "fetch"} <= legs
    assert value(text, "engram_embed_seconds_count", kind="query") == 2
    assert value(text, "engram_job_queue_depth", status="queued") == 0
    assert value(text, "engram_job_queue_depth", status="running") == 0
    # The metrics endpoint is not part of the API schema.
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_cache_counters_and_helpers(client: TestClient) -> None:
    metrics: Metrics = client.app.state.metrics  # type: ignore[attr-defined]
    metrics.cache_hit("embedding")
    metrics.cache_hit("embedding")
    metrics.cache_miss("search")
    text = client.get("/metrics").text
    assert value(text, "engram_cache_hits_total", cache="embedding") >= 2
    assert value(text, "engram_cache_misses_total", cache="search") >= 1


def test_each_app_has_its_own_registry(settings: Settings, tmp_path: Path) -> None:
    other = settings.model_copy(update={"data_dir": tmp_path / "other"})
    with TestClient(create_app(settings)) as a, TestClient(create_app(other)) as b:
        for _ in range(3):
            a.get("/v1/health")
        b.get("/v1/health")
        assert value(a.get("/metrics").text, "engram_http_requests_total", route="/v1/health") == 3
        assert value(b.get("/metrics").text, "engram_http_requests_total", route="/v1/health") == 1


def test_process_and_disk_metrics(client: TestClient) -> None:
    text = client.get("/metrics").text
    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "engram_data_dir_free_bytes",
    ):
        assert value(text, name) > 0, name


def test_llm_metrics_per_model_outcome_and_fallback(tmp_path: Path) -> None:
    """A chain whose first model is down: its failed call, the fallback's answer, the
    streamed pieces, and one answer counted as given by a fallback."""
    from test_llms import FakeServer, closed_port_url

    with FakeServer("openai") as server:
        spec = f"vllm:down@{closed_port_url()}, vllm:test-model@{server.base_url}"
        settings = Settings.build(
            data_dir=tmp_path, embedding_model="hash", auth="none", llm=spec, llm_retries=0
        )
        with TestClient(create_app(settings)) as c:
            c.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
            body = {"question": "vacation days?", "collection": "kb"}
            assert c.post("/v1/chat", json=body).status_code == 200
            with c.stream("POST", "/v1/chat", json={**body, "stream": True}) as r:
                assert "event: done" in r.read().decode()
            text = c.get("/metrics").text
    down, up = "vllm:down", "vllm:test-model"
    assert value(text, "engram_llm_requests_total", model=down, outcome="unavailable") == 2
    assert value(text, "engram_llm_requests_total", model=up, outcome="ok") == 2
    assert value(text, "engram_llm_request_duration_seconds_count", model=up) == 2
    assert value(text, "engram_llm_stream_deltas_total", model=up) >= 2
    assert value(text, "engram_llm_output_chars_total", model=up) > 0
    assert value(text, "engram_llm_fallbacks_total", model=up) == 2


def test_ingestion_metrics() -> None:
    metrics = Metrics()
    report = IngestReport(added=2, updated=1, unchanged=4, failed=1)
    report.chunks_embedded, report.chunks_reused, report.model_seconds = 7, 3, 0.25
    metrics.observe_ingest(report)
    observe_ingest(report)  # outside a request: does nothing, raises nothing
    text = _exposition(metrics)
    name = "engram_ingested_documents_total"
    assert {
        o: value(text, name, outcome=o) for o in ("added", "updated", "unchanged", "failed")
    } == {
        "added": 2,
        "updated": 1,
        "unchanged": 4,
        "failed": 1,
    }
    assert value(text, "engram_ingested_chunks_total", source="embedded") == 7
    assert value(text, "engram_ingested_chunks_total", source="reused") == 3
    assert value(text, "engram_embed_seconds_sum", kind="passage") == pytest.approx(0.25)


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


# -- request ids -----------------------------------------------------------------------------
def test_request_id_is_generated_or_propagated(client: TestClient) -> None:
    first = client.get("/v1/health").headers["x-request-id"]
    second = client.get("/v1/health").headers["x-request-id"]
    assert len(first) == 32 and int(first, 16) >= 0 and first != second

    given = "req-42.retry:1"
    assert (
        client.get("/v1/health", headers={"X-Request-ID": given}).headers["x-request-id"] == given
    )
    # Errors carry it too.
    res = client.get("/v1/collections/missing", headers={"X-Request-ID": given})
    assert res.status_code == 404 and res.headers["x-request-id"] == given

    for unsafe in ("a" * 129, "two words", "<script>", "a\tb"):
        got = client.get("/v1/health", headers={"X-Request-ID": unsafe}).headers["x-request-id"]
        assert got != unsafe and len(got) == 32


# -- JSON access logs ------------------------------------------------------------------------
def test_access_log_is_one_json_line_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", chunk_tokens=64)
    with engram.open(settings=settings) as db:
        record, key = db.create_key(tenant="acme", scopes=["write"])
    formatter = JsonFormatter()
    with TestClient(create_app(settings)) as c, caplog.at_level(logging.INFO, "engram.access"):
        headers = {"Authorization": f"Bearer {key}"}
        c.post("/v1/collections/kb/documents", json=DOCS[0], headers=headers)
        caplog.clear()
        res = c.post(
            "/v1/search",
            json={"query": "vacation", "collection": "kb"},
            headers={"X-API-Key": key, "X-Request-ID": "trace-1"},
        )
        assert res.status_code == 200
        lines = [formatter.format(r) for r in caplog.records if r.name == "engram.access"]
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["level"] == "info" and line["logger"] == "engram.access"
    assert line["ts"].endswith("+00:00")
    assert {k: line[k] for k in ("request_id", "method", "route", "path", "status")} == {
        "request_id": "trace-1",
        "method": "POST",
        "route": "/v1/search",
        "path": "/v1/search",
        "status": 200,
    }
    assert line["duration_ms"] > 0 and line["client_ip"] == "testclient"
    assert line["tenant"] == "acme" and line["key_id"] == record.id
    secret = key.split("_", 2)[2]  # egm_<id>_<secret>; the secret itself may hold "_"
    assert len(secret) > 20 and secret not in caplog.text and secret not in lines[0]
    assert "Bearer" not in caplog.text


def test_formatter_redacts_secrets_and_adds_the_request_id() -> None:
    key = "egm_0123456789ab_" + "S" * 43
    logger = logging.getLogger("engram.test")
    record = logger.makeRecord(
        "engram.test",
        logging.WARNING,
        __file__,
        1,
        "calling %s with Authorization: Bearer %s and password=hunter2",
        ("postgres://user:pa55word@db:5432/x", key),
        None,
        extra={"fields": {"headers": {"Authorization": "Bearer abc", "X-API-Key": key}, "n": 3}},
    )
    out = JsonFormatter().format(record)
    assert "S" * 20 not in out and "pa55word" not in out and "hunter2" not in out
    assert "abc" not in out
    line = json.loads(out)
    assert line["headers"] == {"Authorization": "[redacted]", "X-API-Key": "[redacted]"}
    assert line["n"] == 3 and "request_id" not in line  # not inside a request
    assert "Bearer" not in line["message"] and "[redacted]" in line["message"]
    # The key id stays: it names the key and is not a secret.
    assert redact(f"key {key} revoked") == "key egm_0123456789ab_[redacted] revoked"
    assert redact("token: abc123 and api_key=xyz") == "token: [redacted] and api_key=[redacted]"


def test_logging_config_writes_json_lines() -> None:
    code = (
        "import logging, logging.config\n"
        "from engram.server.logs import logging_config\n"
        "logging.config.dictConfig(logging_config('info'))\n"
        "logging.getLogger('engram.access').info('GET / %s', 'Bearer abc',"
        " extra={'fields': {'status': 200, 'api_key': 'k'}})\n"
        "logging.getLogger('uvicorn.access').info('dropped: engram logs access itself')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["message"] == "GET / Bearer [redacted]"
    assert line["status"] == 200 and line["api_key"] == "[redacted]"


def test_serve_installs_json_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    res = CliRunner().invoke(cli, ["serve"])
    assert res.exit_code == 0, res.output
    (call,) = calls
    assert call["access_log"] is False
    assert call["log_config"]["formatters"]["json"]["()"].endswith("JsonFormatter")


# -- analytics events and stats --------------------------------------------------------------
def at(day: str, hour: int = 12) -> str:
    return f"{day}T{hour:02d}:00:00.000000+00:00"


def test_searches_chats_and_messages_are_recorded(client: TestClient) -> None:
    for query in ("Vacation days", "vacation days", "rotate key"):
        assert client.post("/v1/search", json={"query": query, "collection": "kb"}).is_success
    nothing = {"query": "zebra", "collection": "kb", "mode": "keyword"}
    assert client.post("/v1/search", json=nothing).json()["count"] == 0
    # A failed search is not an event.
    assert client.post("/v1/search", json={"query": "x", "collection": "nope"}).status_code == 404
    chat = {"question": "How many vacation days?", "collection": "kb", "user_id": "ann"}
    assert client.post("/v1/chat", json=chat).status_code == 200
    conversation = client.post("/v1/conversations", json={"user_id": "bob"}).json()
    res = client.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"role": "user", "content": "hi"}
    )
    assert res.status_code == 201
    assert client.post("/v1/memories", json={"content": "likes tea", "user_id": "cy"}).is_success

    stats = client.get("/v1/admin/stats", params={"days": 7}).json()
    assert stats["days"] == 7
    assert stats["counts"] == {"search": 4, "chat": 1, "message": 1, "memory": 1, "ingest": 1}
    assert [d["count"] for d in stats["queries_per_day"]] == [4]
    assert stats["zero_result_rate"] == pytest.approx(0.25)
    assert stats["top_queries"][0] == {"query": "vacation days", "count": 2}
    latency = stats["search_latency_ms"]
    assert latency["count"] == 4 and 0 < latency["p50"] <= latency["p95"]
    assert stats["active_users"]["total"] == 3  # ann (chat), bob (message), cy (memory)
    assert [m["count"] for m in stats["active_users"]["monthly"]] == [3]


def test_click_and_rating_events(client: TestClient) -> None:
    ok = [
        {"kind": "click", "query": "vacation", "document": "hr/vacation.md", "user_id": "u1"},
        {"kind": "click", "chunk_id": 3},
        {"kind": "rating", "rating": -1, "query": "vacation", "user_id": "u2"},
        {"kind": "rating", "rating": 5},
    ]
    for body in ok:
        res = client.post("/v1/events", json=body)
        assert res.status_code == 202 and res.json() == {"status": "accepted"}, res.text
    # An unregistered kind: refused with the kinds the tenant may post (engram.analytics).
    res = client.post("/v1/events", json={"kind": "view", "document": "d"})
    assert res.status_code == 422 and res.json()["error"]["code"] == "invalid_input"
    assert "click, rating" in res.json()["error"]["hint"]
    bad = [
        {"kind": "rating"},
        {"kind": "rating", "rating": 6},
        {"kind": "click"},
        {"kind": "click", "document": "d", "rating": 1},
        {"kind": "click", "document": "d", "extra": 1},
    ]
    for body in bad:
        res = client.post("/v1/events", json=body)
        assert res.status_code == 422 and res.json()["error"]["code"] == "invalid_request", body
    stats = client.get("/v1/admin/stats").json()
    assert stats["counts"] == {"click": 2, "rating": 2, "ingest": 1}
    assert stats["active_users"]["total"] == 2


def test_stats_need_the_admin_scope_and_are_tenant_scoped(tmp_path: Path) -> None:
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", chunk_tokens=64)
    with engram.open(settings=settings) as db:
        keys = {
            name: db.create_key(tenant=tenant, scopes=[scope])[1]
            for name, tenant, scope in (
                ("acme_read", "acme", "read"),
                ("acme_write", "acme", "write"),
                ("acme_admin", "acme", "admin"),
                ("globex_admin", "globex", "admin"),
            )
        }

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name]}"}

    with TestClient(create_app(settings)) as c:
        assert c.post(
            "/v1/collections/kb/documents", json=DOCS[0], headers=auth("acme_write")
        ).is_success
        for _ in range(2):
            res = c.post(
                "/v1/search",
                json={"query": "vacation", "collection": "kb"},
                headers=auth("acme_read"),
            )
            assert res.status_code == 200
        assert (
            c.post(
                "/v1/events", json={"kind": "rating", "rating": 1}, headers=auth("acme_read")
            ).status_code
            == 202
        )

        assert c.get("/v1/admin/stats").status_code == 401
        for name in ("acme_read", "acme_write"):
            res = c.get("/v1/admin/stats", headers=auth(name))
            assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
        acme = c.get("/v1/admin/stats", headers=auth("acme_admin")).json()
        # and the creation and the day's first use of each of acme's three keys
        assert acme["counts"] == {
            "search": 2,
            "rating": 1,
            "ingest": 1,
            "key_created": 3,
            "login": 3,
        }
        assert acme["top_queries"] == [{"query": "vacation", "count": 2}]
        globex = c.get("/v1/admin/stats", headers=auth("globex_admin")).json()
        assert globex["counts"] == {"key_created": 1, "login": 1} and globex["top_queries"] == []
        res = c.get("/v1/admin/stats", params={"days": 0}, headers=auth("acme_admin"))
        assert res.status_code == 422


def test_recorder_batches_flushes_and_counts_failures(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    recorder = EventRecorder(store)
    for i in range(1234):
        recorder.record(EventWrite("acme", "search", query=f"q{i % 7}", result_count=i % 2))
    assert recorder.flush()
    assert store.event_stats("acme", "2000", "9999")["counts"] == {"search": 1234}
    recorder.close()

    dropped: list[int] = []
    broken = EventRecorder(store, on_drop=dropped.append)
    store.close()  # writes now fail: the events are dropped and counted, nothing raises
    broken.record(EventWrite("acme", "search"))
    assert broken.flush()
    broken.close()
    assert dropped == [1]


def test_recorder_retries_a_busy_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch refused because another process holds the write lock is tried again, not
    dropped (4 batches were lost this way with two workers on one data directory)."""
    from engram.errors import StoreLocked

    store = SQLiteStore(tmp_path / "engram.db")
    real, refusals = store.record_events, [2]

    def busy_twice(batch: list[EventWrite], *, outbox: bool = False) -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise StoreLocked("the database is locked by another process")
        real(batch, outbox=outbox)

    monkeypatch.setattr(store, "record_events", busy_twice)
    dropped: list[int] = []
    recorder = EventRecorder(store, on_drop=dropped.append)
    recorder.record(EventWrite("acme", "search"))
    assert recorder.flush()
    recorder.close()
    assert dropped == [] and store.event_stats("acme", "2000", "9999")["counts"] == {"search": 1}
    store.close()


# -- readiness -------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ready_reports_optional_dependencies_as_degraded(settings: Settings) -> None:
    broken = settings.model_copy(
        update={
            "reranker_model": "no-such-reranker",
            "llm": f"ollama:llama3.2@http://127.0.0.1:{_closed_port()}",
        }
    )
    with TestClient(create_app(broken)) as c:
        res = c.get("/v1/ready")
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["status"] == "degraded"
        checks = body["checks"]
        assert checks["store"]["status"] == checks["embedder"]["status"] == "ok"
        assert checks["reranker"]["status"] == "error"
        assert "no-such-reranker" in checks["reranker"]["error"]
        assert checks["llm"]["status"] == "error"
        assert "ollama:llama3.2" in checks["llm"]["error"]
        assert checks["redis"]["status"] == "not_configured"
