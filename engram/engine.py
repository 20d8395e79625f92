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
from .config import Settings
from .errors import (
    CollectionNotFound,
    Conflict,
    EngramError,
    InvalidInput,
    ModelMismatch,
    NotFound,
    Unauthorized,
)
from .keys import ApiKey, bump_revision, check_scopes, new_key, parse_key, secret_matches
from .memory.types import is_internal
from .providers import get_embedder, get_reranker, is_remote
from .providers.embedders.base import Embedder
from .providers.rerankers.base import Reranker
from .search.analyzer import LANGUAGES, detect_language
from .search.fusion import FUSION_METHODS
from .search.multi import resolve, search_collections
from .search.searcher import Searcher, SearchRequest, SearchResponse
from .store import open_store
from .store.contract import Store
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

if TYPE_CHECKING:
    # Imported where used: a one-shot search (the CLI) loads neither the ingest pipeline and
    # its parsers nor the memory and state services.
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


class Engram:
    """An engram database: collections of documents, ingested, indexed and searchable."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.store: Store = store or open_store(settings)
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None
        self._memory: MemoryService | None = None
        self._state: StateService | None = None
        self._lock = threading.Lock()
        self.searcher = Searcher(self.store, settings, self.embedder, self.reranker)

    # -- models (loaded on first use) ---------------------------------------------------------
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                name = self.settings.embedding_model
                opts: dict[str, object] = {}
                if is_remote(name):
                    opts = {"batch_size": self.settings.embed_request_size}
                elif not name.startswith("hash"):
                    opts = {
                        "batch_size": self.settings.embed_batch_size,
                        "query_threads": self.settings.query_threads or None,
                        "query_batch": self.settings.query_batch,
                        "model_cache": self.settings.model_cache_dir,
                    }
                self._embedder = get_embedder(name, **opts)
            return self._embedder

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
        self, name: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT
    ) -> Collection:
        return self.store.get_collection(_public(name), tenant=tenant)

    def create_collection(
        self,
        name: str,
        *,
        language: str | None = None,
        model: str | None = None,
        fusion: str | None = None,
        fusion_alpha: float | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Collection:
        """Create an empty collection (a first ingest creates one too, with the defaults).
        ``language`` fixes its keyword analysis (en, fr, none; the settings' default unless
        that is "auto", which needs documents to detect from); ``model`` must be the
        configured embedding model (one process embeds with one model); ``fusion`` and
        ``fusion_alpha`` override the settings' hybrid fusion for this collection.
        Conflict (409) when it exists."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or "/" in name:
            raise InvalidInput("a collection name is 1 to 200 characters, without '/'")
        lang = language or self.settings.language
        if lang not in LANGUAGES:
            raise InvalidInput(
                f"a new collection needs a language: one of {', '.join(LANGUAGES)}, not {lang!r}",
                hint="'auto' detects the language from a first ingest; name it to create"
                " an empty collection",
            )
        embedder = self.embedder()
        if model is not None and model not in (embedder.model_id, self.settings.embedding_model):
            raise ModelMismatch(
                f"this engram embeds with {embedder.model_id!r}, not {model!r}",
                hint="run engram with ENGRAM_EMBEDDING_MODEL set to that model to create"
                " collections of its vectors",
            )
        own: dict[str, Any] = self.settings.chunking()
        if fusion is not None:
            if fusion not in FUSION_METHODS:
                raise InvalidInput(f"fusion must be one of {', '.join(FUSION_METHODS)}")
            own["fusion"] = fusion
        if fusion_alpha is not None:
            if not 0.0 <= fusion_alpha <= 1.0:
                raise InvalidInput("fusion_alpha is the vector leg's weight, between 0 and 1")
            own["fusion_alpha"] = float(fusion_alpha)
        return self.store.create_collection(
            name,
            model_id=embedder.model_id,
            dimension=embedder.dimension,
            language=lang,
            settings=own,
            tenant=tenant,
        )

    def delete_collection(self, name: str, *, tenant: str = DEFAULT_TENANT) -> None:
        self.store.delete_collection(_public(name), tenant=tenant)

    def _has_collection(self, name: str, tenant: str) -> bool:
        try:
            self.store.get_collection(_public(name), tenant=tenant, counts=False)
        except CollectionNotFound:
            return False
        return True

    def _collection_for_ingest(
        self, name: str, first_docs: list[LoadedDocument], language: str | None, tenant: str
    ) -> Collection:
        embedder = self.embedder()
        if is_internal(name):
            raise InvalidInput(
                f"{name!r} is not a collection name: a collection name has no '/'",
                hint="names with '/' are engram's own (users' conversation recall)",
            )
        try:
            collection = self.store.get_collection(name, tenant=tenant)
        except CollectionNotFound:
            lang = language or self.settings.language
            if lang == "auto":
                lang = detect_language(d.title + "\n" + d.text for d in first_docs)
            try:
                return self.store.create_collection(
                    name,
                    model_id=embedder.model_id,
                    dimension=embedder.dimension,
                    language=lang,
                    settings=self.settings.chunking(),
                    tenant=tenant,
                )
            except Conflict:
                # Created meanwhile by another process (e.g. concurrent job workers each
                # ingesting a part of one batch): use that one, after the same model check.
                collection = self.store.get_collection(name, tenant=tenant)
        if collection.model_id != embedder.model_id or collection.dimension != embedder.dimension:
            raise ModelMismatch(
                f"collection {name!r} holds {collection.model_id!r} vectors ({collection.dimension}-d);"
                f" the configured embedding model is {embedder.model_id!r} ({embedder.dimension}-d)",
                hint=f"use --model {collection.model_id} (ENGRAM_EMBEDDING_MODEL), or ingest into"
                " another collection (-c NAME) to use the new model",
            )
        return collection

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
    ) -> IngestReport:
        """Ingest files and folders (``"-"`` for stdin, keyed ``stdin_key``, by default
        from its content's hash). With ``sync``, documents of the collection that are not
        among them are deleted (mirror a folder).

        A file whose size and modification time, or else whose bytes, are those its
        documents were stamped with, under the same settings, is skipped without being
        parsed (engram.ingest.stamps); ``reparse`` parses every file."""
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
        stamps = FileStamps(
            self.settings, self.embedder().model_id, loader_options, lookup, reparse=reparse
        )
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
            collection, items, sync=sync, language=language, progress=progress, tenant=tenant
        )

    def add(
        self,
        documents: Iterable[Mapping[str, Any] | LoadedDocument | Failure],
        *,
        collection: str = DEFAULT_COLLECTION,
        language: str | None = None,
        progress: ProgressCallback | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> IngestReport:
        """Ingest documents given as ``{"id", "text", "title"?, "metadata"?}`` dicts."""
        from .ingest.items import items_from_records

        return self._run(
            collection,
            items_from_records(documents),
            sync=False,
            language=language,
            progress=progress,
            tenant=tenant,
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
        collection = self._collection_for_ingest(
            name, [d for d in head if isinstance(d, LoadedDocument)], language, tenant
        )
        from .ingest.pipeline import IngestPipeline

        pipeline = IngestPipeline(self.store, self.settings, self.embedder())
        with tracing.span("ingest", collection=name, sync=sync):
            report = pipeline.run(
                collection, itertools.chain(head, iterator), sync=sync, progress=progress
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

    def document_text(
        self, key: str, collection: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT
    ) -> str:
        """The text of a document as indexed (its current version): its chunks, put back at
        their offsets. Overlapping chunks are not repeated; the whitespace trimmed between
        two chunks comes back as one space, or a blank line where it was longer."""
        chunks = self.store.document_chunks(self.collection(collection, tenant=tenant), key)
        parts: list[str] = []
        covered = None  # end offset of the text written so far
        for chunk in chunks:
            if covered is not None and chunk.end <= covered:
                continue  # wholly inside the text written (an overlap)
            if covered is None or chunk.start >= covered:
                if covered is not None:
                    parts.append(" " if chunk.start - covered <= 1 else "\n\n")
                parts.append(chunk.text)
            else:
                parts.append(chunk.text[covered - chunk.start :])
            covered = chunk.end
        return "".join(parts)

    def versions(
        self, key: str, collection: str = DEFAULT_COLLECTION, *, tenant: str = DEFAULT_TENANT
    ) -> list[DocumentVersion]:
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
        alpha: float | None = None,
        group_by: Literal["document"] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> SearchResponse:
        """Search a collection; ``response.results`` holds the chunks, best first, each
        naming its ``collection``. ``collection`` may list several (``["kb", "faq"]``) or be
        ``"*"`` (every collection of the tenant): one ranking across them, paged as one
        (engram.search.multi says how their scores are made comparable).
        ``fusion`` (``dbsf``, ``minmax``, ``rrf``) and ``alpha`` (the vector leg's weight, 0
        to 1) override the collection's fusion for this hybrid search. ``group_by="document"``
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
        )
        self.searcher.validate(request)
        targets = resolve(self.store, collection, tenant=tenant)
        return search_collections(self.searcher, targets, request)

    # -- conversations and memories ----------------------------------------------------------
    @property
    def memory(self) -> MemoryService:
        """Conversations and long-term memories of users (see :mod:`engram.memory`)."""
        with self._lock:
            if self._memory is None:
                from .memory import MemoryService
                from .memory.recall import Recall

                recall = Recall(self.store, self.settings, self.embedder, self.searcher)
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
    def state(self) -> StateService:
        """Agent state: versioned JSON values in namespaces (see :mod:`engram.state`)."""
        with self._lock:
            if self._state is None:
                from .state import StateService

                self._state = StateService(self.store, self.embedder)
            return self._state

    # -- API keys ------------------------------------------------------------------------------
    def create_key(
        self,
        *,
        tenant: str = DEFAULT_TENANT,
        scopes: Sequence[str] = ("read",),
        name: str = "",
        user_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns the record and the full key, which is shown only once.
        ``user_id`` binds the key to that user of the tenant: it reaches only the user's
        conversations, memories and state (and cannot have the admin scope)."""
        granted = check_scopes(list(scopes))
        if user_id is not None:
            if not user_id.strip() or len(user_id) > 200:
                raise InvalidInput("a key's user id must be 1 to 200 characters")
            if "admin" in granted:
                raise InvalidInput(
                    "a key bound to one user cannot have the admin scope",
                    hint="give it read and write; administer with a tenant-wide key",
                )
        key_id, full, secret_hash = new_key()
        record = ApiKey(key_id, tenant, name, granted, _now(), user_id=user_id)
        self.store.create_api_key(record, secret_hash)
        return record, full

    def keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        return self.store.list_api_keys(tenant)

    def revoke_key(self, key_id: str) -> None:
        if not self.store.revoke_api_key(key_id):
            raise NotFound(
                f"no active API key {key_id!r}", hint="list keys with `engram keys list`"
            )
        # Servers remember verified keys for a few seconds: tell them to forget (engram.keys).
        bump_revision(self.settings.data_dir, redis_url=self.settings.redis_url)

    def authenticate(self, presented: str) -> ApiKey:
        """The active key matching ``presented``; raises Unauthorized otherwise. Not cached,
        so a revoked key is refused on its very next use."""
        try:
            key_id, secret = parse_key(presented)
        except InvalidInput as exc:
            raise Unauthorized("malformed API key", hint=exc.hint) from exc
        found = self.store.get_api_key(key_id)
        if found is None or not secret_matches(secret, found[1]):
            raise Unauthorized("invalid API key")
        if not found[0].active:
            raise Unauthorized("this API key was revoked")
        return found[0]

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the embedding model and every collection's indexes now, so that the first
        search does not pay for them (``engram serve`` calls this before it accepts requests).
        A model that cannot load is logged here and reported by readiness, not raised."""
        try:
            self.embedder().embed_query("warm-up")
        except EngramError as exc:
            logger.warning("warm-up: the embedding model did not load: %s", exc)
            return
        # One search per collection (the first few) runs what indexes alone do not: the
        # analyzer, the typo-tolerance vocabulary, the keyword leg's thread.
        for collection in self.store.warm_up()[:WARM_UP_SEARCHES]:
            try:
                self.search("warm up", collection=collection.name, tenant=collection.tenant)
            except EngramError as exc:
                logger.warning("warm-up: searching %r failed: %s", collection.name, exc)

    def close(self) -> None:
        self.searcher.close()
        self.store.close()
        self.searcher.embedding_cache.close()
        self.searcher.result_cache.close()
        for model in (self._embedder, self._reranker):
            if model is not None:
                model.close()

    def __enter__(self) -> Engram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
