"""Versions you can use: read, compare, restore and purge the versions a document keeps,
through the library, the HTTP API, both clients and the CLI, on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blocking import Blocking
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from live import serve_app

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import DocumentNotFound, InvalidInput
from engram.providers.embedders.base import Embedder
from engram.server import create_app
from engram.transfer import export_data, import_data

V1 = (
    "Vacation policy. Employees get twenty days of paid vacation each year.\n\n"
    "Unused days expire at the end of March."
)
V2 = (
    "Vacation policy. Employees get twenty-five days of paid vacation each year.\n\n"
    "Unused days carry over to the next year."
)
V3 = "Vacation policy. Vacation is unlimited, subject to manager approval."


def add(db: engram.Engram, text: str, key: str = "policy", **metadata: Any) -> None:
    report = db.add([{"id": key, "text": text, "title": "Policy", "metadata": metadata}])
    assert not report.failed, report.errors


def three_versions(db: engram.Engram) -> None:
    add(db, V1, year=2023, owner="hr")
    add(db, V2, year=2024, owner="hr")
    add(db, V3, year=2025, approver="manager")


class Counting:
    """Wraps an embedder and counts the passage texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.passages: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed_batch(self, texts: list[str], kind: str = "passage") -> Any:
        if kind == "passage":
            self.passages.extend(texts)
        return self.inner.embed_batch(texts, kind=kind)


@pytest.fixture
def counted(db: engram.Engram) -> Iterator[Counting]:
    counter = Counting(db.embedder())
    db.embedders.install(counter)  # type: ignore[arg-type]
    yield counter


# -- library -------------------------------------------------------------------------------------
def test_every_version_reads_back_exactly(db: engram.Engram) -> None:
    three_versions(db)
    assert [(v.version, v.kept) for v in db.versions("policy")] == [(1, True), (2, True), (3, True)]
    first = db.document_version("policy", 1)
    assert (first.version, first.current, first.title) == (1, False, "Policy")
    assert first.text == V1
    assert first.metadata == {"year": 2023, "owner": "hr"}
    assert first.chunks and all(first.text[c.start : c.end] == c.text for c in first.chunks)
    current = db.document_version("policy")
    assert (current.version, current.current, current.text) == (3, True, V3)
    assert db.document_text("policy", version=2) == V2
    assert db.document_text("policy") == V3
    with pytest.raises(DocumentNotFound):
        db.document_version("policy", 9)


def test_search_sees_the_current_version_only(db: engram.Engram) -> None:
    three_versions(db)
    # Words only past versions had: no keyword hit at all.
    assert db.search("unused expire March", mode="keyword", k=10).results == []
    for mode in ("vector", "hybrid"):
        hits = db.search("unused days expire March", mode=mode, k=10).results
        assert hits and {h.version for h in hits} == {3}, mode
        assert all("expire" not in h.text for h in hits)


def test_diff_shows_text_and_metadata_changes(db: engram.Engram) -> None:
    three_versions(db)
    change = db.diff_versions("policy", 1, 3)
    assert (change.from_version, change.to_version) == (1, 3)
    assert change.text.startswith("--- policy@1\n+++ policy@3\n")
    assert "-Unused days expire at the end of March.\n" in change.text
    assert "+Vacation policy. Vacation is unlimited, subject to manager approval.\n" in change.text
    assert change.title is None
    assert [(m.field, m.change, m.old, m.new) for m in change.metadata] == [
        ("approver", "added", None, "manager"),
        ("owner", "removed", "hr", None),
        ("year", "changed", 2023, 2025),
    ]
    latest = db.diff_versions("policy")  # the previous version to the current one
    assert (latest.from_version, latest.to_version) == (2, 3)
    assert db.diff_versions("policy", 2, 2).identical


def test_restore_reuses_cached_embeddings(db: engram.Engram, counted: Counting) -> None:
    three_versions(db)
    assert counted.passages  # the counter sees what the collection embeds
    counted.passages.clear()
    restored = db.restore_version("policy", 1)
    assert counted.passages == []  # every chunk's vector came from the cache
    assert restored.version == 4
    assert db.versions("policy")[-1].restored_from == 1
    now = db.document_version("policy")
    assert (now.text, now.metadata, now.restored_from) == (V1, {"year": 2023, "owner": "hr"}, 1)
    hits = db.search("unused days expire March", mode="keyword", k=10).results
    assert hits and {h.version for h in hits} == {4}
    assert not db.search("unlimited manager approval", mode="keyword", k=10).results
    # Restoring what is already current writes nothing.
    assert db.restore_version("policy", 4).version == 4
    # Ingesting the same text again after a restore is unchanged.
    report = db.add(
        [{"id": "policy", "text": V1, "title": "Policy", "metadata": {"year": 2023, "owner": "hr"}}]
    )
    assert report.unchanged == 1


def test_retention_setting_and_purge(settings: Settings, tmp_path: Path) -> None:
    with engram.open(settings=settings.model_copy(update={"keep_versions": 2})) as db:
        three_versions(db)
        assert [v.version for v in db.versions("policy")] == [2, 3]
        with pytest.raises(DocumentNotFound):
            db.document_version("policy", 1)
        db.create_collection("all", language="en", keep_versions=0)
        for text in (V1, V2, V3):
            db.add([{"id": "k", "text": text}], collection="all")
        assert [v.version for v in db.versions("k", "all")] == [1, 2, 3]
        assert db.purge_versions("all", keep=2, keys="k") == 1
        assert db.purge_versions("all") == 1
        assert [v.version for v in db.versions("k", "all")] == [3]
        with pytest.raises(InvalidInput):
            db.purge_versions("all", keep=0)


def test_delete_removes_every_version(db: engram.Engram) -> None:
    three_versions(db)
    db.delete("policy")
    with pytest.raises(DocumentNotFound):
        db.document_version("policy", 1)
    add(db, V2)
    assert [v.version for v in db.versions("policy")] == [1]


def test_tenants_do_not_see_each_others_versions(db: engram.Engram) -> None:
    three_versions(db)
    db.add([{"id": "policy", "text": "other tenant"}], tenant="b")
    assert db.document_text("policy", tenant="b") == "other tenant"
    with pytest.raises(DocumentNotFound):
        db.document_version("policy", 2, tenant="b")
    assert db.purge_versions(tenant="b") == 0
    assert len(db.versions("policy")) == 3


def test_export_and_import_carry_kept_versions(
    db: engram.Engram, settings: Settings, tmp_path: Path
) -> None:
    three_versions(db)
    db.restore_version("policy", 1)
    export_data(db.store, tmp_path / "dump")
    other = settings.model_copy(update={"data_dir": tmp_path / "other", "database_url": None})
    with engram.open(settings=other) as target:
        import_data(target.store, tmp_path / "dump")
        assert target.versions("policy") == db.versions("policy")
        assert target.document_version("policy", 2) == db.document_version("policy", 2)
        counter = Counting(target.embedder())
        target.embedders.install(counter)  # type: ignore[arg-type]
        assert target.restore_version("policy", 2).version == 5
        assert counter.passages == []  # the past versions' vectors came with the export
        assert target.document_text("policy") == V2


# -- HTTP ----------------------------------------------------------------------------------------
@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return Settings.build(data_dir=tmp_path / "server", embedding_model="hash", chunk_tokens=64)


@pytest.fixture
def keys(server_settings: Settings) -> dict[str, str]:
    with engram.open(settings=server_settings) as db:
        return {
            "a": db.create_key(tenant="a", scopes=["read", "write"])[1],
            "a_read": db.create_key(tenant="a", scopes=["read"])[1],
            "b": db.create_key(tenant="b", scopes=["read", "write"])[1],
        }


@pytest.fixture
def http(server_settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(server_settings)) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def put(http: TestClient, key: str, text: str, api_key: str, **metadata: Any) -> None:
    body = {"id": key, "text": text, "title": "Policy", "metadata": metadata}
    response = http.post("/v1/collections/kb/documents", json=body, headers=auth(api_key))
    assert response.status_code in (200, 201), response.text


def test_http_read_diff_restore_purge(http: TestClient, keys: dict[str, str]) -> None:
    a = auth(keys["a"])
    for i, text in enumerate((V1, V2, V3)):
        put(http, "hr/policy.md", text, keys["a"], year=2023 + i)
    base = "/v1/collections/kb/documents/hr/policy.md"
    detail = http.get(base, headers=a).json()
    assert [(v["version"], v["kept"]) for v in detail["versions"]] == [
        (1, True),
        (2, True),
        (3, True),
    ]
    one = http.get(f"{base}/versions/1", headers=a)
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["document"], body["version"], body["current"]) == ("hr/policy.md", 1, False)
    assert body["text"] == V1 and body["metadata"] == {"year": 2023}
    first = body["chunks"][0]
    assert body["text"][first["span"][0] : first["span"][1]] == first["text"]
    assert http.get(f"{base}/versions/9", headers=a).status_code == 404

    diff = http.get(f"{base}/diff", params={"from": 1, "to": 3}, headers=a).json()
    assert (diff["from_version"], diff["to_version"]) == (1, 3)
    assert "-Unused days expire at the end of March.\n" in diff["text"]
    assert diff["metadata"] == [{"field": "year", "change": "changed", "old": 2023, "new": 2025}]
    assert http.get(f"{base}/diff", headers=a).json()["from_version"] == 2

    read_only = http.post(f"{base}/versions/1:restore", headers=auth(keys["a_read"]))
    assert read_only.status_code == 403
    restored = http.post(f"{base}/versions/1:restore", headers=a)
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 4
    hits = http.post(
        "/v1/search",
        json={"query": "unused expire March", "collection": "kb", "mode": "keyword"},
        headers=a,
    ).json()["data"]
    assert [h["version"] for h in hits] == [4]

    purged = http.post("/v1/collections/kb/versions:purge", json={"keep": 2}, headers=a)
    assert purged.json() == {"deleted": 2}
    versions = http.get(base, headers=a).json()["versions"]
    assert [(v["version"], v["restored_from"]) for v in versions] == [(3, None), (4, 1)]
    bad = http.post("/v1/collections/kb/versions:purge", json={"keep": 0}, headers=a)
    assert bad.status_code == 422


def test_http_other_tenant_cannot_reach_versions(http: TestClient, keys: dict[str, str]) -> None:
    put(http, "doc", V1, keys["a"])
    put(http, "doc", V2, keys["a"])
    b = auth(keys["b"])
    base = "/v1/collections/kb/documents/doc"
    assert http.get(f"{base}/versions/1", headers=b).json()["error"]["code"] == (
        "collection_not_found"
    )
    assert http.get(f"{base}/diff", headers=b).status_code == 404
    assert http.post(f"{base}/versions/1:restore", headers=b).status_code == 404
    purge = http.post("/v1/collections/kb/versions:purge", json={}, headers=b)
    assert purge.status_code == 404
    assert len(http.get(base, headers=auth(keys["a"])).json()["versions"]) == 2


def test_http_keys_ending_like_version_routes_still_read(
    http: TestClient, keys: dict[str, str]
) -> None:
    a = auth(keys["a"])
    put(http, "notes/diff", "a note named diff", keys["a"])
    put(http, "notes/versions/2", "a note named 2", keys["a"])
    assert http.get("/v1/collections/kb/documents/notes/diff", headers=a).json()["key"] == (
        "notes/diff"
    )
    found = http.get("/v1/collections/kb/documents/notes/versions/2", headers=a).json()
    assert found["key"] == "notes/versions/2"
    # ...and their own versions are reached below them.
    one = http.get("/v1/collections/kb/documents/notes/diff/versions/1", headers=a).json()
    assert one["text"] == "a note named diff"


def test_openapi_names_the_version_operations(http: TestClient) -> None:
    ops = {
        op["operationId"]
        for item in http.get("/openapi.json").json()["paths"].values()
        for op in item.values()
    }
    assert {
        "getDocumentVersion",
        "diffDocumentVersions",
        "restoreDocumentVersion",
        "purgeVersions",
    } <= ops


# -- clients -------------------------------------------------------------------------------------
@pytest.fixture(params=["sync", "async"])
def client(
    request: pytest.FixtureRequest, server_settings: Settings, keys: dict[str, str]
) -> Iterator[engram.Client]:
    with serve_app(create_app(server_settings)) as url:
        if request.param == "sync":
            with engram.Client(url, api_key=keys["a"]) as c:
                yield c
            return
        loop = asyncio.new_event_loop()
        try:
            remote = engram.AsyncClient(url, api_key=keys["a"])
            yield Blocking(remote, loop)  # type: ignore[misc]
            loop.run_until_complete(remote.aclose())
        finally:
            loop.close()


def test_clients_match_the_library(client: engram.Client) -> None:
    for i, text in enumerate((V1, V2, V3)):
        client.add([{"id": "p/1", "text": text, "title": "Policy", "metadata": {"n": i}}],
                   collection="kb")  # fmt: skip
    old = client.document_version("p/1", 1, "kb")
    assert (old.key, old.version, old.current, old.text) == ("p/1", 1, False, V1)
    assert old.chunks[0].span == (old.chunks[0].start, old.chunks[0].end)
    assert client.document_version("p/1", collection="kb").text == V3
    change = client.diff_versions("p/1", 1, 3, "kb")
    assert change.key == "p/1" and "-Unused days expire at the end of March.\n" in change.text
    assert [(m.field, m.change, m.old, m.new) for m in change.metadata] == [("n", "changed", 0, 2)]
    assert change.title is None
    assert client.restore_version("p/1", 2, "kb").version == 4
    assert client.document_version("p/1", collection="kb").restored_from == 2
    assert client.purge_versions("kb", keep=1) == 3
    assert [v.version for v in client.versions("p/1", "kb")] == [4]
    with pytest.raises(DocumentNotFound):
        client.document_version("p/1", 1, "kb")


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_versions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with engram.open(data, embedding_model="hash", chunk_tokens=64) as db:
        three_versions(db)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data), "--model", "hash", *args])

    listed = run("versions", "list", "policy")
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.output.splitlines()] == ["v1", "v2", "v3"]
    shown = run("versions", "show", "policy", "--version", "1")
    assert shown.exit_code == 0 and shown.output == V1 + "\n"
    as_json = json.loads(run("versions", "show", "policy", "-v", "2", "--json").output)
    assert (as_json["document"], as_json["version"], as_json["text"]) == ("policy", 2, V2)
    changed = run("versions", "diff", "policy", "--from", "1", "--to", "3")
    assert "-Unused days expire at the end of March." in changed.output
    assert "metadata year: 2023 -> 2025" in changed.output
    assert 'metadata approver: + "manager"' in changed.output
    restored = run("versions", "restore", "policy", "1")
    assert restored.exit_code == 0 and "restored v1 as v4" in restored.output
    purged = run("versions", "purge", "--keep", "2")
    assert purged.output == "Dropped 2 version(s).\n"
    missing = run("versions", "show", "policy", "-v", "1")
    assert missing.exit_code == 1
    assert "Error: document 'policy' has no version 1" in missing.output
