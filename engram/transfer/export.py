"""``engram export``: everything (or a selection) of a store, as the portable format.

The whole export reads one snapshot of the store, so it is consistent even while writers go
on, and streams: documents, chunks and vectors go from the store's cursors to the files
without a collection ever being held in memory. API keys are never exported (they are
secrets; create new ones on the target), nor background jobs (operational state).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import CollectionNotFound, InvalidInput
from ..memory.types import is_internal
from ..store.contract import StoreSnapshot, TransferStore
from ..types import Collection
from . import archive, records
from . import format as fmt
from .report import TransferReport

Progress = Callable[[str], None]


def export_data(
    store: TransferStore,
    path: str | Path,
    *,
    tenants: Sequence[str] | None = None,
    collections: Sequence[str] | None = None,
    memories: bool = True,
    events: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """Export to ``path`` (a new folder, or a ``.tar`` / ``.tar.gz`` file).

    ``tenants``: only these (default: every tenant). ``collections``: only these collection
    names (in each selected tenant). ``memories``: conversations, messages, memories and
    their history. ``events``: analytics events.
    """
    try:
        return _export(store, Path(path), tenants, collections, memories, events, force, progress)
    except OSError as exc:
        raise InvalidInput(
            f"cannot write the export to {path}: {exc.strerror or exc}",
            hint="check the path, its permissions and the free disk space",
        ) from exc


def _export(
    store: TransferStore,
    target: Path,
    tenants: Sequence[str] | None,
    collections: Sequence[str] | None,
    memories: bool,
    events: bool,
    force: bool,
    progress: Progress | None,
) -> TransferReport:
    started = time.perf_counter()
    report = TransferReport("export", str(target))
    say = progress or (lambda _: None)
    manifest = fmt.Manifest(created_at=fmt.now(), source={"backend": fmt.backend_name(store)})
    with archive.writing(target, force=force) as root, store.snapshot() as snap:
        known = snap.tenants()
        chosen = list(dict.fromkeys(tenants)) if tenants else known
        unknown = [t for t in chosen if t not in known]
        if unknown:
            raise InvalidInput(
                f"tenant {unknown[0]!r} has no data to export",
                hint=f"tenants with data: {', '.join(known) or 'none'}",
            )
        found: set[str] = set()
        for tenant in chosen:
            for collection in snap.collections(tenant):
                if collection.name.startswith(fmt.STAGING_PREFIX):
                    continue  # an import in progress, or the leftover of a failed one
                if is_internal(collection.name):
                    continue  # a recall index: rebuilt from the imported messages
                if collections is not None and collection.name not in collections:
                    continue
                found.add(collection.name)
                folder = f"collections/{len(manifest.collections) + 1:04d}"
                say(f"collection {tenant}/{collection.name}")
                entry = _export_collection(snap, collection, root, folder, manifest, report)
                manifest.collections.append(entry)
        missing = [c for c in collections or () if c not in found]
        if missing:
            raise CollectionNotFound(
                f"no collection named {missing[0]!r} in the selected tenant(s)",
                hint="list them with `engram collections`",
            )
        if memories or events:
            for tenant in chosen:
                folder = f"tenants/{len(manifest.tenants) + 1:04d}"
                entry = _export_tenant(
                    snap, tenant, root, folder, manifest, report, memories, events
                )
                if any(entry[k] for k in ("conversations", "memories", "events")):
                    manifest.tenants.append(entry)
                else:
                    for name in list(manifest.files):
                        if name.startswith(folder + "/"):
                            del manifest.files[name]
                            (root / name).unlink()
                    (root / folder).rmdir()
        report.bytes = sum(f["bytes"] for f in manifest.files.values())
        report.bytes += fmt.write_manifest(root, manifest)
    report.seconds = time.perf_counter() - started
    report.extra["format_version"] = fmt.FORMAT_VERSION
    return report


def _export_collection(
    snap: StoreSnapshot,
    collection: Collection,
    root: Path,
    folder: str,
    manifest: fmt.Manifest,
    report: TransferReport,
) -> dict[str, object]:
    docs = fmt.JsonlWriter(root, f"{folder}/{fmt.DOCUMENTS}")
    chunks = fmt.JsonlWriter(root, f"{folder}/{fmt.CHUNKS}")
    vectors = fmt.JsonlWriter(root, f"{folder}/{fmt.EMBEDDINGS}")
    try:
        for doc in snap.documents(collection):
            docs.write(records.document_line(doc))
            for chunk in doc.chunks:
                chunks.write(records.chunk_line(doc, chunk))
        for text_hash, blob in snap.embeddings(collection):
            if len(blob) != 4 * collection.dimension:
                raise InvalidInput(
                    f"collection {collection.name!r}: the vector of {text_hash} has"
                    f" {len(blob) // 4} dimensions, not {collection.dimension}"
                )
            vectors.write(
                {
                    "model_id": collection.model_id,
                    "text_hash": text_hash,
                    "vector": fmt.vector_b64(blob),
                }
            )
    finally:
        infos = {w.name: w.close() for w in (docs, chunks, vectors)}
    manifest.files.update({name: info.to_dict() for name, info in infos.items()})
    counts = {
        "documents": infos[docs.name].records,
        "chunks": infos[chunks.name].records,
        "embeddings": infos[vectors.name].records,
    }
    report.counts["collections"] += 1
    report.counts.update(counts)
    return {
        "tenant": collection.tenant,
        "name": collection.name,
        "path": folder,
        "model_id": collection.model_id,
        "dimension": collection.dimension,
        "language": collection.language,
        "settings": collection.settings,
        "created_at": collection.created_at,
        **counts,
    }


def _export_tenant(
    snap: StoreSnapshot,
    tenant: str,
    root: Path,
    folder: str,
    manifest: fmt.Manifest,
    report: TransferReport,
    memories: bool,
    events: bool,
) -> dict[str, object]:
    entry: dict[str, object] = {"tenant": tenant, "path": folder}
    writers: list[fmt.JsonlWriter] = []
    try:
        if memories:
            conversations = fmt.JsonlWriter(root, f"{folder}/{fmt.CONVERSATIONS}")
            messages = fmt.JsonlWriter(root, f"{folder}/{fmt.MESSAGES}")
            mems = fmt.JsonlWriter(root, f"{folder}/{fmt.MEMORIES}")
            history = fmt.JsonlWriter(root, f"{folder}/{fmt.HISTORY}")
            writers += [conversations, messages, mems, history]
            for conv in snap.conversations(tenant):
                conversations.write(records.conversation_line(conv.conversation))
                for message in conv.messages:
                    messages.write(records.message_line(message))
            for memory in snap.memories(tenant):
                mems.write(records.memory_line(memory))
                for event in memory.history:
                    history.write(records.history_line(event))
        if events:
            event_writer = fmt.JsonlWriter(root, f"{folder}/{fmt.EVENTS}")
            writers.append(event_writer)
            for analytics in snap.events(tenant):
                event_writer.write(records.event_line(analytics))
    finally:
        infos = {w.name: w.close() for w in writers}
    manifest.files.update({name: info.to_dict() for name, info in infos.items()})
    for name, kind in (
        (fmt.CONVERSATIONS, "conversations"),
        (fmt.MESSAGES, "messages"),
        (fmt.MEMORIES, "memories"),
        (fmt.HISTORY, "memory_history"),
        (fmt.EVENTS, "events"),
    ):
        info = infos.get(f"{folder}/{name}")
        entry[kind] = info.records if info else 0
        if info:
            report.counts[kind] += info.records
    return entry
