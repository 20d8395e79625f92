"""The store contract, by concern. A backend implements :class:`Store`, all of them; each
part of the engine depends on the narrowest concern it uses (the ingest pipeline on
:class:`DocumentStore`, the searcher on :class:`RetrievalStore`, the memory service on
:class:`MemoryStore`, the job queue on :class:`JobStore`, the event recorder on
:class:`EventStore`, export and import on :class:`TransferStore`, server auth on
:class:`KeyStore`, import batches on :class:`ImportStore`). The contract tests are grouped the same way (tests/contract), so a new
backend can be brought up one concern at a time.

The store is the source of truth for collections, documents, versions, chunks and their
embeddings, conversations, memories, keys, jobs and events. Everything above it (ingestion,
fusion, reranking, highlighting, memory deduplication) is backend-independent and lives in
``engram.ingest``, ``engram.search`` and ``engram.memory``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Container, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..jobs.types import Job, JobStatus
from ..keys import ApiKey
from ..state.types import StateItem
from ..types import Collection, DocumentInfo
from .analytics_tables import OutboxItem
from .checkpoint_contract import CheckpointStore
from .import_contract import ImportStore
from .memory_contract import MemoryStore
from .records import (
    ChunkRecord,
    ConversationDump,
    DocumentDump,
    DocumentVersion,
    DocumentWrite,
    EventWrite,
    MemoryDump,
    OnConflict,
    QueryEvent,
    StampedDocument,
    StoredVersion,
    TermCompletion,
    Where,
)
from .snapshot import StoreSnapshot
from .web_session_tables import WebSessionStore


class CollectionStore(ABC):
    """Collections, named within a tenant. Every other method of the store takes a
    Collection obtained through this tenant-scoped lookup, so the tenant check happens once, here."""

    @abstractmethod
    def create_collection(
        self,
        name: str,
        *,
        model_id: str,
        dimension: int,
        language: str,
        settings: dict[str, Any],
        tenant: str = "default",
    ) -> Collection: ...

    @abstractmethod
    def get_collection(
        self, name: str, *, tenant: str = "default", counts: bool = True
    ) -> Collection:
        """Raises CollectionNotFound. ``counts=False`` skips counting documents and chunks
        (left at 0), for hot paths such as search."""

    @abstractmethod
    def list_collections(self, *, tenant: str = "default") -> list[Collection]: ...

    @abstractmethod
    def delete_collection(self, name: str, *, tenant: str = "default") -> None:
        """Remove the collection and every trace of its documents from every index."""


class DocumentStore(CollectionStore):
    """Documents, their versions, chunks and embeddings: what ingestion writes
    (engram.ingest.pipeline) and the engine lists, reads and deletes."""

    @abstractmethod
    def document_hashes(
        self, collection: Collection, *, keys: Sequence[str] | None = None
    ) -> dict[str, str]:
        """key → content hash of the current version of every document (or only of those
        of ``keys`` that exist)."""

    @abstractmethod
    def file_stamps(
        self, collection: Collection, sources: Sequence[str]
    ) -> dict[str, list[StampedDocument]]:
        """source → the stamped documents loaded from that file, for those of ``sources``
        (file paths, as in ``DocumentWrite.source``) that have any."""

    @abstractmethod
    def set_file_stamps(self, collection: Collection, stamps: Sequence[StampedDocument]) -> int:
        """Stamp documents whose current version still has the given content hash (one
        written meanwhile keeps its own stamp); returns how many stamps changed."""

    @abstractmethod
    def write_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        embeddings: dict[str, np.ndarray],
        *,
        batch: str | None = None,
    ) -> list[tuple[str, int]]:
        """Insert or replace documents in one transaction; returns (key, version) of each.
        Each new version is kept (its text, title, metadata and chunk spans; see
        :meth:`document_version`) and the versions beyond ``DocumentWrite.keep_versions``
        are dropped in the same transaction.

        ``embeddings`` maps text hashes to new vectors for the collection's model; every
        chunk's ``text_hash`` must be in it or already in the store's embedding cache.
        ``batch``: the import batch writing them (engram.store.import_contract), which keeps
        what each write replaces, in the same transaction.
        """

    @abstractmethod
    def cached_embeddings(self, model_id: str, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` already have a vector for ``model_id``."""

    @abstractmethod
    def delete_documents(
        self, collection: Collection, keys: Sequence[str], *, batch: str | None = None
    ) -> int:
        """Delete documents completely (every version, its text, chunks, index entries and
        the cached vectors nothing else uses); returns how many existed. ``batch``: as in
        write_documents."""

    @abstractmethod
    def list_documents(
        self,
        collection: Collection,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
        contains: str | None = None,
    ) -> list[DocumentInfo]:
        """Documents in key order. ``contains``: only those whose key or title contains
        this text, ASCII letters' case ignored (as the ``$contains`` filter)."""

    @abstractmethod
    def get_document(self, collection: Collection, key: str) -> DocumentInfo:
        """Raises DocumentNotFound."""

    @abstractmethod
    def document_versions(self, collection: Collection, key: str) -> list[DocumentVersion]:
        """The versions the document keeps, oldest first; raises DocumentNotFound."""

    @abstractmethod
    def document_version(
        self, collection: Collection, key: str, version: int | None = None
    ) -> StoredVersion:
        """One kept version (None: the current one) with its text, title, metadata and chunk
        spans; raises DocumentNotFound when there is no such document or version. A past
        version's chunks are never in the keyword or vector index: only the current one's."""

    @abstractmethod
    def purge_versions(
        self, collection: Collection, *, keep: int, keys: Sequence[str] | None = None
    ) -> int:
        """Drop the versions of documents (of ``keys``, or all) beyond their ``keep`` newest
        (``keep`` >= 1: the current version always stays), with the cached vectors only they
        used, in one transaction; returns how many versions were dropped."""

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Flush derived indexes (e.g. save HNSW files) so the next open starts fast."""


class RetrievalStore(CollectionStore):
    """The two retrieval legs, BM25 over analyzed terms and nearest neighbours over
    vectors, and the chunks they point at (engram.search.searcher)."""

    # True when reads are answered by another process (a database server), so the searcher
    # gains by running the keyword and vector legs of a hybrid search side by side.
    concurrent_reads: bool = False

    def grow_vector_index(self, collection: Collection) -> None:  # noqa: B027 - optional hook
        """Called after writes to one of engram's own collections (a user's recall index),
        which start without an ANN index of their own: a backend may build one once the
        collection has grown large enough for exact search to be slow."""

    @abstractmethod
    def keyword_search(
        self, collection: Collection, terms: Sequence[str], *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        """BM25 (k1=1.2, b=0.75) over analyzed terms, OR semantics: (chunk id, score), best
        first. Higher scores are better."""

    @abstractmethod
    def term_frequencies(self, collection: Collection, terms: Sequence[str]) -> dict[str, int]:
        """Number of chunks containing each term (absent terms map to 0)."""

    @abstractmethod
    def keyword_chunks(self, collection: Collection) -> int:
        """Number of chunks the collection's keyword index holds (BM25's N)."""

    @abstractmethod
    def revision(self, collection: Collection) -> int:
        """A number that changes whenever the collection's content changes (cache key)."""

    @abstractmethod
    def vocabulary(self, collection: Collection) -> list[str]:
        """Every distinct indexed term of the collection (for typo expansion)."""

    @abstractmethod
    def spelling_candidates(
        self, collection: Collection, terms: Sequence[str]
    ) -> dict[str, list[str]]:
        """For each term, indexed terms that may be within ``fuzzy.max_edits(term)`` edits of
        it: every one that is, and possibly others (the caller measures the distances, so a
        superset costs time, never results)."""

    @abstractmethod
    def complete_terms(
        self,
        collection: Collection,
        prefixes: Sequence[str],
        *,
        limit: int,
        samples: int,
        exact: Sequence[str] = (),
        known: Container[str] = (),
    ) -> list[TermCompletion]:
        """The ``limit`` indexed terms of highest document frequency that start with any of
        ``prefixes`` or equal one of ``exact`` (ties in code point order), most frequent
        first, each with the texts of up to ``samples`` chunks holding it (autocompletion:
        engram.search.suggest). The texts of terms in ``known`` (the caller has read them)
        may be left out: a backend skips them where reading them costs more than sending."""

    @abstractmethod
    def document_titles(self, collection: Collection) -> dict[str, int]:
        """Each distinct non-empty document title of the collection → its number of documents."""

    @abstractmethod
    def vector_search(
        self, collection: Collection, vector: np.ndarray, *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity: (chunk id, similarity), best first."""

    @abstractmethod
    def get_chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """Chunks of ``collection`` by id, joined with their document; ids that no longer
        exist (or belong to another collection) are absent."""

    @abstractmethod
    def document_chunks(self, collection: Collection, key: str) -> list[ChunkRecord]:
        """The chunks of document ``key`` (its current version), in text order; raises
        DocumentNotFound when the collection has no such document."""


class KeyStore(ABC):
    """API keys: a record and the hash of its secret (engram.server.auth)."""

    @abstractmethod
    def create_api_key(self, key: ApiKey, secret_hash: str) -> None: ...

    @abstractmethod
    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key record and its secret hash, or None."""

    @abstractmethod
    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke at once; returns False if there is no such active key."""


class JobStore(ABC):
    """Background jobs (engram.jobs): the queue the server fills and workers drain."""

    # A job belongs to a tenant: get_job and list_jobs take the tenant, and a job of another
    # tenant raises JobNotFound exactly like a missing one. The worker-side methods (claim,
    # progress, retry, finish, requeue, recover) serve every tenant. Their ``attempt`` is the
    # job's ``attempts`` as this worker last saw it: a fencing token, so that a worker whose
    # job was recovered and claimed again elsewhere changes nothing (the method returns False).
    @abstractmethod
    def create_job(
        self,
        job_id: str,
        *,
        tenant: str,
        kind: str,
        payload: dict[str, Any],
        collection: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        """Queue a job (status 'queued', 0 attempts)."""

    @abstractmethod
    def get_job(self, job_id: str, *, tenant: str) -> Job:
        """The job without its payload; raises JobNotFound."""

    @abstractmethod
    def list_jobs(
        self, *, tenant: str, status: JobStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        """The tenant's jobs, newest first, without their payloads."""

    @abstractmethod
    def claim_job(self) -> Job | None:
        """Atomically take the oldest queued job: it becomes 'running', its attempts grow by
        one. Returns it with its payload, or None when nothing is queued."""

    @abstractmethod
    def touch_job(self, job_id: str) -> None:
        """Refresh a running job's ``updated_at`` (the heartbeat that keeps its lease)."""

    @abstractmethod
    def set_job_progress(self, job_id: str, *, attempt: int, progress: dict[str, Any]) -> bool:
        """Replace the progress of a running job (and refresh ``updated_at``)."""

    @abstractmethod
    def retry_job(self, job_id: str, *, attempt: int, error: str) -> bool:
        """Record a failed run of a running job that will be tried again: attempts + 1."""

    @abstractmethod
    def finish_job(
        self,
        job_id: str,
        *,
        attempt: int,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """End a running job ('succeeded' or 'failed'). A succeeded job's payload is
        dropped; a failed job keeps it, so that :meth:`requeue_failed_job` can run it again."""

    @abstractmethod
    def requeue_job(self, job_id: str, *, attempt: int) -> bool:
        """Put a running job back in the queue, giving back the attempt (a graceful stop)."""

    @abstractmethod
    def requeue_failed_job(self, job_id: str, *, tenant: str) -> Job:
        """Queue a failed job of ``tenant`` again (someone fixed the cause: a retry), with
        its attempts back to 0 and its error, result and timings cleared; returns it.
        JobNotFound for a missing job (or another tenant's); Conflict when it has not failed,
        or failed without its payload (jobs that failed before payloads were kept)."""

    @abstractmethod
    def recover_jobs(self, *, stale_before: str, max_attempts: int) -> tuple[int, int]:
        """Jobs left 'running' by a dead process (``updated_at`` < ``stale_before``, an ISO
        timestamp) go back to 'queued' if attempts < ``max_attempts``, else to 'failed'.
        Returns (requeued, failed)."""

    @abstractmethod
    def purge_jobs(self, *, finished_before: str) -> int:
        """Delete every tenant's finished jobs (succeeded, or failed with the work they
        keep for a retry) that finished before ``finished_before`` (an ISO timestamp);
        returns how many. Queued and running jobs stay."""

    @abstractmethod
    def pending_jobs(self) -> dict[str, int]:
        """How many jobs of every tenant are ``queued`` and ``running``."""


class EventStore(ABC):
    """Analytics events (engram.server.recorder writes them, /v1/stats reads them), the
    registry of custom event kinds and the outbox of events to forward (engram.analytics)."""

    # Events are tenant-scoped like everything else: stats read one tenant's events only.
    @abstractmethod
    def record_events(self, events: Sequence[EventWrite], *, outbox: bool = False) -> None:
        """Insert events in one transaction; with ``outbox``, queue them for forwarding in
        the same transaction (:meth:`claim_outbox`)."""

    def record_event(self, tenant: str, kind: str, **fields: Any) -> None:
        """Insert one event; ``fields`` are those of :class:`EventWrite`."""
        self.record_events([EventWrite(tenant, kind, **fields)])

    @abstractmethod
    def event_stats(self, tenant: str, since: str, until: str) -> dict[str, Any]:
        """Statistics of the tenant's events with ``since <= created_at < until`` (ISO
        timestamps): ``counts`` (by kind), ``queries_per_day`` ([{date, count}], searches),
        ``search_latency_ms`` ({count, p50, p95}, nearest rank), ``zero_result_rate``
        (searches with no result / searches; None without searches), ``top_queries``
        ([{query, count}], the 10 most frequent normalised queries),
        ``top_zero_result_queries`` (the same, of searches with no result), ``feedback``
        ({up, down}: ``feedback`` events by their ``rating`` property) and ``active_users``
        ({total, daily: [{date, count}], monthly: [{month, count}]}: distinct user ids)."""

    @abstractmethod
    def event_insights(self, tenant: str, since: str, until: str) -> dict[str, Any]:
        """``retention`` (day 1, 7, 30), ``cohorts`` (by first-seen week), ``by_collection``
        and ``by_user`` of the tenant's events in the window (engram.store.event_insights)."""

    @abstractmethod
    def delete_user_events(self, *, tenant: str, user_id: str) -> int:
        """Delete every event of a user (erasure), queued ones too; returns how many there
        were. When there were some, an ``erasure`` event (no user, no query) records that
        events went."""

    @abstractmethod
    def suggest_events(self, tenant: str, *, after: int, limit: int) -> list[QueryEvent]:
        """The tenant's events past id ``after`` that past-query suggestions follow, in id
        order, at most ``limit``: each ``search`` that returned results and names its
        collection (``data.collection``) with its query, and each ``erasure``."""

    @abstractmethod
    def put_event_kind(self, tenant: str, name: str, schema: dict[str, Any]) -> None:
        """Register a custom event kind with its JSON schema (or replace its schema)."""

    @abstractmethod
    def event_kinds(self, tenant: str) -> dict[str, dict[str, Any]]:
        """name → JSON schema of the tenant's registered kinds, by name."""

    @abstractmethod
    def delete_event_kind(self, tenant: str, name: str) -> bool: ...

    @abstractmethod
    def export_events(self, tenant: str, since: str, until: str) -> Iterator[dict[str, Any]]:
        """The tenant's events in the window, oldest first, read a page at a time."""

    @abstractmethod
    def purge_events(self, before: str) -> int:
        """Delete every tenant's events (and queued ones) older than ``before``."""

    @abstractmethod
    def claim_outbox(self, owner: str, *, limit: int, lease: float) -> list[OutboxItem]:
        """Take up to ``limit`` due queued events of any tenant for ``lease`` seconds."""

    @abstractmethod
    def ack_outbox(self, owner: str, ids: Sequence[int]) -> int:
        """Delete forwarded events that ``owner`` still holds."""

    @abstractmethod
    def release_outbox(self, owner: str, ids: Sequence[int], *, delay: float, error: str) -> int:
        """Give back events whose forwarding failed, due again after ``delay`` seconds."""

    @abstractmethod
    def outbox_depth(self) -> int:
        """How many events of every tenant wait to be forwarded."""


class StateStore(ABC):
    """Agent state (engram.state): JSON values under (namespace path, key) with a version per
    key and an optional expiry. An expired item is absent for every method; a write to its key
    starts it again at version 1. Namespaces are paths ("user/42/agent/planner"); a prefix
    selects the namespace itself and every namespace below it ("user/42" selects
    "user/42/agent" but not "user/420")."""

    @abstractmethod
    def put_state(
        self,
        tenant: str,
        namespace: str,
        key: str,
        value: str,
        *,
        expect: int | None,
        expires_at: datetime | None,
        embedding: tuple[str, np.ndarray] | None,
        ttl: float | None = None,
    ) -> StateItem:
        """Write ``value`` (JSON text) and return the item. ``expect`` is the compare-and-set
        token: None writes whatever is there, 0 only creates, n only replaces version n;
        otherwise VersionConflict. ``embedding`` is (model id, vector) of the indexed fields;
        ``ttl`` the seconds ``expires_at`` was computed from (kept for refresh_state)."""

    @abstractmethod
    def refresh_state(
        self, tenant: str, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        """Push back the expiry of these live (namespace, key) items by the TTL they were
        written with; returns the new expiry of each one that has a TTL."""

    @abstractmethod
    def get_state(self, tenant: str, namespace: str, key: str) -> StateItem | None: ...

    @abstractmethod
    def delete_state(
        self, tenant: str, namespace: str, key: str, *, expect: int | None = None
    ) -> bool:
        """Delete the item; False when there was none. With ``expect``, only version
        ``expect`` is deleted (VersionConflict otherwise)."""

    @abstractmethod
    def scan_state(
        self, tenant: str, prefix: str, *, model_id: str | None = None
    ) -> list[tuple[StateItem, np.ndarray | None]]:
        """Every live item under ``prefix`` ("" for all), by namespace and key, each with its
        vector when it was embedded with ``model_id`` (else None)."""

    @abstractmethod
    def state_namespaces(self, tenant: str, prefix: str) -> list[str]:
        """The distinct namespaces of live items under ``prefix``, in byte order."""

    @abstractmethod
    def purge_state(self) -> int:
        """Delete expired items of every tenant; returns how many."""


class TransferStore(ABC):
    """Moving data (engram.transfer): export, import, backends side by side."""

    # Bulk reads and writes that carry everything over (versions, timestamps, vectors, ids of
    # conversations and memories) so that export -> import -> export is byte-identical on
    # every backend (tests/test_transfer.py runs that round trip through each of them).
    @abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[StoreSnapshot]:
        """A consistent read-only view of the whole store, for export."""

    @abstractmethod
    def import_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentDump],
        embeddings: dict[str, np.ndarray],
    ) -> None:
        """Insert whole documents as they were exported (version, history, chunks with their
        terms, timestamps) in one transaction. Keys must be new to the collection (else
        Conflict); every chunk's text hash must be in ``embeddings`` or already cached for
        the collection's model (else InvalidInput). Nothing is embedded."""

    @abstractmethod
    def rename_collection(
        self,
        collection: Collection,
        name: str,
        *,
        swap: bool = False,
        created_at: str | None = None,
    ) -> Collection | None:
        """Give ``collection`` the name ``name`` within its tenant, in one transaction (and
        its creation time ``created_at`` when given). If ``name`` is taken: with ``swap``,
        that collection takes ``collection``'s old name in the same transaction and is
        returned (the caller deletes it); without, Conflict. Returns None otherwise."""

    @contextlib.contextmanager
    def bulk_load(self, collection: Collection) -> Iterator[None]:
        """Around many writes into a collection nobody searches yet (an import's staging
        copy): a backend may defer index maintenance to the end of the block, where one
        bulk build is much cheaper than row-by-row upkeep (PostgreSQL's HNSW index)."""
        yield

    @abstractmethod
    def import_conversations(
        self, tenant: str, items: Sequence[ConversationDump], *, on_conflict: OnConflict
    ) -> list[str]:
        """Insert conversations with their messages (ids and timestamps kept) in one
        transaction; returns the ids written. An id the tenant already has: Conflict
        ("error"), left alone ("skip") or deleted with its messages first ("replace"). An id
        of another tenant is always a Conflict."""

    @abstractmethod
    def import_memories(
        self, tenant: str, items: Sequence[MemoryDump], *, on_conflict: OnConflict
    ) -> list[str]:
        """Insert memories with their vectors and history (ids and timestamps kept) in one
        transaction; returns the ids written. Conflicts as in import_conversations."""


class Store(
    DocumentStore,
    RetrievalStore,
    KeyStore,
    MemoryStore,
    StateStore,
    CheckpointStore,
    JobStore,
    EventStore,
    TransferStore,
    ImportStore,
    WebSessionStore,
):
    """Persistent state of one engram data directory or database: every concern above, and
    the lifecycle. The engine holds one; each part of it receives the narrowest concern it uses."""

    # -- lifecycle ---------------------------------------------------------------------------
    def warm_up(self) -> list[Collection]:
        """Load what a first request would otherwise wait for (the embedded store's index
        files, for every collection of every tenant); returns the collections it loaded."""
        return []

    @abstractmethod
    def embedding_models(self) -> list[str]:
        """The embedding models of every tenant's collections (ids, sorted): what a server
        loads before its first request."""

    @abstractmethod
    def close(self) -> None: ...
