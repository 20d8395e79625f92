"""``EngramRetriever``: a LangChain retriever over one engram collection."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict

from ...client import Client
from ...engine import DEFAULT_COLLECTION, Engram
from ...types import SearchMode
from .documents import to_document
from .filters import to_engram_filter
from .target import Target


class EngramRetriever(BaseRetriever):
    """Searches the collection ``collection`` of ``db`` (``engram.open(...)`` or
    ``engram.Client(url, api_key=...)``): ``k`` chunks, by ``mode`` (hybrid, keyword,
    vector), narrowed by ``filter`` (LangChain-style metadata filters), optionally
    reranked. ``invoke(query, k=..., filter=..., mode=..., rerank=...)`` overrides them for
    one call.

    Each Document is a chunk: its text, its document's key as ``id``, its document's
    metadata plus ``metadata["engram"]``: ``document`` (key), ``version``, ``span`` (start
    and end characters in the document), ``score``, ``collection``, ``chunk_id``,
    ``title``, ``page`` and ``heading_path``. The async API runs the search in a worker
    thread.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    db: Engram | Client
    collection: str = DEFAULT_COLLECTION
    tenant: str | None = None
    k: int = 4
    mode: SearchMode = "hybrid"
    filter: dict[str, Any] | None = None
    rerank: bool = False

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name
        mode: SearchMode | None = None,
        rerank: bool | None = None,
    ) -> list[Document]:
        target = Target(self.db, self.collection, self.tenant)
        hits, _ = target.page(
            query,
            k=self.k if k is None else k,
            mode=mode or self.mode,
            where=to_engram_filter(self.filter if filter is None else filter),
            rerank=self.rerank if rerank is None else rerank,
        )
        return [to_document(hit, self.collection, attribution=True) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangChain's name
        mode: SearchMode | None = None,
        rerank: bool | None = None,
    ) -> list[Document]:
        # BaseRetriever's default passes no options: the same search, in a worker thread.
        return await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            k=k,
            filter=filter,
            mode=mode,
            rerank=rerank,
        )
