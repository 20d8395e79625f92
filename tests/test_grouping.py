"""group_by="document": one result per document, its best chunk, on both backends."""

from __future__ import annotations

import pytest

import engram
from engram.errors import InvalidInput


def _corpus() -> list[dict[str, str]]:
    # "long" has many chunks about tides (chunk_tokens=64 in the test settings); the others
    # one chunk each, so per chunk, "long" crowds the first page.
    long = " ".join(
        f"Section {i}. The tides rise and fall twice a day at the harbour." * 3 for i in range(12)
    )
    docs = [{"id": "long", "text": long}]
    docs += [
        {"id": f"short{i}", "text": f"Note {i}: tides at the pier, table {i}."} for i in range(6)
    ]
    return docs


def test_one_result_per_document_with_the_rest_counted(db: engram.Engram) -> None:
    db.add(_corpus())
    chunks = db.search("tides harbour", mode="keyword", k=20).data
    per_doc = [h.document for h in chunks]
    assert per_doc.count("long") > 3 and all(h.more_chunks is None for h in chunks)

    grouped = db.search("tides harbour", mode="keyword", k=20, group_by="document").data
    keys = [h.document for h in grouped]
    assert len(keys) == len(set(keys)) == 7
    # Each document ranks where its best chunk ranked, and shows that chunk.
    assert keys == list(dict.fromkeys(per_doc))[: len(keys)]
    best = {h.document: h for h in reversed(chunks)}
    for hit in grouped:
        assert (hit.chunk_id, hit.score) == (best[hit.document].chunk_id, best[hit.document].score)
    assert grouped[keys.index("long")].more_chunks == per_doc.count("long") - 1
    assert all(h.more_chunks == 0 for h in grouped if h.document != "long")
    assert grouped[0].to_dict()["more_chunks"] == grouped[0].more_chunks

    # k and offset count documents.
    first = db.search("tides", mode="hybrid", k=3, group_by="document")
    second = db.search("tides", mode="hybrid", k=3, offset=3, group_by="document")
    assert first.next_offset == 3 and len(first.data) == 3
    assert not {h.document for h in first.data} & {h.document for h in second.data}

    with pytest.raises(InvalidInput, match="group_by"):
        db.search("tides", group_by="page")  # type: ignore[arg-type]


def test_over_http_and_the_cli(tmp_path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from engram.cli.main import cli
    from engram.config import Settings
    from engram.server.app import create_app

    settings = Settings.build(
        data_dir=tmp_path / "d", auth="none", embedding_model="hash", chunk_tokens=64
    )
    with TestClient(create_app(settings)) as client:
        docs = _corpus()
        assert (
            client.post(
                "/v1/collections/default/documents:batch", json={"documents": docs}
            ).status_code
            == 201
        )
        body = {"query": "tides harbour", "mode": "keyword", "k": 20, "group_by": "document"}
        hits = client.post("/v1/search", json=body).json()["data"]
        assert len({h["document"] for h in hits}) == len(hits) == 7
        assert max(h["more_chunks"] for h in hits) > 2
        plain = client.post("/v1/search", json={**body, "group_by": None}).json()["data"]
        assert all(h["more_chunks"] is None for h in plain)
        bad = client.post("/v1/search", json={**body, "group_by": "page"})
        assert bad.status_code == 422
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "64")
    args = ["--data-dir", str(tmp_path / "d"), "search", "tides harbour", "--mode", "keyword"]
    out = CliRunner().invoke(cli, [*args, "--group-by", "document", "--json"])
    assert out.exit_code == 0, out.output
    assert len({h["document"] for h in json.loads(out.output)["data"]}) == 7
    out = CliRunner().invoke(cli, [*args, "--group-by", "document"])
    assert "more passage(s) of this document" in out.output
