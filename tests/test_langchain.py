"""engram.integrations.langchain: LangChain's standard tests for the vector store and the
retriever, over the library (SQLite, PostgreSQL) and a real server (engram.Client), and the
parts the standard tests leave out: filters, scores, attribution, modes, embeddings."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_tests.integration_tests import (  # noqa: E402
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)
from live import serve_app  # noqa: E402

import engram  # noqa: E402
from engram.errors import InvalidInput  # noqa: E402
from engram.integrations.langchain import (  # noqa: E402
    EngramEmbeddings,
    EngramRetriever,
    EngramVectorStore,
    to_engram_filter,
)
from engram.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ["sqlite", "postgres", "http"]
Db = engram.Engram | engram.Client


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    """One database per backend for the module; each test works in its own collection."""
    data = tmp_path_factory.mktemp(f"langchain-{request.param}")
    if request.param == "sqlite":
        with engram.open(data, embedding_model="hash") as library:
            yield library
    elif request.param == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create()
        try:
            with engram.open(data, embedding_model="hash", database_url=url) as library:
                yield library
        finally:
            cluster.drop(urlsplit(url).path.lstrip("/"))
    else:
        settings = engram.Settings.build(data_dir=data, embedding_model="hash")
        with engram.open(settings=settings) as library:
            _, key = library.create_key(tenant="acme", scopes=["admin"])
        with serve_app(create_app(settings)) as url, engram.Client(url, api_key=key) as client:
            yield client


def _name() -> str:
    return "lc-" + uuid.uuid4().hex[:12]


@pytest.fixture
def store(db: Db) -> Iterator[EngramVectorStore]:
    vectorstore = EngramVectorStore(db, collection=_name())
    yield vectorstore
    vectorstore.delete_collection()


# -- LangChain's standard tests ------------------------------------------------------------------
def _run_async_tests_on_asyncio(suite: type) -> None:
    """Mark the suite's async tests for pytest-asyncio (strict mode here). A mark is stored
    on the function itself, so the tests stay the suite's own: the standard tests check
    that none was overridden."""
    for name in dir(suite):
        test = getattr(suite, name)
        if name.startswith("test_") and inspect.iscoroutinefunction(test):
            pytest.mark.asyncio(test)


_run_async_tests_on_asyncio(VectorStoreIntegrationTests)
_run_async_tests_on_asyncio(RetrieversIntegrationTests)


class TestStandardVectorStore(VectorStoreIntegrationTests):
    """engram embeds with its own model (here ENGRAM_EMBEDDING_MODEL=hash, the deterministic
    feature-hashing embedder), not with get_embeddings()'s random vectors: a store takes no
    other embeddings (test_a_foreign_embedding_is_refused)."""

    @pytest.fixture
    def vectorstore(self, store: EngramVectorStore) -> EngramVectorStore:
        return store


RETRIEVER_TEXTS = [
    ("tea", "Green tea is brewed at 80 degrees for two minutes."),
    ("coffee", "Espresso is coffee brewed by forcing hot water through ground beans."),
    ("bikes", "A bicycle chain needs oil every few hundred kilometres."),
    ("trains", "Night trains cross Europe while passengers sleep."),
    ("cats", "Cats sleep for most of the day and hunt at dusk."),
]


class TestStandardRetriever(RetrieversIntegrationTests):
    db: Db
    name: str

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _loaded(cls, db: Db) -> Iterator[None]:
        store = EngramVectorStore(db, collection=_name())
        store.add_texts([t for _, t in RETRIEVER_TEXTS], ids=[i for i, _ in RETRIEVER_TEXTS])
        cls.db, cls.name = db, store.collection
        yield
        store.delete_collection()

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return EngramRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"db": self.db, "collection": self.name}

    @property
    def retriever_query_example(self) -> str:
        return "how long to brew tea?"


# -- filters -------------------------------------------------------------------------------------
def test_filters_are_translated() -> None:
    assert to_engram_filter(None) is None and to_engram_filter({}) is None
    assert to_engram_filter({"a": 1, "b": {"$gt": 2}}) == {"a": {"$eq": 1}, "b": {"$gt": 2}}
    assert to_engram_filter({"a": {"$nin": [1, 2]}}) == {"$not": {"a": {"$in": [1, 2]}}}
    assert to_engram_filter({"a": {"$between": [1, 5]}}) == {"a": {"$gte": 1, "$lte": 5}}
    assert to_engram_filter({"m": {"k": "x", "n": {"$lt": 3}}}) == {
        "m.k": {"$eq": "x"},
        "m.n": {"$lt": 3},
    }
    # $and merges into one dict while it can...
    assert to_engram_filter({"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}, {"b": 2}]}) == {
        "a": {"$gt": 1, "$lt": 5},
        "b": {"$eq": 2},
    }
    # ... and says AND with $not/$or where it cannot (one operator twice on a field)
    assert to_engram_filter({"$and": [{"a": {"$ne": 1}}, {"a": {"$ne": 2}}]}) == {
        "$not": {"$or": [{"$not": {"a": {"$ne": 1}}}, {"$not": {"a": {"$ne": 2}}}]}
    }
    assert to_engram_filter({"$or": [{"a": 1}, {"$and": [{"b": 2}, {"c": 3}]}]}) == {
        "$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}, "c": {"$eq": 3}}]
    }
    assert to_engram_filter({"$not": {"a": 1}}) == {"$not": {"a": {"$eq": 1}}}
    assert to_engram_filter({"$keys": ["x"]}) == {"$keys": ["x"]}
    for bad, message in [
        ({"a": {"$like": "%x%"}}, r"cannot filter 'a' with '\$like'"),
        ({"$nor": [{"a": 1}]}, r"cannot filter with '\$nor'"),
        ({"$or": []}, r"\$or takes a non-empty list"),
        ({"a": {"b": {"$or": [1]}}}, r"cannot filter 'a.b' with '\$or'"),
        ({"a": {}}, "empty condition"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            to_engram_filter(bad)


FILTERED = [
    ("a", "the red fox", {"colour": "red", "n": 1, "tags": {"kind": "animal"}}),
    ("b", "the red car", {"colour": "red", "n": 5, "tags": {"kind": "thing"}}),
    ("c", "the blue fox", {"colour": "blue", "n": 9}),
    ("d", "the green fox", {"n": 3}),
]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"colour": "red"}, "ab"),
        ({"colour": {"$ne": "red"}}, "cd"),  # d has no colour: it is not red
        ({"colour": {"$nin": ["red"]}}, "cd"),
        ({"colour": {"$in": ["red", "green"]}}, "ab"),  # ... nor green
        ({"n": {"$between": [2, 9]}}, "bcd"),
        ({"$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 9}}]}, "bd"),
        ({"$and": [{"n": {"$ne": 1}}, {"n": {"$ne": 5}}]}, "cd"),
        ({"$or": [{"colour": "blue"}, {"n": {"$lte": 1}}]}, "ac"),
        ({"$not": {"colour": {"$in": ["red", "blue"]}}}, "d"),
        ({"tags": {"kind": "animal"}}, "a"),
        ({"colour": {"$exists": False}}, "d"),
        ({"$keys": ["a", "d"]}, "ad"),
    ],
)
def test_filters_select_on_every_backend(
    store: EngramVectorStore, filter: dict[str, Any], expected: str
) -> None:
    store.add_texts(
        [t for _, t, _ in FILTERED], [m for *_, m in FILTERED], ids=[i for i, *_ in FILTERED]
    )
    found = store.similarity_search("fox", k=10, filter=filter)
    assert "".join(sorted(d.id or "" for d in found)) == expected
    retriever = EngramRetriever(db=store._target.db, collection=store.collection, filter=filter)
    assert sorted(d.id for d in retriever.invoke("fox", k=10)) == sorted(d.id for d in found)


# -- scores, modes, attribution ------------------------------------------------------------------
TEXTS = [
    ("tea", "Green tea is brewed at 80 degrees for two minutes.", {"topic": "drinks"}),
    ("coffee", "Espresso is coffee brewed under pressure.", {"topic": "drinks"}),
    ("bikes", "Oil a bicycle chain every few hundred kilometres.", {"topic": "bikes"}),
]


@pytest.fixture
def filled(store: EngramVectorStore) -> EngramVectorStore:
    store.add_documents([Document(id=i, page_content=t, metadata=m) for i, t, m in TEXTS])
    return store


def test_scores_are_engrams(filled: EngramVectorStore) -> None:
    db = filled._target.db
    for mode in ("hybrid", "keyword", "vector"):
        scored = filled.similarity_search_with_score("brewed tea", k=3, mode=mode)
        direct = db.search("brewed tea", collection=filled.collection, k=3, mode=mode)
        assert [(d.id, s) for d, s in scored] == [(h.document, h.score) for h in direct.results]
    # relevance: vector mode is the cosine similarity, the others relative to the best hit
    relevant = filled.similarity_search_with_relevance_scores("brewed tea", k=3, mode="vector")
    cosines = db.search("brewed tea", collection=filled.collection, k=3, mode="vector").results
    assert [s for _, s in relevant] == pytest.approx([max(0.0, h.score) for h in cosines], abs=1e-5)
    hybrid = filled.similarity_search_with_relevance_scores("brewed tea", k=3)
    assert hybrid[0][1] == 1.0 and all(0.0 <= s <= 1.0 for _, s in hybrid)
    assert [d.id for d, _ in hybrid][:2] == ["tea", "coffee"]
    thresholded = filled.similarity_search_with_relevance_scores(
        "brewed tea", k=3, score_threshold=hybrid[1][1]
    )
    assert [d.id for d, _ in thresholded] == [d.id for d, _ in hybrid[:2]]


def test_modes(filled: EngramVectorStore) -> None:
    assert [d.id for d in filled.similarity_search("espresso", mode="keyword")] == ["coffee"]
    assert len(filled.similarity_search("espresso", mode="vector")) == 3
    assert EngramVectorStore(filled._target.db, collection=filled.collection, mode="keyword")\
        .similarity_search("bicycle")[0].id == "bikes"  # fmt: skip
    with pytest.raises(InvalidInput, match="unknown search mode"):
        filled.similarity_search("tea", mode="semantic")
    with pytest.raises(TypeError, match="unexpected search arguments: where"):
        filled.similarity_search("tea", where={"a": 1})


def test_the_retriever_attributes_its_documents(filled: EngramVectorStore) -> None:
    db = filled._target.db
    filled.add_texts(["Green tea is brewed at 75 degrees."], [{"topic": "drinks"}], ids=["tea"])
    retriever = EngramRetriever(db=db, collection=filled.collection, k=2, mode="hybrid")
    first = retriever.invoke("green tea", filter={"topic": "drinks"})[0]
    assert first.id == "tea" and first.page_content == "Green tea is brewed at 75 degrees."
    source = first.metadata.pop("engram")
    assert first.metadata == {"topic": "drinks"}
    assert source["document"] == "tea" and source["version"] == 2
    assert (
        source["span"] == [0, len(first.page_content)] and source["collection"] == filled.collection
    )
    where = {"topic": "drinks"}
    hit = db.search("green tea", collection=filled.collection, k=1, where=where).results[0]
    assert source["score"] == hit.score and source["chunk_id"] == hit.chunk_id
    # the vector store's own retriever attributes too; similarity_search only when asked
    via_store = filled.as_retriever(search_kwargs={"k": 1, "mode": "keyword"}).invoke("espresso")
    assert via_store[0].metadata["engram"]["document"] == "coffee"
    assert "engram" not in filled.similarity_search("espresso", k=1)[0].metadata
    assert "engram" in filled.similarity_search("espresso", k=1, attribution=True)[0].metadata
    threshold = filled.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99}
    )
    assert [d.id for d in threshold.invoke("espresso coffee")] == ["coffee"]
    assert [d.id for d in asyncio.run(threshold.ainvoke("espresso coffee"))] == ["coffee"]
    mmr = filled.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 3})
    assert len(mmr.invoke("brewed drinks")) == 2


def test_embeddings_are_engrams_model(filled: EngramVectorStore, tmp_path: Path) -> None:
    db = filled._target.db
    embeddings = filled.embeddings
    assert isinstance(embeddings, EngramEmbeddings)
    vectors = embeddings.embed_documents(["a text", "another text"])
    query = embeddings.embed_query("a question")
    with engram.open(tmp_path, embedding_model="hash") as same_model:
        expected = same_model.embedder().embed_batch(["a text", "another text"])
        assert np.allclose(vectors, expected, atol=1e-6)
        assert np.allclose(query, same_model.embedder().embed_query("a question"), atol=1e-6)
    if isinstance(db, engram.Client):  # a server searches by text only
        with pytest.raises(NotImplementedError, match="searches by text only"):
            filled.similarity_search_by_vector(query)
        return
    by_vector = filled.similarity_search_with_score_by_vector(
        embeddings.embed_query("brewed tea"), k=3
    )
    by_text = filled.similarity_search_with_score("brewed tea", k=3, mode="vector")
    assert [d.id for d, _ in by_vector] == [d.id for d, _ in by_text]
    assert [s for _, s in by_vector] == pytest.approx([s for _, s in by_text], abs=1e-5)
    narrowed = filled.similarity_search_by_vector(query, filter={"topic": "bikes"})
    assert [d.id for d in narrowed] == ["bikes"]
    assert len(filled.max_marginal_relevance_search_by_vector(query, k=2, fetch_k=3)) == 2
    with pytest.raises(InvalidInput, match="holds 64-d vectors"):
        filled.similarity_search_by_vector([1.0, 0.0])


# -- ids, whole documents, refusals ----------------------------------------------------------------
def test_get_by_ids_rebuilds_a_long_document_from_its_chunks(tmp_path: Path) -> None:
    paragraphs = [
        "First paragraph about green tea and how long it should steep in hot water.",
        "Second paragraph about black tea, which takes boiling water and five minutes, and"
        " then some milk for those who like it, or lemon, or nothing at all, as the English"
        " and the Irish and the Russians each insist is the only proper way to drink it.",
        "Third paragraph about coffee, which is another story altogether, brewed with care.",
    ]
    text = "\n\n".join(paragraphs)
    with engram.open(tmp_path, embedding_model="hash", chunk_tokens=16, chunk_overlap=4) as db:
        store = EngramVectorStore(db, collection="long")
        store.add_texts([text, "short"], [{"n": 1}, {"n": 2}], ids=["long", "short"])
        assert db.document("long", "long").chunk_count >= 4  # some overlap, some do not
        found = store.get_by_ids(["short", "missing", "long", "short"])
        assert [d.id for d in found] == ["short", "long", "short"]
        assert found[1] == Document(id="long", page_content=text, metadata={"n": 1})
        hits = store.similarity_search("black tea boiling", k=10)
        assert {d.id for d in hits} == {"long", "short"} and len(hits) > 2  # hits are chunks
        assert hits[0].page_content in text and hits[0].page_content != text


def test_what_engram_cannot_do_is_refused(store: EngramVectorStore) -> None:
    db = store._target.db
    with pytest.raises(InvalidInput, match="embeds texts with its collection's model"):
        EngramVectorStore(db, embedding=DeterministicFakeEmbedding(size=6))
    with pytest.raises(InvalidInput, match="from_texts needs db="):
        EngramVectorStore.from_texts(["a"])
    with pytest.raises(InvalidInput, match="delete_collection"):
        store.delete()
    with pytest.raises(InvalidInput, match="3 texts, 2 ids"):
        store.add_texts(["a", "b", "c"], ids=["1", "2"])
    with pytest.raises(InvalidInput, match=r"cannot filter 'a' with '\$regex'"):
        store.similarity_search("x", filter={"a": {"$regex": "^x"}})
    with pytest.raises(TypeError, match="take engram.open"):
        EngramVectorStore("http://127.0.0.1:8000")  # type: ignore[arg-type]
    if isinstance(db, engram.Client):
        with pytest.raises(InvalidInput, match="tenant is its API key's"):
            EngramVectorStore(db, tenant="acme")


def test_from_texts_and_tenants(db: Db) -> None:
    name = _name()
    store = EngramVectorStore.from_texts(
        ["alpha text", "beta text"],
        metadatas=[{"g": 1}, {"g": 2}],
        ids=["a", "b"],
        db=db,
        collection=name,
        mode="keyword",
        embedding=EngramEmbeddings(db),  # engram's own: accepted
    )
    try:
        assert [d.id for d in store.similarity_search("beta")] == ["b"]
        again = asyncio.run(
            EngramVectorStore.afrom_documents(
                [Document(id="c", page_content="gamma text")], db=db, collection=name
            )
        )
        assert [d.id for d in again.similarity_search("gamma", mode="keyword")] == ["c"]
        if isinstance(db, engram.Engram):  # the library's tenants: another sees nothing
            assert EngramVectorStore(db, collection=name, tenant="other").get_by_ids(["a"]) == []
            assert EngramRetriever(db=db, collection=name, tenant="other").invoke("beta") == []
    finally:
        store.delete_collection()
    assert store.similarity_search("beta") == [] and store.get_by_ids(["a"]) == []


def test_async_api(filled: EngramVectorStore) -> None:
    async def run() -> Any:
        ids = await filled.aadd_texts(["Night trains cross Europe."], ids=["trains"])
        found = await filled.asimilarity_search("night train", k=1, mode="keyword")
        scored = await filled.asimilarity_search_with_relevance_scores("night train", k=2)
        retriever = EngramRetriever(db=filled._target.db, collection=filled.collection)
        retrieved = await retriever.ainvoke("night train", k=1)
        await filled.adelete(ids)
        return found, scored, retrieved, await filled.aget_by_ids(ids)

    found, scored, retrieved, after = asyncio.run(run())
    assert [d.id for d in found] == ["trains"] and scored[0][0].id == "trains"
    assert retrieved[0].metadata["engram"]["document"] == "trains" and after == []


# -- docs and packaging ------------------------------------------------------------------------------
def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## LangChain", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/integrations.md: the LangChain section has no python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code.group(1), "docs/integrations.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "agent-data").is_dir()


def test_the_docs_section_comes_before_langgraph() -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[headings.index("LangChain") + 1] == "LangGraph"


def test_import_engram_does_not_import_langchain() -> None:
    code = (
        "import sys, engram; engram.open; engram.Client;"
        " print(any(m.startswith('langchain') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
