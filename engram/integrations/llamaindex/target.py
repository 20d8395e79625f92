"""One interface over the two ways to reach engram, the library (:class:`engram.Engram`) and
the HTTP client (:class:`engram.Client`): what the LlamaIndex adapters need of either, on one
collection. Nothing here imports LlamaIndex."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import CollectionNotFound, InvalidInput
from ...types import DocumentInfo, IngestReport, SearchMode

if TYPE_CHECKING:
    from ...client import Client
    from ...engine import Engram
    from ...search.searcher import SearchResponse

PAGE = 500  # documents listed per call
EMBED_BATCH = 256  # texts per embedding call (the server takes up to 1,000)


class Target:
    """A collection of an engram database, through the library or the HTTP client.

    ``tenant`` applies to the library only: a client's tenant is its API key's.
    """

    def __init__(self, engram: Engram | Client, collection: str, tenant: str) -> None:
        from ...client import Client
        from ...engine import Engram

        if not isinstance(engram, Engram | Client):
            raise InvalidInput(
                f"expected an engram database or client, not {type(engram).__name__}",
                hint="pass engram.open(data_dir) or engram.Client(url, api_key=...)",
            )
        self.engram = engram
        self.collection = collection
        self.tenant = tenant

    @property
    def library(self) -> Engram | None:
        from ...engine import Engram

        return self.engram if isinstance(self.engram, Engram) else None

    def add(self, records: Sequence[Mapping[str, Any]]) -> IngestReport:
        db = self.library
        if db is not None:
            report = db.add(records, collection=self.collection, tenant=self.tenant)
        else:
            report = self._client.add(records, collection=self.collection)
        if report.failed:
            source, reason = report.errors[0] if report.errors else ("?", "unknown")
            raise InvalidInput(
                f"engram refused {report.failed} of {len(records)} nodes; {source}: {reason}"
            )
        return report

    def delete(self, keys: Sequence[str]) -> int:
        """Delete documents by key; a missing collection holds nothing to delete."""
        if not keys:
            return 0
        try:
            db = self.library
            if db is not None:
                return db.delete(keys, collection=self.collection, tenant=self.tenant)
            return self._client.delete(keys, collection=self.collection)
        except CollectionNotFound:
            return 0

    def search(
        self,
        query: str,
        *,
        k: int,
        offset: int,
        mode: SearchMode,
        where: dict[str, Any] | None,
        rerank: bool,
        alpha: float | None = None,
    ) -> SearchResponse | None:
        """A page of results; None when the collection does not exist (yet). ``alpha``: the
        vector leg's weight in a hybrid search (None: the collection's)."""
        try:
            db = self.library
            if db is not None:
                return db.search(
                    query,
                    collection=self.collection,
                    k=k,
                    offset=offset,
                    mode=mode,
                    where=where,
                    rerank=rerank,
                    highlight=False,
                    alpha=alpha,
                    tenant=self.tenant,
                )
            return self._client.search(
                query,
                collection=self.collection,
                k=k,
                offset=offset,
                mode=mode,
                where=where,
                rerank=rerank,
                highlight=False,
                alpha=alpha,
            )
        except CollectionNotFound:
            return None

    def documents(self, where: dict[str, Any] | None) -> Iterator[DocumentInfo]:
        """Every document matching ``where`` (all of them for None), in key order."""
        try:
            db = self.library
            if db is None:
                yield from self._client.iter_documents(self.collection, where=where, page_size=PAGE)
                return
            offset = 0
            while True:
                page = db.documents(
                    self.collection, limit=PAGE, offset=offset, where=where, tenant=self.tenant
                )
                yield from page
                if len(page) < PAGE:
                    return
                offset += PAGE
        except CollectionNotFound:
            return

    def dimension(self) -> int:
        """The dimension of engram's vectors here: the collection's, or for a collection
        still to be created the embedding model's (a server's: by embedding one word)."""
        db = self.library
        try:
            if db is not None:
                return db.collection(self.collection, tenant=self.tenant).dimension
            return self._client.collection(self.collection).dimension
        except CollectionNotFound:
            if db is not None:
                return db.embedder().dimension
            return len(self.embed(["dimension"], kind="passage")[0])

    def embed(self, texts: Sequence[str], *, kind: str) -> list[list[float]]:
        """Vectors of ``texts`` by engram's embedding model (``kind``: passage or query)."""
        out: list[list[float]] = []
        for i in range(0, len(texts), EMBED_BATCH):
            out.extend(self._embed(list(texts[i : i + EMBED_BATCH]), kind))
        return out

    def _embed(self, texts: list[str], kind: str) -> list[list[float]]:
        if not texts:
            return []
        db = self.library
        if db is not None:
            vectors = db.embedder().embed_batch(
                texts, kind="query" if kind == "query" else "passage"
            )
            return [[float(x) for x in row] for row in vectors]
        return self._client.embed(texts, kind="query" if kind == "query" else "passage")

    def model_name(self) -> str:
        """The embedding model's name as configured (the library), or "engram" (a client:
        the server's model, whichever it is)."""
        db = self.library
        return db.settings.embedding_model if db is not None else "engram"

    @property
    def _client(self) -> Client:
        from ...client import Client

        assert isinstance(self.engram, Client)
        return self.engram
