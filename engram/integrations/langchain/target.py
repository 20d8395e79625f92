"""One collection of an engram library database or of an engram server, as the LangChain
adapters use it: add, search, fetch by id, delete, embed. The one place that knows the two
differ (the library's calls take a tenant; a client's tenant is its API key's; only the
library searches by vector)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ...client import Client
from ...engine import Engram
from ...errors import CollectionNotFound, InvalidInput
from ...search.filters import normalize_where
from ...search.searcher import MAX_K
from ...types import SearchMode, SearchResult

MODES = ("hybrid", "keyword", "vector")
KEYS_PER_FETCH = 100  # documents fetched by one search (get_by_ids)


class Target:
    """A collection of ``db`` (an :class:`~engram.Engram` or an :class:`~engram.Client`)."""

    def __init__(self, db: Engram | Client, collection: str, tenant: str | None) -> None:
        if not isinstance(db, Engram | Client):
            raise TypeError(
                f"engram's LangChain adapters take engram.open(...) or engram.Client(...),"
                f" not {type(db).__name__}"
            )
        if isinstance(db, Client) and tenant is not None:
            raise InvalidInput(
                "a Client's tenant is its API key's", hint="leave tenant out, or use another key"
            )
        self.db = db
        self.collection = collection
        # The library's collection-scoped calls take the tenant; the client's do not.
        self._scope: dict[str, Any] = (
            {} if isinstance(db, Client) else {"tenant": tenant or "default"}
        )

    @property
    def is_library(self) -> bool:
        return isinstance(self.db, Engram)

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Add or replace documents given as ``{"id", "text", "metadata"}``; raises
        InvalidInput naming the ones engram could not take."""
        report = self.db.add(records, collection=self.collection, **self._scope)
        if report.failed:
            reasons = "; ".join(f"{source}: {reason}" for source, reason in report.errors[:5])
            raise InvalidInput(f"engram could not add {report.failed} of the texts: {reasons}")

    def search(
        self,
        query: str,
        *,
        k: int,
        mode: SearchMode,
        where: dict[str, Any] | None,
        rerank: bool,
        offset: int = 0,
    ) -> tuple[list[SearchResult], bool]:
        """A page of hits, best first, and whether there are more; a collection that does
        not exist yet holds nothing."""
        if mode not in MODES:
            raise InvalidInput(
                f"unknown search mode {mode!r}", hint="use hybrid, keyword or vector"
            )
        try:
            found = self.db.search(
                query,
                collection=self.collection,
                k=k,
                offset=offset,
                mode=mode,
                where=where,
                rerank=rerank,
                highlight=False,
                **self._scope,
            )
        except CollectionNotFound:
            return [], False
        more = found.next_offset is not None or getattr(found, "next_cursor", None) is not None
        return found.results, more

    def search_by_vector(
        self, vector: Sequence[float], *, k: int, where: dict[str, Any] | None
    ) -> list[SearchResult]:
        """The ``k`` chunks nearest to ``vector`` (cosine similarity as their score): the
        library only, as engram's HTTP API searches by text."""
        db = self.db
        if not isinstance(db, Engram):
            raise NotImplementedError(
                "an engram server searches by text only: use similarity_search(query),"
                " or search by vector with the library (engram.open)"
            )
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}, not {k}")
        normalize_where(where)  # raises InvalidInput, as a search by text would
        try:
            collection = db.collection(self.collection, **self._scope)
        except CollectionNotFound:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (collection.dimension,):
            raise InvalidInput(
                f"collection {self.collection!r} holds {collection.dimension}-d vectors"
                f" ({collection.model_id}), not {query.shape[-1]}-d ones",
                hint="embed the query with the store's embeddings (EngramEmbeddings)",
            )
        hits = db.store.vector_search(collection, query, k=k, where=where)
        records = db.store.get_chunks(collection, [chunk for chunk, _ in hits])
        return [
            SearchResult(
                chunk_id=rec.id,
                document_key=rec.document_key,
                document_id=rec.document_id,
                version=rec.version,
                title=rec.title,
                text=rec.text,
                start=rec.start,
                end=rec.end,
                score=score,
                heading_path=rec.heading_path,
                page=rec.page,
                metadata=rec.metadata,
                explain={"keyword": None, "vector": {"rank": rank, "score": round(score, 6)}},
            )
            for rank, (chunk, score) in enumerate(hits, 1)
            if (rec := records.get(chunk)) is not None
        ]

    def chunks_of(self, keys: Sequence[str]) -> list[SearchResult]:
        """Every chunk of the documents ``keys`` (missing ones have none). engram has no call
        that reads a document's text back, so this is a vector search restricted to those
        documents (``$keys``), paged until it runs out: exact on both backends, as a filtered
        vector search scores every chunk that matches."""
        chunks: list[SearchResult] = []
        for start in range(0, len(keys), KEYS_PER_FETCH):
            where = {"$keys": list(keys[start : start + KEYS_PER_FETCH])}
            offset, more = 0, True
            while more:
                page, more = self.search(
                    "*", k=MAX_K, mode="vector", where=where, rerank=False, offset=offset
                )
                chunks.extend(page)
                offset += MAX_K
        return chunks

    def delete(self, keys: Sequence[str]) -> None:
        """Delete documents by key; missing ones (or collection) are not an error."""
        with contextlib.suppress(CollectionNotFound):
            self.db.delete(list(keys), collection=self.collection, **self._scope)

    def drop(self) -> None:
        """Delete the collection and everything in it (missing: not an error)."""
        with contextlib.suppress(CollectionNotFound):
            self.db.delete_collection(self.collection, **self._scope)

    def embed(self, texts: Sequence[str], *, kind: str) -> list[list[float]]:
        """``texts`` embedded with engram's model as engram embeds passages (``kind=
        "passage"``) or search queries (``"query"``)."""
        if not texts:
            return []
        db = self.db
        if isinstance(db, Engram):
            vectors = db.embedder().embed_batch(
                list(texts), kind="query" if kind == "query" else "passage"
            )
            return [[float(x) for x in row] for row in vectors]
        return db.embed(texts, kind="query" if kind == "query" else "passage")
