"""``engram import PATH``: load an export (engram.transfer.format) into a store.

Collections are atomic: a collection is built under a staging name (``~import~NAME``), in
batches, and renamed to its real name in one transaction once complete, so a failure (or a
crash) never leaves a half-imported collection under the real name; the staging leftover of
a crash is removed by the next import of that collection. ``replace`` swaps the new
collection in for the existing one in that same transaction, then deletes the old one.
``merge`` adds the documents whose keys the existing collection lacks and keeps the rest:
it writes batch by batch, and re-running it after a failure resumes where it stopped.

Nothing is embedded: every vector comes from the export (an export's vectors are staged in a
temporary SQLite file, so memory stays flat whatever the collection's size). Conversations
and memories keep their ids; with ``merge`` existing ids are kept, with ``replace``
overwritten. Analytics events are imported into tenants that have none yet.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from ..errors import CollectionNotFound, Conflict, InvalidInput, ModelMismatch
from ..store.contract import Store
from ..store.import_contract import ItemKind
from ..store.records import ConversationDump, DocumentDump, MemoryDump, OnConflict
from ..types import Collection
from . import archive, records
from . import format as fmt
from .batches import Recording, recording
from .report import TransferReport

Mode = Literal["error", "merge", "replace"]
Progress = Callable[[str], None]
T = TypeVar("T")
D = TypeVar("D")  # a record with its children

_BATCH_CHUNKS = 2000  # chunks per write transaction
_BATCH_DOCS = 500
_BATCH_ROWS = 200  # conversations or memories per transaction
_BATCH_EVENTS = 2000
_ON_CONFLICT: dict[Mode, OnConflict] = {"error": "error", "merge": "skip", "replace": "replace"}


@dataclass(frozen=True, slots=True)
class _CollectionEntry:
    tenant: str
    name: str
    path: str
    model_id: str
    dimension: int
    language: str
    settings: dict[str, Any]
    created_at: str
    documents: int
    chunks: int
    embeddings: int


def import_data(
    store: Store,
    path: str | Path,
    *,
    tenants: Sequence[str] | None = None,
    collections: Sequence[str] | None = None,
    mode: Mode = "error",
    memories: bool = True,
    events: bool = True,
    progress: Progress | None = None,
) -> TransferReport:
    """Import an export folder or archive into ``store``.

    ``mode``: what to do with a collection that already exists (and with conversation and
    memory ids the tenant already has): ``"error"`` refuses before writing anything,
    ``"merge"`` keeps what exists and adds the rest, ``"replace"`` replaces it.
    ``tenants`` / ``collections`` select part of the export; ``memories`` / ``events`` say
    whether conversations and memories / analytics events are imported.
    """
    started = time.perf_counter()
    source = Path(path)
    report = TransferReport("import", str(source))
    say = progress or (lambda _: None)
    with archive.reading(source) as root:
        manifest = fmt.read_manifest(root)
        entries = _select_collections(manifest, tenants, collections)
        user = _select_tenants(manifest, tenants) if (memories or events) else []
        names = [
            f"{e.path}/{n}" for e in entries for n in (fmt.DOCUMENTS, fmt.CHUNKS, fmt.EMBEDDINGS)
        ]
        for tenant_entry in user:
            names += [n for n in manifest.files if n.startswith(tenant_entry["path"] + "/")]
        fmt.verify_files(root, manifest, names)
        report.bytes = sum(int(manifest.files[n]["bytes"]) for n in names)

        # Every refusal happens here, before anything is written.
        targets = [(e, _existing(store, e)) for e in entries]
        for entry, existing in targets:
            if existing is None:
                continue
            if mode == "error":
                raise Conflict(
                    f"collection {entry.name!r} already exists (tenant {entry.tenant!r})",
                    hint="pass --replace to replace it, or --merge to add the documents it lacks",
                )
            if mode == "merge" and (
                existing.model_id != entry.model_id or existing.dimension != entry.dimension
            ):
                raise ModelMismatch(
                    f"collection {entry.name!r} holds {existing.model_id!r} vectors"
                    f" ({existing.dimension}-d); the export's are {entry.model_id!r}"
                    f" ({entry.dimension}-d)",
                    hint="--replace the collection, or import into another store",
                )
        if mode == "error" and memories:
            for tenant_entry in user:
                _refuse_if_user_data(store, str(tenant_entry["tenant"]))

        with contextlib.ExitStack() as stack:
            batches: dict[str, Recording] = {}

            def batch_of(tenant: str) -> Recording:  # one batch per tenant written to
                if tenant not in batches:
                    batches[tenant] = stack.enter_context(
                        recording(store, tenant=tenant, kind="export", source=str(source))
                    )
                return batches[tenant]

            for entry, existing in targets:
                say(f"collection {entry.tenant}/{entry.name}")
                batch = batch_of(entry.tenant)
                batch.collection(entry.name)
                if existing is not None and mode == "merge":
                    _merge_collection(store, root, entry, existing, report, batch)
                else:
                    _import_collection(store, root, entry, mode == "replace", report, batch)
                report.counts["collections"] += 1
            on_conflict: OnConflict = _ON_CONFLICT[mode]
            for tenant_entry in user:
                tenant, folder = str(tenant_entry["tenant"]), str(tenant_entry["path"])
                if memories:
                    rec = batch_of(tenant)
                    _import_with_children(
                        store,
                        root,
                        manifest,
                        tenant,
                        folder,
                        on_conflict,
                        report,
                        _CONVERSATIONS,
                        rec,
                    )
                    _import_with_children(
                        store, root, manifest, tenant, folder, on_conflict, report, _MEMORIES, rec
                    )
                if events:
                    _import_events(store, root, manifest, tenant, folder, report)
        report.extra["batches"] = [b.id for b in batches.values()]
    report.seconds = time.perf_counter() - started
    report.extra["source_backend"] = manifest.source.get("backend")
    report.extra["format_version"] = manifest.format_version
    return report


# -- selection and checks ---------------------------------------------------------------------
def _select_collections(
    manifest: fmt.Manifest, tenants: Sequence[str] | None, names: Sequence[str] | None
) -> list[_CollectionEntry]:
    out = []
    for raw in manifest.collections:
        line = fmt.Line("manifest.json collections", raw if isinstance(raw, dict) else {})
        entry = _CollectionEntry(
            tenant=line.text("tenant"),
            name=line.text("name"),
            path=fmt.member(line.text("path"), "manifest.json collections"),
            model_id=line.text("model_id"),
            dimension=line.integer("dimension"),
            language=line.text("language"),
            settings=line.mapping("settings"),
            created_at=line.text("created_at"),
            documents=line.integer("documents"),
            chunks=line.integer("chunks"),
            embeddings=line.integer("embeddings"),
        )
        if tenants and entry.tenant not in tenants:
            continue
        if names is not None and entry.name not in names:
            continue
        out.append(entry)
    missing = [n for n in names or () if n not in {e.name for e in out}]
    if missing:
        raise CollectionNotFound(
            f"the export has no collection named {missing[0]!r} (in the selected tenants)",
            hint="exported: "
            + (", ".join(sorted({str(c.get("name")) for c in manifest.collections})) or "none"),
        )
    return out


def _select_tenants(manifest: fmt.Manifest, tenants: Sequence[str] | None) -> list[dict[str, Any]]:
    out = []
    for raw in manifest.tenants:
        if not isinstance(raw, dict) or not isinstance(raw.get("tenant"), str):
            raise InvalidInput("manifest.json: malformed tenant entry")
        fmt.member(raw.get("path"), "manifest.json tenants")
        if not tenants or raw["tenant"] in tenants:
            out.append(raw)
    return out


def _existing(store: Store, entry: _CollectionEntry) -> Collection | None:
    try:
        return store.get_collection(entry.name, tenant=entry.tenant, counts=False)
    except CollectionNotFound:
        return None


def _refuse_if_user_data(store: Store, tenant: str) -> None:
    with store.snapshot() as snap:
        has = next(iter(snap.conversations(tenant)), None) or next(
            iter(snap.memories(tenant)), None
        )
    if has is not None:
        raise Conflict(
            f"tenant {tenant!r} already has conversations or memories",
            hint="pass --merge to keep those and add the export's others, --replace to"
            " overwrite those with the same ids, or --no-memories to skip them",
        )


# -- collections ------------------------------------------------------------------------------
class _VectorStash:
    """The export's vectors of one collection, by text hash, in a temporary SQLite file."""

    def __init__(self, directory: str) -> None:
        self._conn = sqlite3.connect(Path(directory) / "vectors.db", isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("CREATE TABLE v (h TEXT PRIMARY KEY, b BLOB NOT NULL) WITHOUT ROWID")

    def load(self, lines: Iterator[fmt.Line], entry: _CollectionEntry) -> int:
        count = 0
        self._conn.execute("BEGIN")
        for batch in _batched(lines, 5000):
            rows = []
            for line in batch:
                if line.text("model_id") != entry.model_id:
                    raise InvalidInput(
                        f"{line.where}: vector of model {line.text('model_id')!r}, the"
                        f" collection's is {entry.model_id!r}"
                    )
                vector = fmt.vector_from_b64(line.value.get("vector"), entry.dimension, line.where)
                rows.append((line.text("text_hash"), vector.tobytes()))
            try:
                self._conn.executemany("INSERT INTO v VALUES (?, ?)", rows)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(f"{entry.path}/{fmt.EMBEDDINGS}: a text hash repeats") from exc
            count += len(rows)
        self._conn.execute("COMMIT")
        return count

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            rows = self._conn.execute(
                f"SELECT h, b FROM v WHERE h IN ({','.join('?' * len(part))})", part
            )
            out.update((h, np.frombuffer(b, dtype=np.float32)) for h, b in rows)
        return out

    def close(self) -> None:
        self._conn.close()


@contextlib.contextmanager
def _stash(root: Path, entry: _CollectionEntry) -> Iterator[_VectorStash]:
    with tempfile.TemporaryDirectory(prefix="engram-import-vectors-") as tmp:
        stash = _VectorStash(tmp)
        try:
            loaded = stash.load(fmt.read_lines(root, f"{entry.path}/{fmt.EMBEDDINGS}"), entry)
            _check_count(entry, "embeddings", loaded, entry.embeddings)
            yield stash
        finally:
            stash.close()


def _documents(root: Path, entry: _CollectionEntry) -> Iterator[DocumentDump]:
    docs = fmt.read_lines(root, f"{entry.path}/{fmt.DOCUMENTS}")
    chunks = fmt.read_lines(root, f"{entry.path}/{fmt.CHUNKS}")
    for line, chunk_lines in fmt.grouped(docs, chunks, "key", "document"):
        yield records.document_from(line, chunk_lines)


def _doc_batches(docs: Iterable[DocumentDump]) -> Iterator[list[DocumentDump]]:
    batch: list[DocumentDump] = []
    chunks = 0
    for doc in docs:
        batch.append(doc)
        chunks += len(doc.chunks)
        if chunks >= _BATCH_CHUNKS or len(batch) >= _BATCH_DOCS:
            yield batch
            batch, chunks = [], 0
    if batch:
        yield batch


def _write_batch(
    store: Store, collection: Collection, batch: list[DocumentDump], stash: _VectorStash
) -> None:
    hashes = {c.text_hash for d in batch for c in d.chunks}
    cached = store.cached_embeddings(collection.model_id, hashes)
    wanted = sorted(hashes - cached)
    vectors = stash.get(wanted)
    if len(vectors) != len(wanted):
        lost = next(h for h in wanted if h not in vectors)
        raise InvalidInput(
            f"collection {collection.name!r}: no vector for text hash {lost} in the export",
            hint="the export is incomplete; export again",
        )
    # The vectors of past versions' chunks, as far as the export has them (a restore
    # embeds the others): they are cached for the versions that keep them.
    past = {c.text_hash for d in batch for k in d.kept.values() for c in k.chunks} - hashes
    if past:
        past -= store.cached_embeddings(collection.model_id, past)
        vectors.update(stash.get(sorted(past)))
    store.import_documents(collection, batch, vectors)


def _written(batch: list[DocumentDump]) -> list[tuple[str, int, str]]:
    return [(d.key, d.version, d.content_hash) for d in batch]


def _import_collection(
    store: Store,
    root: Path,
    entry: _CollectionEntry,
    replace: bool,
    report: TransferReport,
    rec: Recording,
) -> None:
    staging_name = fmt.STAGING_PREFIX + entry.name
    with contextlib.suppress(CollectionNotFound):
        store.delete_collection(staging_name, tenant=entry.tenant)
        report.notes.append(f"removed {staging_name!r}, left by an interrupted import")
    staging = store.create_collection(
        staging_name,
        model_id=entry.model_id,
        dimension=entry.dimension,
        language=entry.language,
        settings=entry.settings,
        tenant=entry.tenant,
    )
    try:
        documents = chunks = 0
        written: list[tuple[str, int, str]] = []
        with _stash(root, entry) as stash, store.bulk_load(staging):
            for batch in _doc_batches(_documents(root, entry)):
                _write_batch(store, staging, batch, stash)
                written += _written(batch)
                documents += len(batch)
                chunks += sum(len(d.chunks) for d in batch)
        _check_count(entry, "documents", documents, entry.documents)
        _check_count(entry, "chunks", chunks, entry.chunks)
        displaced = store.rename_collection(
            staging, entry.name, swap=replace, created_at=entry.created_at
        )
    except BaseException:
        with contextlib.suppress(Exception):
            store.delete_collection(staging_name, tenant=entry.tenant)
        raise
    # The collection keeps its id through the rename: the batch notes its documents by it.
    store.record_import_documents(rec.id, staging, written)
    rec.counts["added"] += len(written)
    if displaced is not None:
        store.delete_collection(displaced.name, tenant=entry.tenant)
        report.notes.append(f"replaced collection {entry.tenant}/{entry.name}")
        rec.irreversible = f"it replaced collection {entry.name!r} (--replace)"
    store.sync()
    report.counts["documents"] += documents
    report.counts["chunks"] += chunks
    report.counts["embeddings"] += entry.embeddings


def _merge_collection(
    store: Store,
    root: Path,
    entry: _CollectionEntry,
    target: Collection,
    report: TransferReport,
    rec: Recording,
) -> None:
    present = store.document_hashes(target)
    documents = chunks = same = different = 0

    def fresh() -> Iterator[DocumentDump]:
        nonlocal same, different
        for doc in _documents(root, entry):
            if doc.key not in present:
                yield doc
            elif present[doc.key] == doc.content_hash:
                same += 1
            else:
                different += 1

    with _stash(root, entry) as stash:
        for batch in _doc_batches(fresh()):
            _write_batch(store, target, batch, stash)
            store.record_import_documents(rec.id, target, _written(batch))
            rec.counts["added"] += len(batch)
            documents += len(batch)
            chunks += sum(len(d.chunks) for d in batch)
    store.sync()
    report.counts["documents"] += documents
    report.counts["chunks"] += chunks
    if same:
        report.skipped["documents (unchanged)"] += same
    if different:
        report.skipped["documents (kept the existing version)"] += different


def _check_count(entry: _CollectionEntry, kind: str, got: int, expected: int) -> None:
    if got != expected:
        raise InvalidInput(
            f"collection {entry.name!r}: the export holds {got} {kind}, its manifest says"
            f" {expected}",
            hint="the export is damaged; export again",
        )


# -- conversations, memories, events ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _WithChildren(Generic[D]):
    """Records exported with their children in a second file: conversations with their
    messages, memories with their history. One description of each, so that one function
    reads, batches, writes and counts both."""

    kind: str  # the name of its count in the report
    item: ItemKind  # what an import batch calls one
    file: str
    children: str  # the name of the children's count in the report
    children_file: str
    parent_field: str  # the field of a child that holds its record's id
    read: Callable[[str, fmt.Line, list[fmt.Line]], D]
    write: Callable[[Store, str, list[D], OnConflict], list[str]]  # → the ids written
    id_of: Callable[[D], str]
    children_of: Callable[[D], Sized]


_CONVERSATIONS: _WithChildren[ConversationDump] = _WithChildren(
    "conversations",
    "conversation",
    fmt.CONVERSATIONS,
    "messages",
    fmt.MESSAGES,
    "conversation_id",
    read=records.conversation_from,
    write=lambda store, tenant, items, on_conflict: store.import_conversations(
        tenant, items, on_conflict=on_conflict
    ),
    id_of=lambda item: item.conversation.id,
    children_of=lambda item: item.messages,
)
_MEMORIES: _WithChildren[MemoryDump] = _WithChildren(
    "memories",
    "memory",
    fmt.MEMORIES,
    "memory_history",
    fmt.HISTORY,
    "memory_id",
    read=records.memory_from,
    write=lambda store, tenant, items, on_conflict: store.import_memories(
        tenant, items, on_conflict=on_conflict
    ),
    id_of=lambda item: item.record.id,
    children_of=lambda item: item.history,
)


def _import_with_children(
    store: Store,
    root: Path,
    manifest: fmt.Manifest,
    tenant: str,
    folder: str,
    on_conflict: OnConflict,
    report: TransferReport,
    family: _WithChildren[D],
    rec: Recording,
) -> None:
    name, children = f"{folder}/{family.file}", f"{folder}/{family.children_file}"
    if name not in manifest.files:
        return
    pairs = fmt.grouped(
        fmt.read_lines(root, name), fmt.read_lines(root, children), "id", family.parent_field
    )
    for batch in _batched(pairs, _BATCH_ROWS):
        items = [family.read(tenant, line, child_lines) for line, child_lines in batch]
        written = set(family.write(store, tenant, items, on_conflict))
        if on_conflict == "replace" and written:
            rec.irreversible = f"it replaced {family.kind} that existed (--replace)"
        store.record_import_items(rec.id, tenant=tenant, kind=family.item, ids=sorted(written))
        rec.counts[family.kind] += len(written)
        report.counts[family.kind] += len(written)
        report.counts[family.children] += sum(
            len(family.children_of(i)) for i in items if family.id_of(i) in written
        )
        if len(written) < len(items):
            report.skipped[f"{family.kind} (already present)"] += len(items) - len(written)


def _import_events(
    store: Store,
    root: Path,
    manifest: fmt.Manifest,
    tenant: str,
    folder: str,
    report: TransferReport,
) -> None:
    name = f"{folder}/{fmt.EVENTS}"
    if name not in manifest.files:
        return
    with store.snapshot() as snap:
        has_events = next(iter(snap.events(tenant)), None) is not None
    if has_events:
        count = int(manifest.files[name].get("records", 0))
        if count:
            report.skipped["events (tenant already has events)"] += count
            report.notes.append(
                f"analytics events of tenant {tenant!r} were not imported: the tenant already"
                " has events, and events have no identity to merge them by"
            )
        return
    for batch in _batched(fmt.read_lines(root, name), _BATCH_EVENTS):
        store.record_events([records.event_from(tenant, line) for line in batch])
        report.counts["events"] += len(batch)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
