"""Import batches (:mod:`engram.store.import_contract`) in a backend's tables, written once
for both backends over a :class:`~engram.store.session.Session`.

What a backend keeps to itself is the document side: capturing a replaced document inside
its own write transaction (``write_documents(..., batch=...)``), and, during a rollback,
reading, deleting and writing documents with its own write path, so that every index (BM25,
vectors; PostgreSQL's postings and statistics) changes in the same transaction as the
documents. It provides that through :meth:`ImportTables._rollback_session`.
"""

from __future__ import annotations

import contextlib
import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import CollectionNotFound, Conflict, NotFound
from ..types import Collection
from . import rows as shared
from .import_contract import (
    BatchStatus,
    DocumentEntry,
    ImportBatch,
    ImportStore,
    ItemKind,
    RollbackReport,
    conflicts_of,
    document_write,
)
from .records import DocumentWrite
from .session import Session, Tables

_BATCH_COLS = (
    "id, tenant, kind, source, collections, status, counts, started_at, finished_at,"
    " rolled_back_at, irreversible, created"
)
_SHOWN = 20  # conflicting documents named in the error


class DocumentRollback(Protocol):
    """The document side of a rollback, in the backend's write transaction."""

    def collection(self, collection_id: int) -> Collection | None:
        """The collection (of the session's tenant), or None when it was deleted."""

    def hold_vectors(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        vectors: dict[str, np.ndarray],
    ) -> None:
        """Put back the vectors of ``documents``' chunks that the cache dropped (``vectors``
        holds them) and hold the others until the end of the transaction. Called for every
        collection before any document is locked: writers take their locks in that order
        (embeddings, then documents), so a rollback and a writer never wait for each other
        in a cycle."""

    def current(self, collection: Collection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """key → (version, content hash) of those documents that exist, locked until the
        end of the transaction."""

    def remove(self, collection: Collection, keys: Sequence[str]) -> None: ...

    def restore(self, collection: Collection, documents: Sequence[DocumentWrite]) -> None:
        """Write ``documents`` as new versions (or new documents), their vectors held."""

    def finish(self) -> None:
        """Before the commit: the index bookkeeping of everything written."""


class ImportTables(Tables, ImportStore):
    """Batches, their documents, vectors and items."""

    @abstractmethod
    def _rollback_session(
        self, tenant: str
    ) -> contextlib.AbstractContextManager[tuple[Session, DocumentRollback]]:
        """One write transaction for a rollback: a Session for the batch tables and the
        document side on the same transaction."""

    def _rolled_back(self, collections: Sequence[Collection]) -> None:  # noqa: B027 - hook
        """After the commit: bring derived indexes of ``collections`` up to date."""

    # -- rows ----------------------------------------------------------------------------------
    def _batch(self, r: Sequence[Any]) -> ImportBatch:
        dec = self.dialect.decoding
        return ImportBatch(
            id=r[0],
            tenant=r[1],
            kind=r[2],
            source=r[3],
            collections=list(dec.json(r[4])),
            status=r[5],
            counts=dict(dec.json(r[6])),
            started_at=shared.required(dec.time(r[7], True)),
            finished_at=dec.time(r[8], True),
            rolled_back_at=dec.time(r[9], True),
            irreversible=r[10],
        )

    def _owner(self, tenant: str) -> tuple[tuple[str, ...], str, str]:
        """The tenant value, column and mark of a batch's child row (PostgreSQL only)."""
        if self.dialect.tenant_on_children:
            return (tenant,), "tenant, ", "?, "
        return (), "", ""

    def _get(self, s: Session, batch_id: str, tenant: str, lock: bool = False) -> Sequence[Any]:
        row = s.row(
            f"SELECT {_BATCH_COLS} FROM import_batches WHERE id = ? AND tenant = ?"
            + (self.dialect.lock_rows if lock else ""),
            (batch_id, tenant),
        )
        if row is None:
            raise NotFound(
                f"no import batch {batch_id!r}", hint="`engram import --batches` lists them"
            )
        return row

    # -- the contract --------------------------------------------------------------------------
    def begin_import(
        self, batch_id: str, *, tenant: str, kind: str, source: str, collections: Sequence[str]
    ) -> ImportBatch:
        d = self.dialect
        with self._session(tenant, write=True) as s:
            s.run(
                "INSERT INTO import_batches (id, tenant, kind, source, collections, status,"
                f" counts, started_at) VALUES (?, ?, ?, ?, {d.json_mark}, 'running',"
                f" {d.json_mark}, ?)",
                (
                    batch_id,
                    tenant,
                    kind,
                    source,
                    json.dumps(list(collections), ensure_ascii=False),
                    "{}",
                    d.time_value(shared.monotonic_now()),
                ),
            )
            return self._batch(self._get(s, batch_id, tenant))

    def finish_import(
        self,
        batch_id: str,
        *,
        tenant: str,
        status: BatchStatus,
        counts: dict[str, int],
        collections: Sequence[str],
        created: Sequence[int] = (),
        irreversible: str | None = None,
    ) -> ImportBatch:
        d = self.dialect
        with self._session(tenant, write=True) as s:
            s.run(
                f"UPDATE import_batches SET status = ?, counts = {d.json_mark},"
                f" collections = {d.json_mark}, created = {d.json_mark}, irreversible = ?,"
                " finished_at = ? WHERE id = ? AND tenant = ?",
                (
                    status,
                    shared.metadata_json(dict(counts)),
                    json.dumps(list(collections), ensure_ascii=False),
                    json.dumps(list(created)),
                    irreversible,
                    d.time_value(shared.monotonic_now()),
                    batch_id,
                    tenant,
                ),
            )
            return self._batch(self._get(s, batch_id, tenant))

    def import_batches(self, *, tenant: str, limit: int = 100) -> list[ImportBatch]:
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT {_BATCH_COLS} FROM import_batches WHERE tenant = ?"
                " ORDER BY started_at DESC, id DESC LIMIT ?",
                (tenant, self.dialect.limit(limit)),
            )
        return [self._batch(r) for r in found]

    def get_import_batch(self, batch_id: str, *, tenant: str) -> ImportBatch:
        with self._session(tenant) as s:
            return self._batch(self._get(s, batch_id, tenant))

    def record_import_items(
        self, batch_id: str, *, tenant: str, kind: ItemKind, ids: Sequence[str]
    ) -> None:
        if not ids:
            return
        owner, col, mark = self._owner(tenant)
        table = "conversations" if kind == "conversation" else "memories"
        with self._session(tenant, write=True) as s:
            stamps = self._stamps(s, table, tenant, ids)
            s.run_many(
                f"INSERT INTO import_items ({col}batch_id, kind, item_id, stamp)"
                f" VALUES ({mark}?, ?, ?, ?)",
                [(*owner, batch_id, kind, i, stamps[i]) for i in ids if i in stamps],
            )

    def record_import_documents(
        self, batch_id: str, collection: Collection, written: Sequence[tuple[str, int, str]]
    ) -> None:
        if not written:
            return
        owner, col, mark = self._owner(collection.tenant)
        with self._session(collection.tenant, write=True) as s:
            s.run_many(
                f"INSERT INTO import_documents ({col}batch_id, collection_id, key, action,"
                f" after_version, after_hash) VALUES ({mark}?, ?, ?, 'added', ?, ?)",
                [(*owner, batch_id, collection.id, k, v, h) for k, v, h in written],
            )

    def _stamps(self, s: Session, table: str, tenant: str, ids: Sequence[str]) -> dict[str, str]:
        """id → updated_at (ISO text) of the tenant's rows of ``table`` among ``ids``."""
        dec = self.dialect.decoding
        out: dict[str, str] = {}
        for i in range(0, len(ids), shared.ID_BATCH):
            part = list(ids[i : i + shared.ID_BATCH])
            marks = ",".join("?" * len(part))
            for row_id, stamp in s.rows(
                f"SELECT id, updated_at FROM {table} WHERE tenant = ? AND id IN ({marks})",
                (tenant, *part),
            ):
                out[row_id] = shared.required(dec.time(stamp, False))
        return out

    # -- rollback ------------------------------------------------------------------------------
    def rollback_import(self, batch_id: str, *, tenant: str, force: bool = False) -> RollbackReport:
        touched: list[Collection] = []
        with self._rollback_session(tenant) as (s, docs):
            row = self._get(s, batch_id, tenant, lock=True)
            report = RollbackReport(self._batch(row))
            _refuse(report.batch, force)
            found: list[tuple[Collection, list[DocumentEntry]]] = []
            for cid, entries in self._entries(s, batch_id).items():
                collection = docs.collection(cid)
                if collection is None:
                    report.conflicts += [f"(a deleted collection)/{e.key}" for e in entries]
                    continue
                found.append((collection, entries))
                writes = _writes(entries)
                if writes:  # embeddings first, then documents: the writers' lock order
                    vectors = self._vectors(s, batch_id, collection.model_id)
                    docs.hold_vectors(collection, writes, vectors)
            plans: list[tuple[Collection, list[DocumentEntry], dict[str, tuple[int, str]]]] = []
            for collection, entries in found:
                current = docs.current(collection, [e.key for e in entries])
                report.conflicts += conflicts_of(entries, current, collection)
                plans.append((collection, entries, current))
            items = self._items(s, batch_id, tenant, report)
            if report.conflicts and not force:
                shown = ", ".join(report.conflicts[:_SHOWN])
                more = len(report.conflicts) - _SHOWN
                raise Conflict(
                    f"import batch {batch_id!r}: {len(report.conflicts)} record(s) were changed"
                    f" after the import: {shown}" + (f" and {more} more" if more > 0 else ""),
                    hint="pass --force (force=True) to roll back anyway, overwriting those changes",
                )
            for collection, entries, current in plans:
                self._roll_back_documents(docs, collection, entries, current, report)
                touched.append(collection)
            for table, _, ids in items:
                for i in range(0, len(ids), shared.ID_BATCH):
                    part = ids[i : i + shared.ID_BATCH]
                    marks = ",".join("?" * len(part))
                    report.counts[table] += s.run(
                        f"DELETE FROM {table} WHERE tenant = ? AND id IN ({marks})",
                        (tenant, *part),
                    )
            docs.finish()
            # The kept states have served: the batch stays listed, without them.
            s.run("DELETE FROM import_vectors WHERE batch_id = ?", (batch_id,))
            s.run("UPDATE import_documents SET before = NULL WHERE batch_id = ?", (batch_id,))
            s.run(
                "UPDATE import_batches SET status = 'rolled_back', rolled_back_at = ? WHERE id = ?",
                (self.dialect.time_value(shared.monotonic_now()), batch_id),
            )
            report.batch = self._batch(self._get(s, batch_id, tenant))
        self._rolled_back(touched)
        self._drop_created(row, tenant)
        report.counts = +report.counts  # without zeros
        return report

    def _roll_back_documents(
        self,
        docs: DocumentRollback,
        collection: Collection,
        entries: list[DocumentEntry],
        current: dict[str, tuple[int, str]],
        report: RollbackReport,
    ) -> None:
        added = [e.key for e in entries if e.action == "added" and e.key in current]
        if added:
            docs.remove(collection, added)
            report.counts["deleted"] += len(added)
        kept = [e for e in entries if e.before is not None]
        if kept:
            docs.restore(collection, _writes(kept))
            report.counts["restored"] += sum(e.action == "updated" for e in kept)
            report.counts["re-created"] += sum(e.action == "deleted" for e in kept)

    def _entries(self, s: Session, batch_id: str) -> dict[int, list[DocumentEntry]]:
        dec = self.dialect.decoding
        out: dict[int, list[DocumentEntry]] = {}
        for cid, key, action, before, version, digest in s.rows(
            "SELECT collection_id, key, action, before, after_version, after_hash"
            " FROM import_documents WHERE batch_id = ? ORDER BY collection_id, key",
            (batch_id,),
        ):
            after = (int(version), str(digest)) if version is not None else None
            kept = dec.json(before) if before is not None else None
            out.setdefault(int(cid), []).append(DocumentEntry(int(cid), key, action, kept, after))
        return out

    def _items(
        self, s: Session, batch_id: str, tenant: str, report: RollbackReport
    ) -> list[tuple[str, ItemKind, list[str]]]:
        """(table, kind, ids to delete) of the batch's conversations and memories; those
        changed since the import are added to the report's conflicts."""
        out: list[tuple[str, ItemKind, list[str]]] = []
        kinds: tuple[tuple[str, ItemKind], ...] = (
            ("conversations", "conversation"),
            ("memories", "memory"),
        )
        for table, kind in kinds:
            left = dict(
                s.rows(
                    "SELECT item_id, stamp FROM import_items WHERE batch_id = ? AND kind = ?",
                    (batch_id, kind),
                )
            )
            now = self._stamps(s, table, tenant, sorted(left))
            report.conflicts += [f"{kind} {i}" for i in sorted(now) if now[i] != left[i]]
            if now:
                out.append((table, kind, sorted(now)))
        return out

    def _vectors(self, s: Session, batch_id: str, model_id: str) -> dict[str, np.ndarray]:
        d = self.dialect
        return {
            h: d.vector_from(v)
            for h, v in s.rows(
                "SELECT text_hash, vector FROM import_vectors WHERE batch_id = ? AND model_id = ?",
                (batch_id, model_id),
            )
        }

    def _drop_created(self, row: Sequence[Any], tenant: str) -> None:
        """Delete the collections the import created, if the rollback left them empty."""
        created = {int(c) for c in self.dialect.decoding.json(row[11])}
        if not created:
            return
        for name in self._batch(row).collections:
            with contextlib.suppress(CollectionNotFound):
                collection = self.get_collection(name, tenant=tenant)
                if collection.id in created and collection.document_count == 0:
                    self.delete_collection(name, tenant=tenant)

    if TYPE_CHECKING:  # provided by the backend's store

        def get_collection(
            self, name: str, *, tenant: str = "default", counts: bool = True
        ) -> Collection: ...

        def delete_collection(self, name: str, *, tenant: str = "default") -> None: ...


def _refuse(batch: ImportBatch, force: bool) -> None:
    if batch.status == "rolled_back":
        raise Conflict(
            f"import batch {batch.id!r} was rolled back already ({batch.rolled_back_at})"
        )
    if batch.status == "running" and not force:
        raise Conflict(
            f"import batch {batch.id!r} is still running (or the process running it died)",
            hint="wait for the import to end; if its process died, pass --force to undo what"
            " it wrote",
        )
    if batch.irreversible:
        raise Conflict(
            f"import batch {batch.id!r} cannot be rolled back: {batch.irreversible}",
            hint="restore a backup taken before the import (engram restore)",
        )


def _writes(entries: Sequence[DocumentEntry]) -> list[DocumentWrite]:
    """The documents to write back: the states the batch replaced or deleted."""
    return [document_write(e.key, e.before) for e in entries if e.before is not None]
