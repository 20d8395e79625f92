"""``EngramVectorStore``: a LangChain ``VectorStore`` over one engram collection."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ...client import Client
from ...engine import DEFAULT_COLLECTION, Engram
from ...errors import InvalidInput
from ...types import SearchMode, SearchResult
from .documents import relevance_scores, to_document, whole_documents
from .embeddings import EngramEmbeddings
from .filters import to_engram_filter
from .target import Target

SEARCH_OPTIONS = ("filter", "mode", "rerank", "attribution")


class EngramVectorStore(VectorStore):
    """The collection ``collection`` of ``db`` (``engram.open(...)`` or
    ``engram.Client(url, api_key=...)``) as a LangChain vector store.

    engram embeds texts itself, with its collection's model: ``embedding`` is left out (or
    is this store's own :class:`EngramEmbeddings`), and :attr:`embeddings` embeds with that
    model. Each added text is one engram document (its id the document's key, its metadata
    the document's); a text longer than the collection's chunk size is split into chunks,
    and a search hit is a chunk, so hits of one long text share its id.

    ``mode`` (``hybrid``, ``keyword`` or ``vector``) and ``rerank`` are the searches'
    defaults; each search may pass its own, with ``filter`` (LangChain-style metadata
    filters, :mod:`engram.integrations.langchain.filters`). ``tenant``: the library's
    tenant (a client's is its API key's). Sync and async: the async methods run the sync
    ones in a worker thread.
    """

    def __init__(
        self,
        db: Engram | Client,
        *,
        collection: str = DEFAULT_COLLECTION,
        tenant: str | None = None,
        mode: SearchMode = "hybrid",
        rerank: bool = False,
        embedding: Embeddings | None = None,
    ) -> None:
        if embedding is not None and not isinstance(embedding, EngramEmbeddings):
            raise InvalidInput(
                f"engram embeds texts with its collection's model, not {type(embedding).__name__}",
                hint="leave embedding out: engram's model (ENGRAM_EMBEDDING_MODEL) embeds"
                " the texts and queries; store.embeddings embeds with it",
            )
        self._target = Target(db, collection, tenant)
        self.mode: SearchMode = mode
        self.rerank = rerank

    @property
    def embeddings(self) -> Embeddings:
        """engram's embedding model, as LangChain ``Embeddings``."""
        return EngramEmbeddings(self._target.db)

    @property
    def collection(self) -> str:
        return self._target.collection

    # -- writing -------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add texts as engram documents; an id that exists replaces that document (a new
        version). Texts without an id get a random one. Returns the ids."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
        texts = list(texts)
        given = list(ids) if ids is not None else [None] * len(texts)
        metas = list(metadatas) if metadatas is not None else [{}] * len(texts)
        if len(given) != len(texts) or len(metas) != len(texts):
            raise InvalidInput(
                f"{len(texts)} texts, {len(given)} ids and {len(metas)} metadatas: one each"
            )
        keys = [i if i else uuid.uuid4().hex for i in given]
        self._target.add(
            [
                {"id": key, "text": text, "metadata": dict(meta or {})}
                for key, text, meta in zip(keys, texts, metas)
            ]
        )
        return keys

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (missing ones are not an error). ``ids=None`` is refused:
        use :meth:`delete_collection` to delete everything."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
        if ids is None:
            raise InvalidInput(
                "delete() takes the ids to delete",
                hint="delete_collection() deletes the collection and all its documents",
            )
        self._target.delete(ids)
        return True

    def delete_collection(self) -> None:
        """Delete the collection and all its documents (a later add creates it again)."""
        self._target.drop()

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in this order (missing ones left out): each its
        whole text, rebuilt from its chunks, and its metadata."""
        found = whole_documents(self._target.chunks_of(list(dict.fromkeys(ids))))
        return [found[i] for i in ids if i in found]

    # -- searching -----------------------------------------------------------------------------
    def _hits(self, query: str, k: int, options: dict[str, Any]) -> list[SearchResult]:
        hits, _ = self._target.page(
            query,
            k=k,
            mode=options.get("mode", self.mode),
            where=to_engram_filter(options.get("filter")),
            rerank=options.get("rerank", self.rerank),
        )
        return hits

    def _documents(self, hits: list[SearchResult], options: dict[str, Any]) -> list[Document]:
        attribution = bool(options.get("attribution", False))
        return [to_document(h, self.collection, attribution=attribution) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` best chunks for ``query``. Options: ``filter``, ``mode``, ``rerank``,
        and ``attribution=True`` for engram's attribution in ``metadata["engram"]``."""
        options = _options(kwargs)
        return self._documents(self._hits(query, k, options), options)

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search` with engram's scores, higher is better: the fused score
        (hybrid), BM25 (keyword), the cosine similarity (vector), or the cross-encoder's
        (rerank)."""
        options = _options(kwargs)
        hits = self._hits(query, k, options)
        return list(zip(self._documents(hits, options), (h.score for h in hits)))

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Scores in [0, 1]: see :func:`~.documents.relevance_scores`."""
        options = _options(kwargs)
        hits = self._hits(query, k, options)
        scores = relevance_scores(hits, options.get("mode", self.mode))
        return list(zip(self._documents(hits, options), scores))

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await run_in_executor(
            None, self._similarity_search_with_relevance_scores, query, k, **kwargs
        )

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` chunks nearest to ``embedding`` (a vector of the collection's model,
        e.g. from :attr:`embeddings`). The library only: a server searches by text."""
        return [
            doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)
        ]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_by_vector` with the cosine similarities."""
        options = _options(kwargs, allowed=("filter", "attribution"))
        hits = self._target.search_by_vector(
            embedding, k=k, where=to_engram_filter(options.get("filter"))
        )
        return list(zip(self._documents(hits, options), (h.score for h in hits)))

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``fetch_k`` best chunks for ``query`` (as :meth:`similarity_search`), then
        ``k`` of them picked for relevance and diversity (MMR), by engram's model's vectors
        of the query and chunks (embedded again: engram does not return stored vectors)."""
        options = _options(kwargs)
        hits = self._hits(query, fetch_k, options)
        vector = self.embeddings.embed_query(query)
        return self._mmr(vector, hits, k, lambda_mult, options)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR from the ``fetch_k`` chunks nearest to ``embedding`` (the library only)."""
        options = _options(kwargs, allowed=("filter", "attribution"))
        hits = self._target.search_by_vector(
            embedding, k=fetch_k, where=to_engram_filter(options.get("filter"))
        )
        return self._mmr(embedding, hits, k, lambda_mult, options)

    def _mmr(
        self,
        query: list[float],
        hits: list[SearchResult],
        k: int,
        lambda_mult: float,
        options: dict[str, Any],
    ) -> list[Document]:
        if not hits:
            return []
        vectors = self.embeddings.embed_documents([h.text for h in hits])
        picked = maximal_marginal_relevance(
            np.asarray(query, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k
        )
        return self._documents([hits[i] for i in picked], options)

    # -- construction and retrievers ------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        db: Engram | Client | None = None,
        **kwargs: Any,
    ) -> EngramVectorStore:
        """A store over ``db`` (required) holding ``texts``; ``kwargs`` go to the
        constructor (``collection``, ``tenant``, ``mode``, ``rerank``)."""
        if db is None:
            raise InvalidInput(
                "from_texts needs db=: engram.open(...) or engram.Client(...)",
                hint="EngramVectorStore.from_texts(texts, db=engram.open('.engram'))",
            )
        store = cls(db, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> EngramVectorStore:
        """A store over ``db=`` (required) holding ``documents`` (their ids kept)."""
        return super().from_documents(documents, embedding, **kwargs)  # type: ignore[arg-type]

    # The async constructors, with ``embedding`` optional as in the sync ones.
    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> EngramVectorStore:
        return await run_in_executor(
            None, cls.from_texts, texts, embedding, metadatas, ids=ids, **kwargs
        )

    @classmethod
    async def afrom_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> EngramVectorStore:
        return await super().afrom_documents(documents, embedding, **kwargs)  # type: ignore[arg-type]

    def as_retriever(self, **kwargs: Any) -> VectorStoreRetriever:
        """LangChain's retriever over this store (``search_type`` ``similarity``,
        ``similarity_score_threshold`` or ``mmr``; ``search_kwargs`` such as ``k``,
        ``filter``, ``mode``, ``score_threshold``), whose documents carry engram's
        attribution in ``metadata["engram"]`` unless ``search_kwargs`` says
        ``attribution=False``."""
        search_kwargs = {"attribution": True, **kwargs.pop("search_kwargs", {})}
        return super().as_retriever(search_kwargs=search_kwargs, **kwargs)


def _options(kwargs: dict[str, Any], allowed: Sequence[str] = SEARCH_OPTIONS) -> dict[str, Any]:
    unknown = [name for name in kwargs if name not in allowed]
    if unknown:
        raise TypeError(
            f"unexpected search arguments: {', '.join(unknown)} (engram takes {', '.join(allowed)})"
        )
    return kwargs
