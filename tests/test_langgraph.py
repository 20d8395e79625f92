"""engram.integrations.langgraph: EngramStore as LangGraph's BaseStore, on both backends, and
inside a real compiled graph whose memories outlive a reopen of the database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.config import get_store  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp  # noqa: E402

import engram  # noqa: E402
from engram.integrations.langgraph import EngramStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def _open(path: Path, url: str | None) -> engram.Engram:
    return engram.open(path, embedding_model="hash", database_url=url)


@pytest.fixture
def store(tmp_path: Path, url: str | None) -> Iterator[EngramStore]:
    with _open(tmp_path / "data", url) as db:
        yield EngramStore(db, tenant="acme")


def test_put_get_delete(store: EngramStore) -> None:
    ns = ("user", "42", "memories")
    assert store.get(ns, "tea") is None
    store.put(ns, "tea", {"text": "likes green tea"})
    item = store.get(ns, "tea")
    assert item is not None and item.value == {"text": "likes green tea"}
    assert (item.namespace, item.key) == (ns, "tea")
    assert item.created_at == item.updated_at and item.created_at.tzinfo is not None
    store.put(ns, "tea", {"text": "likes black tea"})
    again = store.get(ns, "tea")
    assert again is not None and again.value == {"text": "likes black tea"}
    assert again.created_at == item.created_at and again.updated_at > item.updated_at
    store.delete(ns, "tea")
    assert store.get(ns, "tea") is None
    store.delete(ns, "tea")  # deleting nothing is not an error
    # one batch, in order; put results are None
    results = store.batch(
        [PutOp(ns, "a", {"n": 1}), GetOp(ns, "a"), PutOp(ns, "a", None), GetOp(ns, "a")]
    )
    assert results[0] is None and results[1].value == {"n": 1}  # type: ignore[union-attr]
    assert results[2] is None and results[3] is None
    # the tenant is the store's: another tenant sees nothing
    assert EngramStore(store.db, tenant="other").get(ns, "a") is None
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("user", "4.2"), "a")])


def test_async_api(store: EngramStore) -> None:
    async def run() -> Any:
        await store.aput(("a",), "k", {"v": 1})
        return await store.aget(("a",), "k"), await store.asearch(("a",))

    item, found = asyncio.run(run())
    assert item.value == {"v": 1} and [i.key for i in found] == ["k"]


def test_list_namespaces(store: EngramStore) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"),
               ("a", "c", "f"), ("x", "v1")]:  # fmt: skip
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("d", "*")) == [
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
    ]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    every = store.list_namespaces()
    assert len(every) == 6 and every == sorted(every)
    assert store.list_namespaces(limit=2, offset=1) == every[1:3]


def test_search_with_filter_and_query(store: EngramStore) -> None:
    ns = ("user", "42", "memories")
    store.put(ns, "tea", {"text": "drinks green tea every morning", "n": 1, "meta": {"k": "a"}},
              index=["text"])  # fmt: skip
    store.put(ns, "bike", {"text": "rides a bicycle to work", "n": 5, "meta": {"k": "b"}},
              index=["text"])  # fmt: skip
    store.put(ns, "plain", {"text": "green tea is not indexed", "n": 9}, index=False)
    store.put(("user", "7"), "other", {"text": "green tea", "n": 1}, index=["text"])

    def keys(**kwargs: Any) -> list[str]:
        return [item.key for item in store.search(("user", "42"), **kwargs)]

    assert keys() == ["bike", "plain", "tea"]  # namespace, key order
    assert keys(filter={"n": {"$gt": 1}}) == ["bike", "plain"]
    assert keys(filter={"n": {"$gte": 1, "$lt": 9}}) == ["bike", "tea"]
    assert keys(filter={"n": {"$ne": 5}}) == ["plain", "tea"]
    assert keys(filter={"n": 5}) == keys(filter={"n": {"$eq": 5}}) == ["bike"]
    assert keys(filter={"meta": {"k": "a"}}) == ["tea"]  # nested object: field by field
    assert keys(limit=1, offset=1) == ["plain"]

    found = store.search(("user", "42"), query="green tea in the morning")
    assert [i.key for i in found] == ["tea", "bike", "plain"]
    assert found[0].score is not None and found[0].score > (found[1].score or 0)
    assert found[2].score is None  # unindexed items only fill the page
    assert [i.key for i in store.search(("user",), query="green tea", filter={"n": 1})] == [
        "other",  # ("user", "7"): its text is the query
        "tea",
    ]
    assert [i.key for i in store.search(("user", "42"), query="tea", limit=1, offset=1)] == ["bike"]


def test_store_default_index_fields(tmp_path: Path) -> None:
    with _open(tmp_path / "data", None) as db:
        store = EngramStore(db, index={"fields": ["memory"]})
        store.put(("m",), "a", {"memory": "the user likes sailing"})  # indexed by default
        store.put(("m",), "b", {"other": "no indexed field here"})  # nothing to embed
        store.put(("m",), "c", {"memory": "sailing boats"}, index=False)
        found = store.search(("m",), query="sailing")
        assert [(i.key, i.score is not None) for i in found] == [
            ("a", True),
            ("b", False),
            ("c", False),
        ]
        whole = EngramStore(db, index={"dims": 0, "embed": "unused"})  # type: ignore[arg-type]
        whole.put(("w",), "a", {"title": "sailing", "tags": ["boats"]})
        assert whole.search(("w",), query="sailing boats")[0].score is not None
        with pytest.raises(ValueError, match="array paths"):
            store.put(("m",), "d", {"xs": ["a"]}, index=["xs[*]"])


def test_ttl_is_in_minutes_and_expires(store: EngramStore) -> None:
    assert store.supports_ttl and store.ttl_config == {
        "refresh_on_read": True,
        "default_ttl": None,
    }
    store.put(("s",), "short", {"v": 1}, ttl=0.5 / 60)  # half a second
    store.put(("s",), "long", {"v": 1}, ttl=10)
    long = store.state.get(("s",), "long", tenant="acme")
    assert long.expires_at is not None
    ttl = (_parse(long.expires_at) - _parse(long.created_at)).total_seconds()
    assert 599 < ttl < 601  # minutes in LangGraph, seconds in engram
    assert store.get(("s",), "short") is not None
    time.sleep(0.7)
    assert store.get(("s",), "short") is None
    assert [i.key for i in store.search(("s",))] == ["long"]
    assert store.batch([SearchOp(("s",), refresh_ttl=True)])[0][0].key == "long"  # type: ignore[index]


def test_a_read_gives_an_item_its_ttl_again(store: EngramStore) -> None:
    store.put(("s",), "k", {"v": 1}, ttl=1 / 60)  # one second
    time.sleep(0.6)
    before = store.state.get(("s",), "k", tenant="acme").expires_at
    assert store.get(("s",), "k") is not None  # refresh_on_read: one second from now again
    after = store.state.get(("s",), "k", tenant="acme").expires_at
    assert before is not None and after is not None and _parse(after) > _parse(before)
    time.sleep(0.6)  # past the first expiry, not the refreshed one
    assert store.get(("s",), "k", refresh_ttl=False) is not None
    assert store.search(("s",), refresh_ttl=True)[0].key == "k"
    time.sleep(1.2)
    assert store.get(("s",), "k") is None


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


class Turn(TypedDict, total=False):
    user: str
    message: str
    remembered: list[str]


def _remember(state: Turn) -> Turn:
    """A node that writes what the user said and reads back what it knows about them."""
    store = get_store()
    ns = ("user", state["user"], "memories")
    count = len(store.search(ns, limit=100))
    store.put(ns, f"m{count}", {"text": state["message"]}, index=["text"])
    found = store.search(ns, query=state["message"], limit=10)
    return {"remembered": [item.value["text"] for item in found]}


def _graph(db: engram.Engram) -> Any:
    builder = StateGraph(Turn)
    builder.add_node("remember", _remember)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", END)
    return builder.compile(store=EngramStore(db))


def test_a_real_graph_keeps_memories_across_a_reopen(tmp_path: Path, url: str | None) -> None:
    with _open(tmp_path / "data", url) as db:
        out = _graph(db).invoke({"user": "42", "message": "I live in Lisbon"})
        assert out["remembered"] == ["I live in Lisbon"]
    # a new process would open the same data directory (or database) again
    with _open(tmp_path / "data", url) as db:
        out = _graph(db).invoke({"user": "42", "message": "Lisbon has great trams"})
        assert sorted(out["remembered"]) == ["I live in Lisbon", "Lisbon has great trams"]
        other = _graph(db).invoke({"user": "7", "message": "hello"})
        assert other["remembered"] == ["hello"]
        assert EngramStore(db).list_namespaces(prefix=("user",), max_depth=2) == [
            ("user", "42"),
            ("user", "7"),
        ]


def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## LangGraph", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/integrations.md: the LangGraph section has no python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code.group(1), "docs/integrations.md", "exec"), namespace)  # noqa: S102
    assert os.path.isdir(tmp_path / "agent-data")


def test_import_engram_does_not_import_langgraph() -> None:
    code = "import sys, engram; engram.open; print(any(m.startswith('langgraph') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
