"""Versions you can use: read, compare, restore and purge the versions a document keeps,
through the library, the HTTP API, both clients and the CLI, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engram
from engram.config import Settings
from engram.errors import DocumentNotFound, InvalidInput
from engram.providers.embedders.base import Embedder

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
    db._embedder = counter  # type: ignore[assignment]
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
    report = db.add([{"id": "policy", "text": V1, "title": "Policy",
                      "metadata": {"year": 2023, "owner": "hr"}}])
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
