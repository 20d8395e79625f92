""":class:`EngramVectorStore`: a LlamaIndex vector store over an engram collection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo
from llama_index.core.schema import TextNode as _TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ...errors import InvalidInput, ModelMismatch
from ...types import SearchMode, SearchResult
from ..target import Target
from .filters import Where, all_of, to_where

if TYPE_CHECKING:
    from ...client import Client
    from ...engine import Engram

NODE_CONTENT = "_node_content"  # the node as JSON, as LlamaIndex's own stores keep it
REF_DOC_ID = "ref_doc_id"
MAX_PAGES = 20  # search pages read, at most, to find similarity_top_k distinct nodes
PAGE_MAX = 1000  # engram's largest k

# LlamaIndex's query modes → engram's search modes (and whether to rerank).
MODES: dict[VectorStoreQueryMode, tuple[SearchMode | None, bool]] = {
    VectorStoreQueryMode.DEFAULT: (None, False),  # the store's default_mode
    VectorStoreQueryMode.HYBRID: ("hybrid", False),
    VectorStoreQueryMode.SEMANTIC_HYBRID: ("hybrid", True),  # + engram's cross-encoder
    VectorStoreQueryMode.TEXT_SEARCH: ("keyword", False),
    VectorStoreQueryMode.SPARSE: ("keyword", False),  # BM25 is engram's sparse retrieval
}


class EngramVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store whose nodes are documents of an engram collection.

    ``engram``: ``engram.open(data_dir)`` or ``engram.Client(url, api_key=...)``.
    ``collection``: the engram collection (created by the first add). ``default_mode``:
    engram's search mode for ``VectorStoreQueryMode.DEFAULT`` ("hybrid", engram's default;
    "vector" for dense retrieval only, as LlamaIndex's own default store does). ``tenant``:
    the library's tenant (a client's is its API key's).

    engram embeds node text and queries itself, with the collection's model: the store
    ignores the vectors LlamaIndex computed (refusing ones of another dimension, a sign of
    another model) and searches by ``query_str`` (``is_embedding_query`` is False, so
    retrievers do not embed queries). See the package docstring.
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    collection: str = "default"
    default_mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    tenant: str | None = None

    _target: Target = PrivateAttr()
    _dimension: int | None = PrivateAttr(default=None)

    def __init__(
        self,
        engram: Engram | Client,
        *,
        collection: str = "default",
        default_mode: Literal["hybrid", "vector", "keyword"] = "hybrid",
        tenant: str | None = None,
        **kwargs: Any,
    ) -> None:
        # The fields by name: mypy knows only the base class's (pydantic's __init__).
        fields: dict[str, Any] = {
            "collection": collection,
            "default_mode": default_mode,
            "tenant": tenant,
        }
        super().__init__(**fields, **kwargs)
        self._target = Target(engram, collection, tenant)

    @classmethod
    def class_name(cls) -> str:
        return "EngramVectorStore"

    @property
    def client(self) -> Any:
        """The engram database or client the store works through."""
        return self._target.db

    # -- writing -------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes as engram documents keyed by node id (a node added again replaces
        its document: a new version when its text or metadata changed)."""
        if not nodes:
            return []
        self._check_embeddings(nodes)
        self._target.add([_record(node) for node in nodes])
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of a source document (``ref_doc_id``)."""
        self._target.delete(self._keys({REF_DOC_ID: {"$eq": ref_doc_id}}))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by filter, or both (the nodes that match both)."""
        where = _where(node_ids, None, filters)
        if where is None:
            return  # nothing named: nothing deleted (clear() deletes everything)
        if filters is None and node_ids is not None:
            self._target.delete(node_ids)
            return
        self._target.delete(self._keys(where))

    def clear(self) -> None:
        """Delete every node of the collection (the collection itself stays)."""
        self._target.delete(self._keys(None))

    def _keys(self, where: Where | None) -> list[str]:
        return [doc.key for doc in self._target.documents(where)]

    def _check_embeddings(self, nodes: Sequence[BaseNode]) -> None:
        dims = {len(node.embedding) for node in nodes if node.embedding is not None}
        if not dims:
            return
        if self._dimension is None:
            self._dimension = self._target.dimension()
        if dims != {self._dimension}:
            raise ModelMismatch(
                f"the nodes carry {'/'.join(map(str, sorted(dims)))}-d embeddings, but engram"
                f" embeds collection {self.collection!r} with its own {self._dimension}-d model"
                " and would discard them",
                hint="give the index embed_model=EngramEmbedding(db) (engram's model), or add"
                " nodes with store.add(nodes), which needs no embeddings",
            )

    # -- reading -------------------------------------------------------------------------------
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id and/or filter (every node when neither is given), in id order.
        Documents engram ingested itself have no node: they are left out."""
        where = _where(node_ids, None, filters)
        return [
            _restore(doc.metadata, doc.key)
            for doc in self._target.documents(where)
            if NODE_CONTENT in doc.metadata  # not documents engram ingested itself
        ]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Search with ``query.query_str`` (engram embeds it); the best ``similarity_top_k``
        nodes, each scored by its best chunk. See :data:`MODES` for the query modes."""
        mode, rerank = self._mode(query)
        text = (query.query_str or "").strip()
        if not text:
            raise InvalidInput(
                "engram searches by text: the query has no query_str",
                hint="query with a string (retriever.retrieve('...')); engram embeds it with"
                " the collection's model, so a precomputed query_embedding is not used",
            )
        k = query.similarity_top_k
        if k < 1:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        # Empty lists restrict nothing: a VectorStoreIndex over a store that keeps the text
        # passes node_ids=[] (it holds no node ids of its own).
        where = _where(query.node_ids or None, query.doc_ids or None, query.filters)
        # alpha (LlamaIndex: 1 = dense only) is engram's vector weight: the same scale.
        alpha = query.alpha if mode == "hybrid" else None
        hits = self._search(text, k, mode, where, rerank, alpha)
        nodes = [_node_of_hit(hit) for hit in hits]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[hit.score for hit in hits], ids=[n.node_id for n in nodes]
        )

    def _mode(self, query: VectorStoreQuery) -> tuple[SearchMode, bool]:
        found = MODES.get(query.mode)
        if found is None:
            raise InvalidInput(
                f"engram has no {query.mode.value!r} query mode",
                hint="use DEFAULT, HYBRID, SEMANTIC_HYBRID (hybrid + cross-encoder) or"
                " TEXT_SEARCH / SPARSE (BM25)",
            )
        mode, rerank = found
        return mode or self.default_mode, rerank

    def _search(
        self,
        text: str,
        k: int,
        mode: SearchMode,
        where: Where | None,
        rerank: bool,
        alpha: float | None = None,
    ) -> list[SearchResult]:
        """The best hit of each of the first ``k`` nodes: engram ranks chunks, and a node
        longer than a chunk has several, so pages are read until ``k`` distinct nodes."""
        best: dict[str, SearchResult] = {}
        size = min(PAGE_MAX, max(4 * k, 50))
        offset = 0
        for _ in range(MAX_PAGES):
            page = self._target.search(
                text, k=size, offset=offset, mode=mode, where=where, rerank=rerank, alpha=alpha
            )
            if page is None:  # no collection yet: nothing added
                break
            for hit in page.results:
                best.setdefault(_node_id_of(hit), hit)
                if len(best) == k:
                    return list(best.values())
            if page.next_offset is None:
                break
            offset = page.next_offset
        return list(best.values())

    # -- async: the same calls in a worker thread ------------------------------------------------
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


def _record(node: BaseNode) -> dict[str, Any]:
    """The engram document of a node: keyed by its id, its text as LlamaIndex embeds it
    (with the metadata not excluded from embedding), the node itself in the metadata."""
    metadata = node_to_metadata_dict(node, remove_text=False, flat_metadata=False)
    # None and [] are left out of the filterable fields (the node keeps them): so a field
    # that is "empty" is simply missing, which engram's filters can test.
    metadata = {k: v for k, v in metadata.items() if v is not None and v != []}
    text = node.get_content(metadata_mode=MetadataMode.EMBED)
    if not text.strip():
        raise InvalidInput(
            f"node {node.node_id!r} has no text to store",
            hint="engram indexes text: leave empty nodes out",
        )
    return {"id": node.node_id, "text": text, "metadata": metadata}


def _where(
    node_ids: list[str] | None, doc_ids: list[str] | None, filters: MetadataFilters | None
) -> Where | None:
    parts: list[Where] = []
    if node_ids is not None:
        parts.append({"$keys": list(node_ids)})
    if doc_ids is not None:
        parts.append({REF_DOC_ID: {"$in": list(doc_ids)}} if doc_ids else {"$keys": []})
    converted = to_where(filters)
    if converted:
        parts.append(converted)
    return all_of(parts) if parts else None


def _node_id_of(hit: SearchResult) -> str:
    """A node added by LlamaIndex is a whole document; a document engram ingested itself
    (``engram ingest``) gives a node per chunk."""
    if NODE_CONTENT in hit.metadata:
        return hit.document_key
    return f"{hit.document_key}#{hit.chunk_id}"


def _node_of_hit(hit: SearchResult) -> BaseNode:
    if NODE_CONTENT in hit.metadata:
        return _restore(hit.metadata, hit.document_key)
    return _TextNode(
        id_=_node_id_of(hit),
        text=hit.text,
        metadata={**hit.metadata, "title": hit.title} if hit.title else dict(hit.metadata),
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.document_key)},
    )


def _restore(metadata: dict[str, Any], key: str) -> BaseNode:
    try:
        return metadata_dict_to_node(metadata)
    except (ValueError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"document {key!r} holds a damaged LlamaIndex node: {exc}") from exc
