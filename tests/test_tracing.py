"""OpenTelemetry spans (ENGRAM_TRACING): checked with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from engram import tracing
from engram.config import Settings
from engram.server import create_app

DOCS = [
    {"id": "a", "text": "Vacation requests go to your manager."},
    {"id": "b", "text": "Rotate an API key every ninety days."},
]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


def _tree(finished: tuple[ReadableSpan, ...]) -> dict[str, Any]:
    by_id = {s.context.span_id: s for s in finished}
    return {
        s.name: (by_id[s.parent.span_id].name if s.parent and s.parent.span_id in by_id else None)
        for s in finished
    }


def test_a_search_request_is_one_trace(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    with TestClient(create_app(settings)) as client:
        res = client.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
        assert res.status_code == 201
        ingest = _tree(spans.get_finished_spans())
        assert ingest["ingest"] == "POST /v1/collections/{name}/documents:batch"
        assert ingest["embed"] == "ingest" and ingest["store.transaction"] == "ingest"
        spans.clear()
        res = client.post("/v1/search", json={"query": "vacation manager", "collection": "kb"})
        assert res.status_code == 200
    finished = spans.get_finished_spans()
    tree = _tree(finished)
    assert tree["POST /v1/search"] is None  # the root
    assert tree["search"] == "POST /v1/search"
    for leg in ("embed", "keyword leg", "vector leg", "fusion"):
        assert tree[leg] == "search", (leg, tree)
    assert len({s.context.trace_id for s in finished}) == 1
    root = next(s for s in finished if s.name == "POST /v1/search")
    assert root.attributes["http.route"] == "/v1/search"
    assert root.attributes["http.response.status_code"] == 200


def test_the_llm_call_is_a_span(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    from test_llms import FakeServer

    with FakeServer("openai") as server:
        settings = Settings.build(
            data_dir=tmp_path,
            embedding_model="hash",
            auth="none",
            llm=f"vllm:test-model@{server.base_url}",
        )
        with TestClient(create_app(settings)) as client:
            client.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
            res = client.post("/v1/chat", json={"question": "vacation?", "collection": "kb"})
            assert res.status_code == 200
    llm = [s for s in spans.get_finished_spans() if s.name == "llm"]
    assert llm and llm[0].attributes["llm.model"] == "vllm:test-model"
    assert _tree(spans.get_finished_spans())["llm"] == "POST /v1/chat"


def test_off_by_default_and_free() -> None:
    assert not tracing.enabled()
    with tracing.span("anything", a=1) as span:
        span.set_attribute("b", 2)  # a no-op stand-in
    assert tracing.start("x") is tracing.NO_SPAN
