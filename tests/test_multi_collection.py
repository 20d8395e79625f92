"""One search (and chat) over several collections: ``collection=["kb", "faq"]`` or ``"*"``.

The legs of every collection are pooled and fused once (engram.search.multi): the oracle is
one collection holding every document, whose vector leg the pooled one equals exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from live import serve_app

import engram
from engram.cli.main import cli
from engram.config import Settings
from engram.errors import CollectionNotFound, InvalidInput, ModelMismatch
from engram.memory.types import recall_collection
from engram.server.app import create_app
from engram.server.schemas import SearchResponse

KB = [
    {
        "id": "leave",
        "text": "Employees get twenty five days of paid leave each year.",
        "metadata": {"lang": "en"},
    },
    {
        "id": "laptop",
        "text": "Ask the IT desk for a new laptop when yours breaks.",
        "metadata": {"lang": "en"},
    },
    {
        "id": "conges",
        "text": "Les salariés ont vingt-cinq jours de congés payés.",
        "metadata": {"lang": "fr"},
    },
]
OHADA = [
    {
        "id": "sarl",
        "text": "A limited liability company (SARL) under the OHADA uniform act needs one partner.",
        "metadata": {"lang": "en"},
    },
    {
        "id": "capital",
        "text": "The minimum share capital of an OHADA SARL is set by each member state.",
        "metadata": {"lang": "en"},
    },
    {
        "id": "statuts",
        "text": "Les statuts de la SARL OHADA sont rédigés par acte notarié.",
        "metadata": {"lang": "fr"},
    },
]


def _fill(db: engram.Engram, tenant: str = "default") -> None:
    db.add(KB, collection="kb", tenant=tenant)
    db.add(OHADA, collection="ohada", tenant=tenant)


def _keys(response: engram.SearchResponse) -> list[tuple[str, str]]:
    return [(r.collection, r.document_key) for r in response.results]


# -- library, both backends ----------------------------------------------------------------------
def test_hits_name_their_collection_and_the_best_comes_first(db: engram.Engram) -> None:
    _fill(db)
    found = db.search("OHADA SARL share capital", collection=["kb", "ohada"])
    assert _keys(found)[0] == ("ohada", "capital")  # the second collection's best, first
    assert {r.collection for r in found.results} == {"kb", "ohada"}
    assert all(r.to_dict()["collection"] == r.collection for r in found.results)
    leave = db.search("paid leave days", collection=["ohada", "kb"])
    assert _keys(leave)[0] == ("kb", "leave")  # the order of the list does not matter
    # One collection: its name on every hit too.
    assert {r.collection for r in db.search("leave", collection="kb").results} == {"kb"}


def test_star_searches_every_collection_of_the_tenant_only(db: engram.Engram) -> None:
    _fill(db)
    db.add(
        [{"id": "secret", "text": "OHADA SARL secret capital plan"}],
        collection="kb",
        tenant="other",
    )
    db.add([{"id": "x", "text": "OHADA SARL capital"}], collection="other-only", tenant="other")
    conversation = db.memory.create_conversation("bob")
    db.memory.append(conversation.id, "user", "My OHADA SARL capital is tiny.")
    db.memory.recall("capital", user_id="bob")  # its recall index exists
    assert db.store.get_collection(recall_collection("bob"), counts=False)
    for collection in ("*", ["*"], ["kb", "*"]):
        found = db.search("OHADA SARL capital", collection=collection, k=50)
        assert {r.collection for r in found.results} == {"kb", "ohada"}
        assert "secret" not in {r.document_key for r in found.results}
    other = db.search("OHADA SARL capital", collection="*", k=50, tenant="other")
    assert set(_keys(other)) == {("kb", "secret"), ("other-only", "x")}
    assert db.search("capital", collection="*", tenant="nobody").results == []
    with pytest.raises(CollectionNotFound):  # internal collections, never by name either
        db.search("capital", collection=["kb", recall_collection("bob")])
    with pytest.raises(CollectionNotFound):  # another tenant's collection
        db.search("capital", collection=["kb", "other-only"])


def test_unknown_and_empty_lists_are_refused(db: engram.Engram) -> None:
    _fill(db)
    with pytest.raises(CollectionNotFound, match="nope"):
        db.search("capital", collection=["kb", "nope"])
    with pytest.raises(InvalidInput, match="empty"):
        db.search("capital", collection=[])


def test_where_applies_in_every_collection(db: engram.Engram) -> None:
    _fill(db)
    found = db.search(
        "SARL congés statuts salariés", collection=["kb", "ohada"], where={"lang": "fr"}, k=50
    )
    assert set(_keys(found)) == {("kb", "conges"), ("ohada", "statuts")}


def test_pages_follow_the_merged_ranking(db: engram.Engram) -> None:
    _fill(db)
    names = ["kb", "ohada"]
    full = db.search("the OHADA SARL leave laptop capital", collection=names, k=6)
    assert len(full.results) == 6 and full.next_offset is None
    pages, offset = [], 0
    while True:
        page = db.search(
            "the OHADA SARL leave laptop capital", collection=names, k=2, offset=offset
        )
        pages += _keys(page)
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert pages == _keys(full)


def test_pooled_vector_leg_is_that_of_one_merged_collection(db: engram.Engram) -> None:
    _fill(db)
    db.add(KB + OHADA, collection="all")
    for mode in ("vector", "keyword"):
        merged = db.search("OHADA company capital leave", collection="all", mode=mode, k=6)
        split = db.search("OHADA company capital leave", collection=["kb", "ohada"], mode=mode, k=6)
        if mode == "vector":  # cosine does not depend on the collection: the same ranking
            assert [r.document_key for r in split.results] == [
                r.document_key for r in merged.results
            ]
            assert [r.score for r in split.results] == pytest.approx(
                [r.score for r in merged.results]
            )
        else:  # raw BM25, each collection's own statistics: the same documents
            assert {r.document_key for r in split.results} == {
                r.document_key for r in merged.results
            }


def test_groups_cache_and_fusion(db: engram.Engram) -> None:
    _fill(db)
    grouped = db.search("OHADA SARL", collection=["kb", "ohada"], group_by="document", k=10)
    assert len({r.document_key for r in grouped.results}) == len(grouped.results)
    first = db.search("OHADA SARL", collection=["kb", "ohada"])
    again = db.search("OHADA SARL", collection=["kb", "ohada"])
    assert again.cached and _keys(again) == _keys(first)
    db.add([{"id": "new", "text": "OHADA SARL OHADA SARL OHADA SARL"}], collection="kb")
    fresh = db.search("OHADA SARL", collection=["kb", "ohada"])
    assert not fresh.cached and ("kb", "new") in _keys(fresh)
    # The fusion the collections share, else the settings', else the request's.
    assert first.results[0].explain["fused"]["method"] == db.settings.fusion
    db.create_collection("rrf-one", language="en", fusion="rrf")
    db.create_collection(
        "rrf-two", language="en", fusion="rrf", fusion_alpha=db.settings.fusion_alpha
    )
    db.add([{"id": "a", "text": "OHADA SARL"}], collection="rrf-one")
    db.add([{"id": "b", "text": "OHADA SARL rules"}], collection="rrf-two")
    assert (
        db.search("OHADA", collection=["rrf-one", "rrf-two"]).results[0].explain["fused"]["method"]
        == "rrf"
    )
    mixed = db.search("OHADA", collection=["rrf-one", "kb"]).results[0].explain["fused"]
    assert mixed["method"] == db.settings.fusion
    asked = db.search("OHADA", collection=["rrf-one", "kb"], fusion="minmax", alpha=0.5)
    assert asked.results[0].explain["fused"] == {
        **asked.results[0].explain["fused"],
        "method": "minmax",
        "alpha": 0.5,
    }


def test_another_models_collection_only_in_keyword_mode(db: engram.Engram) -> None:
    _fill(db)
    db.store.create_collection(
        "old", model_id="other-model", dimension=8, language="en", settings={}
    )
    with pytest.raises(ModelMismatch, match="old"):
        db.search("capital", collection=["kb", "old"])
    assert db.search("paid leave", collection=["kb", "old"], mode="keyword").results


# -- HTTP -----------------------------------------------------------------------------------------
@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return Settings.build(
        data_dir=tmp_path / "server",
        embedding_model="hash",
        chunk_tokens=64,
        rate_limit_per_minute=0,
        rate_limit_ip_per_minute=0,
    )


@pytest.fixture
def keys(server_settings: Settings) -> dict[str, str]:
    with engram.open(settings=server_settings) as db:
        _fill(db, "acme")
        db.add(
            [{"id": "rival", "text": "OHADA SARL capital of the rival"}],
            collection="kb",
            tenant="rival",
        )
        return {
            "acme": db.create_key(tenant="acme", scopes=["write"])[1],
            "ana": db.create_key(tenant="acme", scopes=["write"], user_id="ana")[1],
            "rival": db.create_key(tenant="rival", scopes=["write"])[1],
        }


@pytest.fixture
def http(server_settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(server_settings)) as c:
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_http_search_lists_pages_and_errors(http: TestClient, keys: dict[str, str]) -> None:
    query = {"query": "OHADA SARL capital leave", "collection": ["kb", "ohada"], "k": 2}
    first = http.post("/v1/search", json=query, headers=_auth(keys["acme"]))
    assert first.status_code == 200, first.text
    body = SearchResponse.model_validate_json(first.content)
    assert body.model_dump_json().encode() == first.content  # the fast path's body, exactly
    assert body.data[0].collection == "ohada" and body.next_cursor
    again = http.post("/v1/search", json=query, headers=_auth(keys["acme"]))  # from the cache
    cached = SearchResponse.model_validate_json(again.content)
    assert cached.model_dump_json().encode() == again.content and "cache" in cached.timings_ms
    assert cached.model_dump(exclude={"timings_ms"}) == body.model_dump(exclude={"timings_ms"})
    seen = [(h.collection, h.document) for h in body.data]
    cursor: str | None = body.next_cursor
    while cursor:
        page = http.post(
            "/v1/search", json={**query, "cursor": cursor}, headers=_auth(keys["acme"])
        ).json()
        seen += [(h["collection"], h["document"]) for h in page["data"]]
        cursor = page["next_cursor"]
    full = http.post("/v1/search", json={**query, "k": 50}, headers=_auth(keys["acme"])).json()
    assert seen == [(h["collection"], h["document"]) for h in full["data"]]
    empty = http.post("/v1/search", json={**query, "collection": []}, headers=_auth(keys["acme"]))
    assert empty.status_code == 422
    missing = http.post(
        "/v1/search", json={**query, "collection": ["kb", "nope"]}, headers=_auth(keys["acme"])
    )
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]


def test_http_star_stays_in_the_callers_tenant(http: TestClient, keys: dict[str, str]) -> None:
    query = {"query": "OHADA SARL capital rival", "collection": "*", "k": 50}
    for who in ("acme", "ana"):  # a key bound to a user sees the tenant's collections too
        hits = http.post("/v1/search", json=query, headers=_auth(keys[who])).json()["data"]
        assert hits and {h["collection"] for h in hits} == {"kb", "ohada"}
        assert "rival" not in {h["document"] for h in hits}
    rival = http.post("/v1/search", json=query, headers=_auth(keys["rival"])).json()["data"]
    assert {(h["collection"], h["document"]) for h in rival} == {("kb", "rival")}
    ohada = {**query, "collection": ["ohada"]}
    assert http.post("/v1/search", json=ohada, headers=_auth(keys["rival"])).status_code == 404


def test_http_chat_cites_collections(http: TestClient, keys: dict[str, str]) -> None:
    body = {
        "question": "What is the capital of an OHADA SARL?",
        "collection": ["kb", "ohada"],
        "k": 4,
    }
    answer = http.post("/v1/chat", json=body, headers=_auth(keys["acme"]))
    assert answer.status_code == 200, answer.text
    cited = {c["collection"] for c in answer.json()["citations"]}
    assert "ohada" in cited and None not in cited
    completion = http.post(
        "/v1/chat/completions",
        json={
            "model": "engram/*",
            "messages": [{"role": "user", "content": "OHADA SARL capital?"}],
        },
        headers=_auth(keys["acme"]),
    )
    assert completion.status_code == 200, completion.text
    assert "ohada" in {c["collection"] for c in completion.json()["citations"]}
    listed = http.post(
        "/v1/chat/completions",
        json={"model": "engram/kb,ohada", "messages": [{"role": "user", "content": "paid leave?"}]},
        headers=_auth(keys["acme"]),
    )
    assert listed.status_code == 200 and "kb" in {
        c["collection"] for c in listed.json()["citations"]
    }


# -- clients and CLI ------------------------------------------------------------------------------
def test_clients_search_and_chat_several_collections(
    server_settings: Settings, keys: dict[str, str]
) -> None:
    with (
        serve_app(create_app(server_settings)) as url,
        engram.Client(url, api_key=keys["acme"]) as client,
    ):
        found = client.search("OHADA SARL capital", collection=("kb", "ohada"), k=3)
        assert found.results[0].collection == "ohada"
        assert {r.collection for r in client.search("leave", collection="*", k=50).results} == {
            "kb",
            "ohada",
        }
        answer = client.chat("What is the capital of an OHADA SARL?", collection=["kb", "ohada"])
        assert "ohada" in {c["collection"] for c in answer["citations"]}

        async def asynchronously() -> engram.SearchResponse:
            async with engram.AsyncClient(url, api_key=keys["acme"]) as remote:
                return await remote.search("OHADA SARL capital", collection=["kb", "ohada"], k=3)

        assert _keys(asyncio.run(asynchronously())) == _keys(found)


def test_cli_repeats_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    with engram.open(tmp_path / "data", embedding_model="hash") as db:
        _fill(db)
    runner = CliRunner()
    res = runner.invoke(
        cli, ["search", "OHADA SARL capital", "-c", "kb", "-c", "ohada"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert "[ohada: capital v1" in res.output
    res = runner.invoke(cli, ["search", "leave", "-c", "*", "--json"], catch_exceptions=False)
    assert {h["collection"] for h in json.loads(res.stdout)["data"]} == {"kb", "ohada"}
    monkeypatch.setenv("ENGRAM_COLLECTION", "ohada")
    res = runner.invoke(cli, ["search", "capital", "--json"], catch_exceptions=False)
    assert {h["collection"] for h in json.loads(res.stdout)["data"]} == {"ohada"}
    res = runner.invoke(cli, ["search", "capital", "-c", "kb", "-c", "nope"])
    assert res.exit_code != 0 and "nope" in res.output
