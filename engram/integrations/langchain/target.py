"""The LangChain adapters' view of one engram collection: the shared
:class:`engram.integrations.target.Target` plus what LangChain needs beyond it — pages with a
"more" flag, search by vector (the library only) and every chunk of given documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...engine import Engram
from ...errors import CollectionNotFound, InvalidInput
from ...search.filters import normalize_where
from ...search.searcher import MAX_K
from ...types import SearchMode, SearchResult
from .. import target

KEYS_PER_FETCH = 100  # documents fetched by one search (get_by_ids)


class Target(target.Target):
    """A collection of ``db`` (an :class:`~engram.Engram` or an :class:`~engram.Client`)."""

    def page(
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
        found = self.search(query, k=k, mode=mode, where=where, rerank=rerank, offset=offset)
        if found is None:
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
            collection = db.collection(self.collection, **self.scope)
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
            rec.result(
                score,
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
                page, more = self.page(
                    "*", k=MAX_K, mode="vector", where=where, rerank=False, offset=offset
                )
                chunks.extend(page)
                offset += MAX_K
        return chunks
