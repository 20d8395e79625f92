"""The library facade: ``engram.open(path)`` returns an :class:`Engram`."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from . import tracing
from .api_keys import KeysMixin
from .asking import AskMixin
from .config import Settings
from .embedders import Embedders
from .errors import CollectionNotFound, EngramError, InvalidInput
from .memory.types import is_internal
from .new_collection import create, for_ingest, own_settings
from .providers import get_reranker
from .providers.embedders.base import Embedder
from .providers.rerankers.base import Reranker
from .search.analyzer import LANGUAGES
from .search.fusion import Alpha
from .search.multi import resolve, search_collections
from .search.searcher import Searcher, SearchRequest, SearchResponse
from .search.suggest import Suggester, Suggestion
from .store import open_store
from .store.contract import Store
from .store.import_contract import ImportBatch, RollbackReport
from .store.records import DocumentVersion, Where
from .types import (
    Collection,
    DocumentInfo,
    Failure,
    IngestReport,
    LoadedDocument,
    SearchMode,
    Skipped,
)
from .versions import VersionsMixin

if TYPE_CHECKING:
    # Imported where used: a one-shot search (the CLI) loads neither the ingest pipeline and
    # its parsers nor the memory and state services.
    from .analytics.service import Analytics
    from .ingest.loaders import LoaderOptions
    from .ingest.pipeline import Item, ProgressCallback
    from .memory import MemoryService
    from .state import StateService

logger = logging.getLogger("engram")

DEFAULT_COLLECTION = "default"
WARM_UP_SEARCHES = 20  # collections searched once at start-up (engram serve)
DEFAULT_TENANT = "default"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open(  # noqa: A001 - mirrors sqlite3.connect / dbm.open
    data_dir: str | Path | None = None, *, settings: Settings | None = None, **overrides: Any
) -> Engram:
    """Open (creating if needed) the engram data directory ``data_dir`` (default ``./.engram``).

    ``overrides`` are setting names, e.g. ``engram.open(".engram", embedding_model="hash")``.
    """
    if settings is None:
        settings = Settings.build(data_dir=data_dir, **overrides)
    elif data_dir is not None or overrides:
        settings = settings.model_copy(
            update={"data_dir": Path(data_dir or settings.data_dir), **overrides}
        )
    return Engram(settings)


def _public(name: str) -> str:
    """``name``, or CollectionNotFound for engram's own collections (users' recall indexes:
    they are reached through ``db.memory.recall``, with its per-user checks, only)."""
    if isinstance(name, str) and is_internal(name):
        raise CollectionNotFound(f"no collection {name!r}")
    return name


class Engram(VersionsMixin, KeysMixin, AskMixin):
    """An engram database: collections of documents, ingested, indexed and searchable.
    Documents keep their versions, to read, compare and restore (:mod:`engram.versions`)."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.store: Store = store or open_store(settings)
        self.embedders = Embedders(settings)  # one per model, loaded on first use
        self._reranker: Reranker | None = None
        self._memory: MemoryService | None = None
        self._state: StateService | None = None
        self._analytics: Analytics | None = None
        self._lock = threading.Lock()
        self.searcher = Searcher(self.store, settings, self.embedders.for_collection, self.reranker)
        self.suggester = Suggester(self.store, self.store)

    # -- models (loaded on first use) ---------------------------------------------------------
    def embedder(self) -> Embedder:
        """The ``embedding_model`` setting's model: memories', agent state's, new English
        collections'. A collection embeds with its own (``db.embedders.for_collection``)."""
        return self.embedders.default()

    def reranker(self) -> Reranker:
        with self._lock:
            if self._reranker is None:
                self._reranker = get_reranker(
                    self.settings.reranker_model, model_cache=self.settings.model_cache_dir
                )
            return self._reranker

    # -- collections ---------------------------------------------------------------------------
    # Every collection-scoped method takes ``tenant``: collections are named within a tenant,
    # and documents are only reachable through their collection.
    def collections(self, *, tenant: str = DEFAULT_TENANT) -> list[Collection]:
        """The tenant's collections (not engram's own, such as users' recall indexes)."""
        return [c for c in self.store.list_collections(tenant=tenant) if not is_internal(c.name)]

    def collection(
        self, name: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT, counts: bool = True
    ) -> Collection:
        """The collection; ``counts=False`` leaves its document and chunk counts at 0, which
        saves counting its rows (milliseconds at 100k chunks) when they are not shown."""
        return self.store.get_collection(_public(name), tenant=tenant, counts=counts)

    def create_collection(
        self,
        name: str,
        *,
        language: str | None = None,
        model: str | None = None,
        fusion: str | None = None,
        fusion_alpha: Alpha | None = None,
        keep_versions: int | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Collection:
        """Create an empty collection (a first ingest creates one too, with the defaults).
        ``language`` fixes its keyword analysis (en, fr, none; the settings' default unless
        that is "auto", which needs documents to detect from); ``model`` its embedding model
        (else the language's: ENGRAM_MULTILINGUAL_MODEL for fr, ENGRAM_EMBEDDING_MODEL for en
        and none; see engram.embedders); ``fusion`` and ``fusion_alpha`` override the
        settings' hybrid fusion for this collection; ``keep_versions`` the settings' number
        of versions kept per document (0: all). Conflict (409) when it exists."""
        own = own_settings(self.settings, fusion, fusion_alpha, keep_versions)
        lang = language or self.settings.language
        return create(
            self.store, self.embedders, name, language=lang, model=model, own=own, tenant=tenant
        )

    def delete_collection(self, name: str, *, tenant: str = DEFAULT_TENANT) -> None:
        self.store.delete_collection(_public(name), tenant=tenant)

    def _has_collection(self, name: str, tenant: str) -> bool:
        try:
            self.store.get_collection(_public(name), tenant=tenant, counts=False)
        except CollectionNotFound:
            return False
        return True

    # -- ingestion -----------------------------------------------------------------------------
    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        collection: str = DEFAULT_COLLECTION,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        sync: bool = False,
        loader_options: LoaderOptions | None = None,
        language: str | None = None,
        stdin: BinaryIO | None = None,
        stdin_format: str = "txt",
        stdin_key: str | None = None,
        progress: ProgressCallback | None = None,
        tenant: str = DEFAULT_TENANT,
        reparse: bool = False,
        model: str | None = None,
    ) -> IngestReport:
        """Ingest files and folders (``"-"`` for stdin, keyed ``stdin_key``, by default
        from its content's hash). With ``sync``, documents of the collection that are not
        among them are deleted (mirror a folder).

        A file whose size and modification time, or else whose bytes, are those its
        documents were stamped with, under the same settings, is skipped without being
        parsed (engram.ingest.stamps); ``reparse`` parses every file. ``model`` names the
        embedding model of a collection this ingest creates (else its language's)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise InvalidInput("nothing to ingest", hint="pass files, folders or '-' for stdin")
        from .ingest.items import items_from_paths
        from .ingest.stamps import FileStamps

        try:
            target: Collection | None = self.store.get_collection(
                collection, tenant=tenant, counts=False
            )
        except CollectionNotFound:
            target = None  # nothing stamped yet
        lookup = partial(self.store.file_stamps, target) if target is not None else None
        model_id = self._stamp_model(target, language, model)
        # The chunking the file stamps record: the collection's, or the one it will get.
        own = target.settings if target else self.settings.chunking(model_id)
        settings = self.settings.for_collection(own)
        stamps = FileStamps(settings, model_id, loader_options, lookup, reparse=reparse)
        items = items_from_paths(
            paths,
            include=include,
            exclude=exclude,
            options=loader_options,
            stdin=stdin,
            stdin_format=stdin_format,
            stdin_key=stdin_key,
            stamps=stamps,
        )
        return self._run(
            collection,
            items,
            sync=sync,
            language=language,
            progress=progress,
            tenant=tenant,
            model=model,
        )

    def _stamp_model(
        self, target: Collection | None, language: str | None, model: str | None
    ) -> str:
        """The model id file stamps record: the collection's; for one this ingest creates,
        its model as far as it is known before its documents are (language "auto" may yet
        pick another: the next ingest then parses its files once more)."""
        if target is not None:
            return target.model_id
        lang = language or self.settings.language
        if model is None and lang not in LANGUAGES:
            return self.embedders.default().model_id
        return self.embedders.for_new(lang, model=model).model_id

    def add(
        self,
        documents: Iterable[Mapping[str, Any] | LoadedDocument | Failure],
        *,
        collection: str = DEFAULT_COLLECTION,
        language: str | None = None,
        progress: ProgressCallback | None = None,
        tenant: str = DEFAULT_TENANT,
        model: str | None = None,
    ) -> IngestReport:
        """Ingest documents given as ``{"id", "text", "title"?, "metadata"?}`` dicts
        (``model``: as for :meth:`ingest`)."""
        from .ingest.items import items_from_records

        return self._run(
            collection,
            items_from_records(documents),
            sync=False,
            language=language,
            progress=progress,
            tenant=tenant,
            model=model,
        )

    def _run(
        self,
        name: str,
        items: Iterable[Item],
        *,
        sync: bool,
        language: str | None,
        progress: ProgressCallback | None,
        tenant: str,
        batch: str | None = None,
        model: str | None = None,
    ) -> IngestReport:
        started = time.perf_counter()
        iterator = iter(items)
        # Peek at the first documents: a new collection's language is detected from them.
        head = list(itertools.islice(iterator, 64))
        if (
            len(head) < 64
            and not any(isinstance(d, LoadedDocument) for d in head)
            and not self._has_collection(name, tenant)
        ):
            # Nothing loaded for a collection that does not exist: report the failures and
            # leave no empty collection behind.
            report = IngestReport()
            for item in head:
                if isinstance(item, Failure | Skipped):  # nothing else without a collection
                    report.note(item)
            report.seconds = time.perf_counter() - started
            return report
        first = [d for d in head if isinstance(d, LoadedDocument)]
        collection = for_ingest(
            self.store,
            self.embedders,
            self.settings,
            name,
            first,
            language=language,
            model=model,
            tenant=tenant,
        )
        from .ingest.pipeline import IngestPipeline

        embedder = self.embedders.for_collection(collection)
        pipeline = IngestPipeline(self.store, self.settings, embedder)
        with tracing.span("ingest", collection=name, sync=sync):
            report = pipeline.run(
                collection,
                itertools.chain(head, iterator),
                sync=sync,
                progress=progress,
                batch=batch,
            )
        report.seconds = time.perf_counter() - started  # parsing included
        return report

    # -- documents -----------------------------------------------------------------------------
    def documents(
        self,
        collection: str = DEFAULT_COLLECTION,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[DocumentInfo]:
        return self.store.list_documents(
            self.collection(collection, tenant=tenant), limit=limit, offset=offset, where=where
        )

    def document(
        self, key: str, collection: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT
    ) -> DocumentInfo:
        return self.store.get_document(self.collection(collection, tenant=tenant), key)

    def versions(
        self, key: str, collection: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT
    ) -> list[DocumentVersion]:
        """The versions document ``key`` keeps, oldest first (see :meth:`document_version`,
        :meth:`diff_versions`, :meth:`restore_version`, :meth:`purge_versions`)."""
        return self.store.document_versions(self.collection(collection, tenant=tenant), key)

    def delete(
        self,
        keys: str | Sequence[str],
        *,
        collection: str = DEFAULT_COLLECTION,
        tenant: str = DEFAULT_TENANT,
    ) -> int:
        """Delete documents by key from every index; returns how many existed."""
        if isinstance(keys, str):
            keys = [keys]
        coll = self.collection(collection, tenant=tenant)
        deleted = self.store.delete_documents(coll, list(keys))
        self.store.sync()
        return deleted

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        collection: str | Sequence[str] = DEFAULT_COLLECTION,
        k: int = 10,
        offset: int = 0,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        rerank: bool = False,
        highlight: bool = True,
        fusion: str | None = None,
        alpha: Alpha | None = None,
        group_by: Literal["document"] | None = None,
        tenant: str = DEFAULT_TENANT,
        rerank_weight: float | None = None,
    ) -> SearchResponse:
        """Search a collection; ``response.results`` holds the chunks, best first, each
        naming its ``collection``. ``collection`` may list several (``["kb", "faq"]``) or be
        ``"*"`` (every collection of the tenant): one ranking across them, paged as one
        (engram.search.multi says how their scores are made comparable).
        ``fusion`` (``dbsf``, ``minmax``, ``rrf``) and ``alpha`` (the vector leg's weight, 0
        to 1, or ``"auto"``: by the query's length and language) override the collection's fusion for
        this hybrid search. ``group_by="document"``
        returns one result per document, its best chunk, with ``more_chunks`` counting its
        other ranked chunks; ``k`` and ``offset`` then count documents."""
        request = SearchRequest(
            query,
            k=k,
            offset=offset,
            mode=mode,
            where=where,
            rerank=rerank,
            highlight=highlight,
            fusion=fusion,
            alpha=alpha,
            group_by=group_by,
            rerank_weight=rerank_weight,
        )
        self.searcher.validate(request)
        targets = resolve(self.store, collection, tenant=tenant)
        return search_collections(self.searcher, targets, request)

    def suggest(
        self,
        prefix: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        limit: int = 10,
        tenant: str = DEFAULT_TENANT,
    ) -> list[Suggestion]:
        """Completions of ``prefix`` (autocomplete): past successful queries, document
        titles and indexed words, accent-folded and typo tolerant (see engram.search.suggest)."""
        target = self.store.get_collection(_public(collection), tenant=tenant, counts=False)
        return self.suggester.suggest(target, prefix, limit)

    # -- import batches ------------------------------------------------------------------------
    def import_batches(
        self, *, tenant: str = DEFAULT_TENANT, limit: int = 100
    ) -> list[ImportBatch]:
        """The imports recorded for ``tenant``, newest first (engram.transfer.batches)."""
        return self.store.import_batches(tenant=tenant, limit=limit)

    def rollback_import(
        self, batch_id: str, *, force: bool = False, tenant: str = DEFAULT_TENANT
    ) -> RollbackReport:
        """Undo import ``batch_id`` (Store.rollback_import): refused if a later write changed
        what it wrote, unless ``force``."""
        return self.store.rollback_import(batch_id, tenant=tenant, force=force)

    # -- conversations and memories ----------------------------------------------------------
    @property
    def memory(self) -> MemoryService:
        """Conversations and long-term memories of users (see :mod:`engram.memory`)."""
        with self._lock:
            if self._memory is None:
                from .memory import MemoryService
                from .memory.recall import Recall

                recall = Recall(self.store, self.settings, self.embedders, self.searcher)
                self._memory = MemoryService(
                    self.store,
                    self.settings,
                    self.embedder,
                    recall,
                    on_user_messages=self._extract_later if self.settings.llm else None,
                )
            return self._memory

    def _extract_later(self, tenant: str, conversation_id: str, message_ids: list[int]) -> None:
        """Queue the extraction of memories from messages just appended (a job, run by the
        server's workers or `engram worker`)."""
        from .jobs.queue import enqueue_extraction

        enqueue_extraction(
            self.store, tenant=tenant, conversation_id=conversation_id, message_ids=message_ids
        )

    @property
    def analytics(self) -> Analytics:
        """Custom event kinds, tracking, usage statistics, export (see :mod:`engram.analytics`)."""
        with self._lock:
            if self._analytics is None:
                from .analytics.service import Analytics

                self._analytics = Analytics(self.store, self.settings)
            return self._analytics

    @property
    def state(self) -> StateService:
        """Agent state: versioned JSON values in namespaces (see :mod:`engram.state`)."""
        with self._lock:
            if self._state is None:
                from .state import StateService

                self._state = StateService(self.store, self.embedder)
            return self._state

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the embedding models (the default and every tenant's collections') and
        every collection's indexes (embedded store) now, so that the first search does not
        pay for them (``engram serve`` calls this before it accepts requests). A model that
        cannot load is logged here and reported by readiness, not raised."""
        collections = self.store.warm_up()  # PostgreSQL: none, it keeps no index in memory
        self.embedders.warm_up(self.store.embedding_models())
        # One search per collection (the first few) runs what indexes alone do not: the
        # analyzer, the typo-tolerance vocabulary, the keyword leg's thread.
        for collection in collections[:WARM_UP_SEARCHES]:
            try:
                self.search("warm up", collection=collection.name, tenant=collection.tenant)
            except EngramError as exc:
                logger.warning("warm-up: searching %r failed: %s", collection.name, exc)

    def close(self) -> None:
        self.searcher.close()
        self.store.close()
        self.searcher.embedding_cache.close()
        self.searcher.result_cache.close()
        self.embedders.close()
        if self._reranker is not None:
            self._reranker.close()
        self._close_llm()

    def __enter__(self) -> Engram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
