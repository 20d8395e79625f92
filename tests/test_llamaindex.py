"""engram.integrations.llamaindex: EngramVectorStore under a real VectorStoreIndex, over the
library on SQLite and PostgreSQL and over engram.Client against a live server, with no network
access beyond loopback (LlamaIndex's tokenizer and NLTK data come from its bundled caches)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from live import serve_app  # noqa: E402
from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

import engram  # noqa: E402
from engram.errors import InvalidInput, ModelMismatch  # noqa: E402
from engram.integrations.llamaindex import EngramEmbedding, EngramVectorStore  # noqa: E402
from engram.server import create_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
Target = engram.Engram | engram.Client
Opener = Callable[[], AbstractContextManager[Any]]

DOCS = [
    Document(id_="vpn", text="Connect to the VPN before opening the wiki.",
             metadata={"team": "it", "year": 2021, "title": "VPN Guide", "tags": None}),
    Document(id_="keys", text="Rotate an API key from the admin console every quarter.",
             metadata={"team": "it", "year": 2024, "title": "API keys"}),
    Document(id_="leave", text="Employees get 25 vacation days of paid leave per year.",
             metadata={"team": "hr", "year": 2023, "title": "Leave policy"}),
    Document(id_="lunch", text="The canteen serves lunch from noon until two.",
             metadata={"team": "", "year": 2020, "title": "Canteen"}),
    Document(id_="bikes", text="Bicycles may be parked in the basement garage.",
             metadata={"year": 2022, "title": "Bike parking"}),
]  # fmt: skip


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond loopback fails the test: LlamaIndex must not fetch NLTK data or
    tiktoken encodings (this machine has no internet; a user's may not either)."""
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family == socket.AF_UNIX or address[0] in ("127.0.0.1", "::1", "localhost"):
            return real(sock, address)
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(params=["sqlite", "postgres", "http"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a fresh object on the same data each call: a library database (SQLite or
    PostgreSQL), or a client of a live server on loopback."""
    if request.param == "http":
        settings = engram.Settings.build(
            data_dir=tmp_path / "server", embedding_model="hash", chunk_tokens=64
        )
        with engram.open(settings=settings) as db:
            key = db.create_key(tenant="acme", scopes=["read", "write"])[1]
        with serve_app(create_app(settings)) as url:
            yield lambda: engram.Client(url, api_key=key)
        return
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    yield lambda: engram.open(
        tmp_path / "data", embedding_model="hash", chunk_tokens=64, database_url=url
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[engram.Engram]:
    with engram.open(tmp_path / "lib", embedding_model="hash", chunk_tokens=64) as database:
        yield database


def _index(target: Target, collection: str = "kb", **kwargs: Any) -> VectorStoreIndex:
    store = EngramVectorStore(target, collection=collection, **kwargs)
    return VectorStoreIndex.from_documents(
        DOCS,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=EngramEmbedding(target),
    )


def _refs(found: Any) -> list[str]:
    return [n.node.ref_doc_id for n in found]


# -- a real index, on every backend --------------------------------------------------------------
def test_index_retrieve_filter_answer_delete_reopen(opener: Opener) -> None:
    with opener() as target:
        index = _index(target)
        found = index.as_retriever(similarity_top_k=2).retrieve("rotate the API key")
        assert _refs(found)[0] == "keys" and len(found) == 2
        assert found[0].score is not None and found[0].score > (found[1].score or 0)
        node = found[0].node
        assert isinstance(node, TextNode)
        # the node as it was added: text without its metadata header, metadata, relationships
        assert node.text == "Rotate an API key from the admin console every quarter."
        assert node.metadata == {"team": "it", "year": 2024, "title": "API keys"}
        assert node.ref_doc_id == "keys" and node.embedding is None

        it_recent = MetadataFilters(
            filters=[
                MetadataFilter(key="team", value="it"),
                MetadataFilter(key="year", value=2022, operator=FilterOperator.GT),
            ]
        )
        assert _refs(index.as_retriever(filters=it_recent).retrieve("VPN wiki")) == ["keys"]

        engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=1)
        answer = engine.query("How do I reach the wiki?")
        assert [s.node.ref_doc_id for s in answer.source_nodes] == ["vpn"]
        assert "Connect to the VPN before opening the wiki." in str(answer)  # MockLLM echoes

        index.delete_ref_doc("keys")
        assert "keys" not in _refs(index.as_retriever(similarity_top_k=5).retrieve("API key"))

    with opener() as again:  # a fresh object on the same data: what was added persists
        store = EngramVectorStore(again, collection="kb")
        index = VectorStoreIndex.from_vector_store(store, embed_model=EngramEmbedding(again))
        found = index.as_retriever(similarity_top_k=5).retrieve("vacation days of leave")
        assert _refs(found)[0] == "leave"
        assert sorted(_refs(found)) == ["bikes", "leave", "lunch", "vpn"]
        assert sorted(n.ref_doc_id or "" for n in store.get_nodes()) == sorted(_refs(found))


def test_long_nodes_come_back_once_and_whole(opener: Opener) -> None:
    """engram chunks a node longer than its chunks (64 tokens here): the node is scored by its
    best chunk, returned once with its whole text, and further pages are read until
    similarity_top_k distinct nodes are found."""
    long_text = " ".join(["Zebra stripes run across the savanna grass at dawn."] * 220)
    nodes = [
        TextNode(id_="long", text=long_text),
        TextNode(id_="short", text="A zebra was seen near the river with other animals today."),
        TextNode(id_="other", text="Nothing about striped horses here."),
    ]
    with opener() as target:
        store = EngramVectorStore(target, collection="animals")
        assert store.add(nodes) == ["long", "short", "other"]  # no embeddings needed
        chunks = target.search("zebra", collection="animals", k=200, mode="keyword").results
        # more than the store's first page (50 hits), all ranked above the short node
        assert [hit.document_key for hit in chunks].index("short") > 50
        result = store.query(
            VectorStoreQuery(
                query_str="zebra", similarity_top_k=2, mode=VectorStoreQueryMode.TEXT_SEARCH
            )
        )
        assert result.ids == ["long", "short"]
        assert result.nodes is not None and result.nodes[0].get_content() == long_text
        assert result.similarities is not None and result.similarities[0] >= result.similarities[1]


# -- filters ---------------------------------------------------------------------------------------
def _f(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


FLAT = [
    _f("team", "it"),
    _f("team", "it", FilterOperator.NE),
    _f("year", 2022, FilterOperator.GT),
    _f("year", 2022, FilterOperator.GTE),
    _f("year", 2023, FilterOperator.LT),
    _f("year", 2023, FilterOperator.LTE),
    _f("team", ["hr", ""], FilterOperator.IN),
    _f("team", ["it"], FilterOperator.NIN),
    _f("title", "GUIDE", FilterOperator.TEXT_MATCH_INSENSITIVE),
    _f("team", None, FilterOperator.IS_EMPTY),
    _f("tags", None, FilterOperator.IS_EMPTY),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("flat", FLAT, ids=lambda f: f"{f.key}-{f.operator.name}")
def test_each_operator_matches_llamaindex(
    flat: MetadataFilter, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each operator selects what LlamaIndex's own in-memory filtering selects."""
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    with engram.open(tmp_path / "d", embedding_model="hash", database_url=url) as db:
        store = EngramVectorStore(db)
        store.add(DOCS)
        filters = MetadataFilters(filters=[flat])
        by_id = {d.doc_id: d.metadata for d in DOCS}
        oracle = build_metadata_filter_fn(lambda i: by_id[i], filters)
        expected = sorted(i for i in by_id if oracle(i))
        assert sorted(n.node_id for n in store.get_nodes(filters=filters)) == expected
        found = store.query(VectorStoreQuery(query_str="the", similarity_top_k=10, filters=filters))
        assert sorted(found.ids or []) == expected


def test_combined_and_nested_filters(db: engram.Engram) -> None:
    store = EngramVectorStore(db)
    store.add(DOCS)

    def ids(*filters: MetadataFilter | MetadataFilters, condition: str = "and") -> list[str]:
        f = MetadataFilters(filters=list(filters), condition=FilterCondition(condition))
        return sorted(n.node_id for n in store.get_nodes(filters=f))

    gt = FilterOperator.GT
    assert ids(_f("team", "it"), _f("year", 2022, gt)) == ["keys"]
    assert ids(_f("team", "hr"), _f("year", 2023, FilterOperator.GTE), condition="or") == [
        "keys",
        "leave",
    ]
    assert ids(_f("team", "it"), _f("year", 2021, FilterOperator.LT), condition="not") == [
        "bikes",
        "leave",
    ]
    # nested groups, and several conditions on one key and operator (merged, then nested)
    recent_it = MetadataFilters(filters=[_f("team", "it"), _f("year", 2024, FilterOperator.GTE)])
    assert ids(_f("team", "hr"), recent_it, condition="or") == ["keys", "leave"]
    assert ids(_f("year", 2020, gt), _f("year", 2021, gt), _f("year", 2024, FilterOperator.LT)) == [
        "bikes",
        "leave",
    ]
    teams = MetadataFilters(filters=[_f("team", "it"), _f("team", "hr")], condition="or")
    years = MetadataFilters(filters=[_f("year", 2021), _f("year", 2023)], condition="or")
    titles = MetadataFilters(
        filters=[
            _f("title", "vpn", FilterOperator.TEXT_MATCH_INSENSITIVE),
            _f("title", "canteen", FilterOperator.TEXT_MATCH_INSENSITIVE),
        ],
        condition="or",
    )
    assert ids(teams, years) == ["leave", "vpn"]
    assert ids(teams, years, titles) == ["vpn"]  # a third $or: nested under $not/$not
    assert ids(MetadataFilters(filters=[]), _f("team", "hr")) == ["leave"]  # empty group


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        (_f("title", "VPN", FilterOperator.TEXT_MATCH), "TEXT_MATCH_INSENSITIVE"),
        (_f("tags", "a", FilterOperator.CONTAINS), "list membership"),
        (_f("tags", ["a"], FilterOperator.ANY), "list membership"),
        (_f("tags", ["a"], FilterOperator.ALL), "list membership"),
        (_f("team", None), "IS_EMPTY"),
        (_f("team name", "it"), "field names use letters"),
    ],
)
def test_unsupported_filters_are_refused(
    db: engram.Engram, flat: MetadataFilter, message: str
) -> None:
    store = EngramVectorStore(db)
    store.add(DOCS[:1])
    with pytest.raises(InvalidInput) as raised:
        store.get_nodes(filters=MetadataFilters(filters=[flat]))
    assert message in f"{raised.value} {raised.value.hint}"


# -- query modes, ids, refusals --------------------------------------------------------------------
def test_query_modes_and_restrictions(db: engram.Engram) -> None:
    store = EngramVectorStore(db)
    store.add(DOCS)

    def query(**kwargs: Any) -> list[str]:
        kwargs.setdefault("similarity_top_k", 5)
        return store.query(VectorStoreQuery(**kwargs)).ids or []

    # keyword (BM25) only: nothing without the word
    assert query(query_str="garage", mode=VectorStoreQueryMode.TEXT_SEARCH) == ["bikes"]
    assert query(query_str="garage", mode=VectorStoreQueryMode.SPARSE) == ["bikes"]
    # vector and hybrid return every node, best first
    hybrid = query(query_str="garage", mode=VectorStoreQueryMode.HYBRID)
    assert hybrid[0] == "bikes" and len(hybrid) == 5
    assert query(query_str="garage") == hybrid  # DEFAULT is the store's default_mode: hybrid
    vector = EngramVectorStore(db, default_mode="vector")
    dense = vector.query(VectorStoreQuery(query_str="garage", similarity_top_k=5))
    expected = [
        h.document_key for h in db.search("garage", mode="vector", k=5, highlight=False).results
    ]
    assert dense.ids == expected
    # node_ids and doc_ids restrict; empty lists (what VectorStoreIndex passes) do not
    assert sorted(query(query_str="the", node_ids=["vpn", "keys"])) == ["keys", "vpn"]
    indexed = _index(db, collection="indexed").vector_store  # nodes of documents: ref_doc_id
    found = indexed.query(VectorStoreQuery(query_str="the", similarity_top_k=5,
                                           doc_ids=["vpn", "keys"]))  # fmt: skip
    assert sorted(n.ref_doc_id or "" for n in found.nodes or []) == ["keys", "vpn"]
    assert len(query(query_str="the", node_ids=[], doc_ids=[])) == 5
    assert query(query_str="the", similarity_top_k=0) == []

    with pytest.raises(InvalidInput, match="no 'mmr' query mode"):
        query(query_str="the", mode=VectorStoreQueryMode.MMR)
    # alpha is engram's vector weight for this query: 0 ranks as BM25 alone
    keyword = query(query_str="garage", mode=VectorStoreQueryMode.TEXT_SEARCH, alpha=0.5)
    hybrid = query(query_str="garage", mode=VectorStoreQueryMode.HYBRID, alpha=0.0)
    assert keyword and hybrid[: len(keyword)] == keyword
    with pytest.raises(InvalidInput, match="alpha"):
        query(query_str="the", mode=VectorStoreQueryMode.HYBRID, alpha=1.5)
    with pytest.raises(InvalidInput, match="searches by text"):
        query(query_embedding=[0.1] * 8)
    # an empty store (no collection yet) finds nothing rather than failing
    empty = EngramVectorStore(db, collection="nothing-yet")
    assert empty.query(VectorStoreQuery(query_str="the")).ids == []
    assert empty.get_nodes() == []
    empty.delete("x")
    empty.clear()


@pytest.mark.slow
def test_semantic_hybrid_reranks_with_engrams_cross_encoder(db: engram.Engram) -> None:
    store = EngramVectorStore(db)
    store.add(DOCS)
    found = store.query(
        VectorStoreQuery(
            query_str="where can I park my bike",
            similarity_top_k=2,
            mode=VectorStoreQueryMode.SEMANTIC_HYBRID,
        )
    )
    expected = db.search("where can I park my bike", k=2, rerank=True, highlight=False)
    assert found.ids == [h.document_key for h in expected.results]
    assert found.similarities == [h.score for h in expected.results]


# -- writing -------------------------------------------------------------------------------------
def test_get_delete_clear_and_async(opener: Opener) -> None:
    with opener() as target:
        store = EngramVectorStore(target, collection="ops")
        store.add(DOCS)
        assert [n.node_id for n in store.get_nodes(node_ids=["vpn", "keys", "nope"])] == [
            "keys",
            "vpn",
        ]
        assert store.get_nodes(node_ids=[]) == []
        hr = MetadataFilters(filters=[_f("team", "hr")])
        assert [n.node_id for n in store.get_nodes(["leave", "vpn"], filters=hr)] == ["leave"]
        store.delete_nodes(node_ids=["vpn"])
        store.delete_nodes(filters=hr)
        store.delete_nodes()  # nothing named: nothing deleted
        assert sorted(n.node_id for n in store.get_nodes()) == ["bikes", "keys", "lunch"]

        source = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id="manual")}
        pages = [TextNode(id_=f"p{i}", text=f"Page {i} about printers.", relationships=source)
                 for i in (1, 2)]  # fmt: skip

        async def run() -> tuple[list[str], list[str], list[str]]:
            await store.async_add(pages)
            found = await store.aquery(VectorStoreQuery(query_str="printers", similarity_top_k=2))
            await store.adelete("manual")  # both pages of the source document
            await store.adelete_nodes(node_ids=["lunch"])
            left = sorted(n.node_id for n in await store.aget_nodes())
            await store.aclear()
            return sorted(found.ids or []), left, [n.node_id for n in await store.aget_nodes()]

        found, left, cleared = asyncio.run(run())
        assert found == ["p1", "p2"] and left == ["bikes", "keys"] and cleared == []
        # a node added again replaces its document
        store.add([TextNode(id_="n", text="first")])
        store.add([TextNode(id_="n", text="second", metadata={"v": 2})])
        (node,) = store.get_nodes()
        assert (node.get_content(), node.metadata) == ("second", {"v": 2})


def test_embeddings_are_engrams(opener: Opener, db: engram.Engram) -> None:
    """EngramEmbedding embeds as engram does (queries with the query instruction) through the
    library or the server; vectors of another dimension are refused, with the fix."""
    reference = db.embedder()
    with opener() as target:
        model = EngramEmbedding(target)
        query = model.get_query_embedding("rotate keys")
        assert query == pytest.approx(reference.embed_query("rotate keys").tolist(), abs=1e-6)
        texts = np.array(model.get_text_embedding_batch(["a cat", "a dog"]))
        expected = reference.embed_batch(["a cat", "a dog"], kind="passage")
        assert np.allclose(texts, expected, atol=1e-6)
        assert asyncio.run(model.aget_query_embedding("rotate keys")) == pytest.approx(query)

        wrong = MockEmbedding(embed_dim=reference.dimension + 1)
        for collection in ("new", "existing"):  # before and after the collection exists
            store = EngramVectorStore(target, collection=collection)
            if collection == "existing":
                store.add([TextNode(id_="a", text="first node")])
            with pytest.raises(ModelMismatch, match="EngramEmbedding") as raised:
                VectorStoreIndex.from_documents(
                    DOCS[:1],
                    storage_context=StorageContext.from_defaults(vector_store=store),
                    embed_model=wrong,
                )
            assert "would discard them" in str(raised.value)
            assert [n.node_id for n in store.get_nodes()] == (
                ["a"] if collection == "existing" else []
            )
        right = MockEmbedding(embed_dim=reference.dimension)  # the dimension is all that is checked
        VectorStoreIndex.from_documents(
            DOCS[:1],
            storage_context=StorageContext.from_defaults(vector_store=EngramVectorStore(target)),
            embed_model=right,
        )


def test_documents_engram_ingested_come_back_as_chunk_nodes(db: engram.Engram) -> None:
    db.add([{"id": "guide.md", "title": "Guide", "text": "Turn the printer off and on again.",
             "metadata": {"team": "it"}}])  # fmt: skip
    store = EngramVectorStore(db)
    (node,) = store.query(VectorStoreQuery(query_str="printer", similarity_top_k=3)).nodes or []
    assert re.fullmatch(r"guide\.md#\d+", node.node_id)
    assert node.get_content() == "Turn the printer off and on again."
    assert node.metadata == {"team": "it", "title": "Guide"} and node.ref_doc_id == "guide.md"
    assert store.get_nodes() == []  # not a node LlamaIndex added
    store.delete("guide.md")  # its ref_doc_id is not recorded: nothing is deleted
    assert db.documents() != []


# -- offline, import, docs -----------------------------------------------------------------------
def test_llamaindex_runs_offline_in_a_fresh_process(tmp_path: Path) -> None:
    """A clean interpreter, with no caches of its own (HOME is empty, TIKTOKEN_CACHE_DIR and
    NLTK_DATA unset) and every non-loopback connection refused: sentence splitting (tiktoken
    and NLTK's punkt), indexing, retrieval and a query engine all work."""
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse

        import engram
        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.core.node_parser import SentenceSplitter
        from engram.integrations.llamaindex import EngramEmbedding, EngramVectorStore

        text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
        with engram.open("data", embedding_model="hash") as db:
            index = VectorStoreIndex.from_documents(
                [Document(text=text, id_="doc")],
                storage_context=StorageContext.from_defaults(
                    vector_store=EngramVectorStore(db)
                ),
                embed_model=EngramEmbedding(db),
                transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=8)],
            )
            answer = index.as_query_engine(llm=MockLLM()).query("topic 3")
            print("nodes", len(db.documents(limit=1000)), "sources", len(answer.source_nodes))
        import sys
        assert "nltk" in sys.modules and "tiktoken" in sys.modules  # both were used
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "NLTK_DATA")}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "error" not in out.stdout.lower()  # LlamaIndex prints NLTK download errors
    nodes, sources = re.fullmatch(r"nodes (\d+) sources (\d+)\n", out.stdout).groups()  # type: ignore[union-attr]
    assert int(nodes) > 10 and int(sources) == 2


def test_import_engram_does_not_import_llama_index() -> None:
    code = "import sys, engram; engram.open; print(any(m.startswith('llama_index') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## LlamaIndex", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/integrations.md: the LlamaIndex section has no python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code.group(1), "docs/integrations.md", "exec"), namespace)  # noqa: S102
    assert os.path.isdir(tmp_path / "rag-data")
