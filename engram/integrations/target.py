"""One collection of engram, reached through the library (:class:`engram.Engram`) or an
engram server (:class:`engram.Client`): what the framework adapters (LangChain, LlamaIndex)
need of either. The one place that knows the two differ — the library's calls take a tenant,
a client's tenant is its API key's. Nothing here imports a framework."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CollectionNotFound, InvalidInput
from ..providers.embedders.base import EmbedKind
from ..types import DocumentInfo, IngestReport, SearchMode

if TYPE_CHECKING:
    from ..client import Client
    from ..engine import Engram
    from ..search.searcher import SearchResponse

MODES = ("hybrid", "keyword", "vector")
PAGE = 500  # documents listed per call


class Target:
    """A collection of ``db`` (``engram.open(...)`` or ``engram.Client(...)``). ``tenant``
    applies to the library only (None: ``"default"``); given with a client it is refused."""

    def __init__(self, db: Engram | Client, collection: str, tenant: str | None = None) -> None:
        from ..client import Client
        from ..engine import Engram

        if not isinstance(db, Engram | Client):
            raise TypeError(
                f"engram's adapters take engram.open(...) or engram.Client(...),"
                f" not {type(db).__name__}"
            )
        if isinstance(db, Client) and tenant is not None:
            raise InvalidInput(
                "a Client's tenant is its API key's", hint="leave tenant out, or use another key"
            )
        self.db = db
        self.collection = collection
        self.tenant = tenant or "default"
        # The library's collection-scoped calls take the tenant; the client's do not.
        self.scope: dict[str, Any] = {} if isinstance(db, Client) else {"tenant": self.tenant}
        self._found = False  # the collection exists (a client's: see _exists)

    @property
    def library(self) -> Engram | None:
        """The library database, or None for a client."""
        from ..engine import Engram

        return self.db if isinstance(self.db, Engram) else None

    def add(self, records: Sequence[Mapping[str, Any]]) -> IngestReport:
        """Add or replace documents given as ``{"id", "text", "metadata"}``; raises
        InvalidInput naming the ones engram could not take."""
        report = self.db.add(records, collection=self.collection, **self.scope)
        if report.failed:
            reasons = "; ".join(f"{source}: {reason}" for source, reason in report.errors[:5])
            raise InvalidInput(
                f"engram could not add {report.failed} of {len(records)} texts: {reasons}"
            )
        return report

    def search(
        self,
        query: str,
        *,
        k: int,
        mode: SearchMode,
        where: dict[str, Any] | None,
        rerank: bool,
        offset: int = 0,
        alpha: float | None = None,
    ) -> SearchResponse | None:
        """A page of hits, best first; None when the collection does not exist (yet).
        ``alpha``: the vector leg's weight in a hybrid search (None: the collection's)."""
        if mode not in MODES:
            raise InvalidInput(
                f"unknown search mode {mode!r}", hint="use hybrid, keyword or vector"
            )
        try:
            return self.db.search(
                query,
                collection=self.collection,
                k=k,
                offset=offset,
                mode=mode,
                where=where,
                rerank=rerank,
                highlight=False,
                alpha=alpha,
                **self.scope,
            )
        except CollectionNotFound:
            return None

    def delete(self, keys: Sequence[str]) -> int:
        """Delete documents by key; missing ones (or a missing collection) are not an error."""
        if not keys:
            return 0
        with contextlib.suppress(CollectionNotFound):
            return self.db.delete(list(keys), collection=self.collection, **self.scope)
        return 0

    def drop(self) -> None:
        """Delete the collection and everything in it (missing: not an error)."""
        with contextlib.suppress(CollectionNotFound):
            self.db.delete_collection(self.collection, **self.scope)

    def documents(self, where: dict[str, Any] | None) -> Iterator[DocumentInfo]:
        """Every document matching ``where`` (all of them for None), in key order."""
        db = self.library
        try:
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

    def embed(self, texts: Sequence[str], *, kind: str) -> list[list[float]]:
        """``texts`` embedded as engram embeds the collection's passages (``kind=
        "passage"``) or search queries (``"query"``): by the collection's model (for a
        collection still to be created, the embedding model's)."""
        if not texts:
            return []
        which: EmbedKind = "query" if kind == "query" else "passage"
        db = self.library
        if db is None:
            model = "engram/" + self.collection if self._exists() else "engram"
            return self._client.embed(texts, kind=which, model=model)
        try:
            coll = db.collection(self.collection, tenant=self.tenant, counts=False)
            embedder = db.embedders.for_collection(coll)
        except CollectionNotFound:
            embedder = db.embedder()
        return [[float(x) for x in row] for row in embedder.embed_batch(list(texts), kind=which)]

    def _exists(self) -> bool:
        """Whether the collection exists (a client: asked once it does, since a
        collection's model never changes)."""
        if not self._found:
            try:
                self._client.collection(self.collection)
            except CollectionNotFound:
                return False
            self._found = True
        return True

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

    def model_name(self) -> str:
        """The embedding model of the collection (the library; for a collection still to be
        created, the configured one), or "engram" (a client: the server's, whichever)."""
        db = self.library
        if db is None:
            return "engram"
        try:
            return db.collection(self.collection, tenant=self.tenant, counts=False).model_id
        except CollectionNotFound:
            return db.settings.embedding_model

    @property
    def _client(self) -> Client:
        from ..client import Client

        assert isinstance(self.db, Client)
        return self.db
