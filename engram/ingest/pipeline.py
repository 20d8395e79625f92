"""The ingestion pipeline: loaded documents → versioned, chunked, embedded, indexed.

For each document: hash its content; skip it if the stored version has the same hash (no
embedding work at all); otherwise chunk it, look every chunk up in the embedding cache (model +
text hash), embed only the misses, and write the new version — chunks, keyword terms and
vectors — in one transaction that also removes the old version's chunks. Documents are
written in batches, one transaction per batch, so a crash loses at most the batches in flight
and the next run picks up from there.

The model runs in the background: while one batch's chunks are embedded, the calling thread
chunks and analyzes the next documents and writes the batch before (:class:`_Writer`), so
the cores are not idle during engram's own work (docs/benchmarks.md, "French ingest
(issue 15)").
"""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .. import tracing
from ..config import Settings
from ..errors import EngramError
from ..memory.types import is_internal
from ..providers.embedders.base import Embedder
from ..search.analyzer import Analyzer, analyzer_for
from ..store.contract import DocumentStore
from ..store.records import ChunkWrite, DocumentWrite, StampedDocument
from ..types import Collection, Failure, IngestReport, LoadedDocument, Skipped
from ..unicode import describe, lone_surrogate
from .chunking import chunk_document

# A transaction holds about this much work: with a model, the minimum batch (a crash loses
# little, progress moves often); when chunks cost little (vectors cached, a fast embedder),
# batches grow so that commits — each rewriting the index pages it touched — stay few.
_BATCH_SECONDS = 0.5
_MAX_BATCH_CHUNKS = 2048

logger = logging.getLogger("engram")

# Bumped whenever the way chunks are built or embedded changes, so stored documents are
# re-processed instead of being judged unchanged.
PIPELINE_VERSION = 1


@dataclass(frozen=True, slots=True)
class UnchangedFile:
    """A file skipped before parsing because it has not changed since its documents were
    stamped (engram.ingest.stamps): its documents count as unchanged and, for a sync, as
    present; ``restamp`` gives them the file's new size and modification time."""

    source: str
    keys: tuple[str, ...]
    restamp: tuple[StampedDocument, ...] = ()


Item = LoadedDocument | Failure | Skipped | UnchangedFile
ProgressCallback = Callable[[int, int], None]  # (documents done, chunks done)


@dataclass(slots=True)
class _Pending:
    doc: LoadedDocument
    content_hash: str
    chunks: list[ChunkWrite] = field(default_factory=list)
    embed_texts: dict[str, str] = field(default_factory=dict)  # text hash → text


# The metadata key of the facts of a document's file (engram.ingest.items): stored and
# filterable, but not part of the content hash.
FILE_METADATA = "file"


def content_hash(doc: LoadedDocument, settings: Settings) -> str:
    metadata = {k: v for k, v in doc.metadata.items() if k != FILE_METADATA}
    payload = json.dumps(
        [
            PIPELINE_VERSION,
            settings.chunk_tokens,
            settings.chunk_overlap,
            doc.title,
            doc.text,
            metadata,
        ],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def keep_versions(collection: Collection, settings: Settings) -> int:
    """How many versions of each document ``collection`` keeps (0: all): its own setting,
    else the global one. Users' recall indexes keep only the current one (derived data)."""
    if is_internal(collection.name):
        return 1
    own = collection.settings.get("keep_versions")
    return int(own) if isinstance(own, int) else settings.keep_versions


def embedding_text(title: str, heading_path: tuple[str, ...], body: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its body under a short context line
    (document title and section headings), so a chunk is findable by what it is about."""
    context = " > ".join(p for p in (title, *heading_path) if p and p not in body[: len(p) + 2])
    return f"{context}\n{body}" if context else body


@dataclass
class _Run:
    """What one ingest run keeps between its items."""

    settings: Settings  # with the collection's own chunking
    analyzer: Analyzer
    existing: dict[str, str]  # key → content hash of the stored documents looked up
    report: IngestReport = field(default_factory=IngestReport)
    seen: set[str] = field(default_factory=set)  # keys met in this run
    failures: list[Failure] = field(default_factory=list)
    docs_done: int = 0
    chunks_done: int = 0

    def done(self, docs: int, chunks: int) -> None:
        self.docs_done += docs
        self.chunks_done += chunks


class IngestPipeline:
    def __init__(self, store: DocumentStore, settings: Settings, embedder: Embedder) -> None:
        self.store = store
        self.settings = settings
        self.embedder = embedder
        # Enough chunks per transaction to amortise commits and keep the model batches full;
        # more when they are quick to write (next_batch).
        self.batch_chunks = max(settings.embed_batch_size * 8, 64)
        self.max_batch_chunks = _MAX_BATCH_CHUNKS

    def run(
        self,
        collection: Collection,
        items: Iterable[Item],
        *,
        sync: bool = False,
        progress: ProgressCallback | None = None,
        persist: bool = True,
        batch: str | None = None,
    ) -> IngestReport:
        """Ingest ``items``; with ``sync`` delete stored documents the items did not mention.
        ``persist=False`` leaves the derived indexes' files for a later ``store.sync()``
        (small frequent writes, such as messages indexed for recall, would rewrite them each
        time); the data is committed either way. ``batch``: the import batch the writes
        belong to (the store keeps what they replace, for a rollback)."""
        # Content hashes of stored documents, to skip unchanged ones: all of them for a sync
        # (which deletes the ones not seen), else only those of the keys being ingested,
        # looked up a group at a time (adding one document to a large collection must not
        # read every key).
        state = _Run(
            settings=self.settings.for_collection(collection.settings),  # its own chunking
            analyzer=analyzer_for(collection),
            existing=self.store.document_hashes(collection) if sync else {},
        )
        report = state.report
        pending: list[_Pending] = []
        pending_chunks = 0
        writer = _Writer(self, collection, state.existing, report, batch)
        limit = self.batch_chunks
        started = time.perf_counter()  # when the batch being gathered began
        try:
            for group in _groups(items, 256):
                if not sync:
                    keys = [i.key for i in group if isinstance(i, LoadedDocument)]
                    state.existing.update(self.store.document_hashes(collection, keys=keys))
                restamp: list[StampedDocument] = []
                for item in group:
                    entry = self._admit(state, item, restamp)
                    if entry is None:
                        continue
                    pending.append(entry)
                    pending_chunks += len(entry.chunks)
                    if pending_chunks >= limit:
                        docs, chunks = writer.push(pending)
                        state.done(docs, chunks)
                        # Between two pushes that wrote a batch: gathering this batch, then
                        # writing the one before (waiting for its vectors) — the pipeline's
                        # time per batch. The first push wrote nothing: its time says little.
                        now = time.perf_counter()
                        if docs:
                            limit = self.next_batch(pending_chunks, now - started)
                        started = now
                        pending, pending_chunks = [], 0
                    if progress:
                        progress(state.docs_done, state.chunks_done)
                self.store.set_file_stamps(collection, restamp)
                if progress:
                    progress(state.docs_done, state.chunks_done)
            state.done(*writer.finish(pending))
        except Exception:
            # A stop asked between documents (a job worker's, from ``progress``) still
            # writes the batch whose vectors are being computed, as when it was embedded
            # in this thread.
            writer.settle()
            raise
        finally:
            writer.close()
        if progress:
            progress(state.docs_done, state.chunks_done)
        if sync:
            self._delete_unseen(collection, state, batch)
        if persist:
            self.store.sync()
        return report

    def _admit(self, state: _Run, item: Item, restamp: list[StampedDocument]) -> _Pending | None:
        """``item`` chunked and analysed, ready to embed and write; or None, noted in the
        report: a source skipped or failed, a key already seen in this run, an unchanged
        file or document (counted done; ``restamp`` gets the file stamps to renew)."""
        report = state.report
        if isinstance(item, (Skipped, Failure)):
            report.note(item)
            if isinstance(item, Failure):
                state.failures.append(item)
                state.seen.update(item.keys)
            return None
        if isinstance(item, UnchangedFile):
            kept = {k for k in item.keys if _first(k, item.source, state.seen, report)}
            report.unchanged += len(kept)
            state.docs_done += len(kept)
            restamp.extend(s for s in item.restamp if s.key in kept)
            return None
        doc = item
        if not _first(doc.key, doc.source, state.seen, report):
            return None
        fields = {"key": doc.key, "title": doc.title, "text": doc.text}
        bad = lone_surrogate({**fields, "metadata": doc.metadata})
        if bad is not None:  # would fail at hashing, far from its cause
            report.failed += 1
            report.errors.append((doc.source or doc.key, describe(bad)))
            return None
        digest = content_hash(doc, state.settings)
        if state.existing.get(doc.key) == digest:
            report.unchanged += 1
            state.docs_done += 1
            if doc.file_stamp is not None:  # parsed again: give it its file's stamp
                restamp.append(StampedDocument(doc.key, digest, doc.file_stamp))
            return None
        try:
            return self._prepare(doc, digest, state.analyzer, state.settings)
        except EngramError as exc:
            report.failed += 1
            report.errors.append((doc.source or doc.key, exc.message))
            return None

    def _delete_unseen(self, collection: Collection, state: _Run, batch: str | None) -> None:
        """A sync's deletions: the stored documents this run did not see, unless a source
        that failed to load may hold any of them."""
        gone = sorted(set(state.existing) - state.seen)
        unknown = [f for f in state.failures if not f.keys]
        if gone and unknown:
            # Deleting them would lose data because of a parse error.
            state.report.errors.append(
                (
                    unknown[0].source,
                    f"sync: {len(gone)} deletion(s) skipped because this source failed",
                )
            )
        elif gone:
            state.report.deleted = self.store.delete_documents(collection, gone, batch=batch)

    def next_batch(self, chunks: int, seconds: float) -> int:
        """Chunks for the next transaction, after one of ``chunks`` took ``seconds``: about
        _BATCH_SECONDS of work, between ``batch_chunks`` and ``max_batch_chunks``."""
        wanted = chunks * _BATCH_SECONDS / max(seconds, 1e-6)
        return int(min(max(wanted, self.batch_chunks), self.max_batch_chunks))

    def _prepare(
        self, doc: LoadedDocument, digest: str, analyzer: Analyzer, settings: Settings
    ) -> _Pending:
        entry = _Pending(doc, digest)
        spans = chunk_document(
            doc,
            self.embedder.token_offsets,
            max_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap,
        )
        for ordinal, span in enumerate(spans):
            full = embedding_text(doc.title, span.heading_path, span.text)
            h = text_hash(full)
            entry.embed_texts[h] = full
            entry.chunks.append(
                ChunkWrite(
                    ordinal=ordinal,
                    text=span.text,
                    start=span.start,
                    end=span.end,
                    text_hash=h,
                    terms=" ".join(analyzer.terms(full)),
                    page=span.page,
                    heading_path=span.heading_path,
                )
            )
        return entry

    def _write(
        self,
        collection: Collection,
        pending: list[_Pending],
        new: dict[str, np.ndarray],
        existing: dict[str, str],
        report: IngestReport,
        batch: str | None,
    ) -> None:
        """One transaction: the documents of ``pending`` with their chunks, and the vectors
        ``new`` of the chunk texts the store did not have."""
        keep = keep_versions(collection, self.settings)
        internal = is_internal(collection.name)
        docs = [
            DocumentWrite(
                key=e.doc.key,
                title=e.doc.title,
                content_hash=e.content_hash,
                chunks=e.chunks,
                metadata=e.doc.metadata,
                source=e.doc.source,
                file_stamp=e.doc.file_stamp,
                text=None if internal else e.doc.text,
                keep_versions=keep,
            )
            for e in pending
        ]
        self.store.write_documents(collection, docs, new, batch=batch)
        for e in pending:
            if e.doc.key in existing:
                report.updated += 1
            else:
                report.added += 1
            existing[e.doc.key] = e.content_hash

    def _embed(self, texts: list[str]) -> Iterator[np.ndarray]:
        # The embedder sorts by length within a call; calls of at least 32 texts keep its
        # per-call work (tokenising in parallel) amortised when it runs one text at a time.
        size = max(self.settings.embed_batch_size * 4, 32)
        for i in range(0, len(texts), size):
            with tracing.span("embed", kind="passage", texts=len(texts[i : i + size])):
                vectors = self.embedder.embed_batch(texts[i : i + size], kind="passage")
            yield from vectors


@dataclass(slots=True)
class _Job:
    """One batch of documents whose missing chunk vectors are being computed."""

    pending: list[_Pending]
    wanted: dict[str, str]  # text hash → text, every chunk of the batch
    missing: list[str]  # the hashes being embedded
    vectors: Future[tuple[list[np.ndarray], float]]  # and the model's seconds


class _Writer:
    """Writes batches of prepared documents, embedding each batch's new chunk texts in a
    background thread meanwhile: :meth:`push` starts a batch and writes the one before.

    A chunk text already in the store, or being embedded for the batch before, is not
    embedded again. The store is looked up when a batch starts, but another write may drop
    a vector it had (replacing the last document that used it) before the batch is written:
    :meth:`_complete` looks again and embeds such texts then. Only the calling thread
    touches the store; the background thread only runs the embedder.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        collection: Collection,
        existing: dict[str, str],
        report: IngestReport,
        batch: str | None,
    ) -> None:
        self.pipeline, self.collection, self.existing = pipeline, collection, existing
        self.report, self.batch = report, batch
        self._executor: ThreadPoolExecutor | None = None
        self._job: _Job | None = None
        self._failed = False

    def push(self, pending: list[_Pending]) -> tuple[int, int]:
        """Start embedding ``pending`` in the background, then write the batch before it;
        (documents, chunks) written."""
        job = self._start(pending, background=True)
        previous, self._job = self._job, job
        return self._completed(previous)

    def finish(self, pending: list[_Pending]) -> tuple[int, int]:
        """Write the batch in flight and then ``pending``, embedded here (a single small
        batch, as when indexing one message, starts no thread)."""
        job = self._start(pending, background=False) if pending else None
        previous, self._job = self._job, None
        docs, chunks = self._completed(previous)
        more = self._completed(job)
        return docs + more[0], chunks + more[1]

    def settle(self) -> None:
        """After an error outside the writer: write the batch in flight, unless a batch
        already failed (its error is the one raised; this one's is only logged)."""
        job, self._job = self._job, None
        if job is None or self._failed:
            return
        try:
            self._complete(job)
        except Exception as exc:
            logger.warning("ingest stopped; the batch in flight was not written: %s", exc)

    def close(self) -> None:
        """Wait for the background thread (a batch still in flight is not written)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _completed(self, job: _Job | None) -> tuple[int, int]:
        if job is None:
            return 0, 0
        try:
            return self._complete(job)
        except BaseException:
            self._failed = True
            raise

    def _start(self, pending: list[_Pending], *, background: bool) -> _Job:
        wanted: dict[str, str] = {}
        for entry in pending:
            wanted.update(entry.embed_texts)
        in_flight = set(self._job.missing) if self._job is not None else set()
        fresh = [h for h in wanted if h not in in_flight]
        cached = self.pipeline.store.cached_embeddings(self.collection.model_id, fresh)
        missing = [h for h in fresh if h not in cached]
        texts = [wanted[h] for h in missing]
        if background:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="engram-ingest")
            context = contextvars.copy_context()  # the caller's tracing span
            vectors = self._executor.submit(context.run, self._vectors, texts)
        else:
            vectors = Future()
            vectors.set_result(self._vectors(texts))
        return _Job(pending, wanted, missing, vectors)

    def _vectors(self, texts: list[str]) -> tuple[list[np.ndarray], float]:
        t0 = time.perf_counter()
        vectors = list(self.pipeline._embed(texts))
        return vectors, time.perf_counter() - t0

    def _complete(self, job: _Job) -> tuple[int, int]:
        vectors, seconds = job.vectors.result()
        new = dict(zip(job.missing, vectors, strict=True))
        reused = [h for h in job.wanted if h not in new]
        present = self.pipeline.store.cached_embeddings(self.collection.model_id, reused)
        late = [h for h in reused if h not in present]
        if late:
            t0 = time.perf_counter()
            new.update(zip(late, self.pipeline._embed([job.wanted[h] for h in late])))
            seconds += time.perf_counter() - t0
        self.report.model_seconds += seconds
        self.pipeline._write(
            self.collection, job.pending, new, self.existing, self.report, self.batch
        )
        self.report.chunks_embedded += len(new)
        self.report.chunks_reused += len(job.wanted) - len(new)
        return len(job.pending), sum(len(e.chunks) for e in job.pending)


def _first(key: str, source: str, seen: set[str], report: IngestReport) -> bool:
    """Note the key of a document; False (a failure) when an earlier one had it."""
    if key in seen:
        report.failed += 1
        report.errors.append((source or key, f"duplicate document key {key!r}"))
        return False
    seen.add(key)
    return True


def _groups(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while group := list(itertools.islice(iterator, size)):
        yield group
