"""The embedded store's document writes: a batch of new versions in one transaction
(documents, kept versions, chunks, change-log rows, vectors), and deletions.

A batch costs a statement per table for all of its new documents (their rows, versions,
chunks and change-log rows, numbered here under the write lock) plus a few: which of its keys
exist, the check that every chunk's vector is stored; an update costs a few statements of its
own. The derived indexes then catch up with the log.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from ... import tracing
from ...errors import InvalidInput
from ...types import Collection
from ..records import DocumentWrite, collection_vector
from ..versions import chunk_rows
from . import imports
from .derived import DerivedIndexes
from .session import SQLiteSessions
from .sql import (
    INSERT_CHUNK,
    WriteLock,
    batches,
    chunk_values,
    insert_chunks,
    next_chunk_id,
    translate,
)
from .versions import INSERT_VERSION, INSERT_VERSION_CHUNK, version_values


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _metadata_json(doc: DocumentWrite) -> str:
    return json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True) if doc.metadata else "{}"


class SQLiteWritesMixin(SQLiteSessions):
    """Writing and deleting documents (a mixin of SQLiteStore)."""

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    _write_lock: WriteLock
    _indexes: dict[int, DerivedIndexes]
    _index_lock: threading.RLock

    if TYPE_CHECKING:

        def _catch_up(self, collection: Collection) -> DerivedIndexes: ...
        def _record_version(
            self,
            doc_id: int,
            version: int,
            doc: DocumentWrite,
            now: str,
            metadata: str | None = None,
        ) -> list[str]: ...
        def _version_hashes(self, doc_ids: Sequence[int]) -> list[str]: ...

    def write_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        embeddings: dict[str, np.ndarray],
        *,
        batch: str | None = None,
    ) -> list[tuple[str, int]]:
        cid, now = collection.id, _now()
        written: list[tuple[str, int]] = []
        span = tracing.span(
            "store.transaction", **{"db.system": "sqlite", "documents": len(documents)}
        )
        with span, translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._put_embeddings(collection, embeddings)
                # Statements per batch, not per document: which keys exist, the new
                # documents (a key not stored yet, its first time in the batch) with their
                # versions, chunks and change-log rows, the check that every chunk has its
                # vector. Updates go one at a time, after the new documents.
                stored = self._stored_documents(cid, [d.key for d in documents])
                fresh: dict[str, DocumentWrite] = {}
                for doc in documents:
                    if doc.key not in stored:
                        fresh.setdefault(doc.key, doc)
                self._insert_new(cid, list(fresh.values()), now, batch, stored)
                added = {id(d) for d in fresh.values()}
                for doc in documents:
                    if id(doc) in added:
                        written.append((doc.key, 1))
                        continue
                    version = self._write_one(
                        cid, collection.model_id, doc, now, batch, stored=stored
                    )
                    written.append((doc.key, version))
                self._check_vectors(collection.model_id, documents)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._catch_up(collection)
        return written

    def _insert_new(
        self,
        cid: int,
        documents: Sequence[DocumentWrite],
        now: str,
        batch: str | None,
        stored: dict[str, tuple[int, int]],
    ) -> None:
        """Insert documents whose keys the collection does not hold (each once), version 1
        with its chunks, a statement per table for all of them: the ids are numbered here,
        as SQLite would number them, since the write lock is held. Adds them to ``stored``."""
        if not documents:
            return
        conn = self._conn
        doc_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM documents").fetchone()[0])
        chunk_id = next_chunk_id(conn)
        doc_rows: list[tuple[object, ...]] = []
        version_rows: list[tuple[object, ...]] = []
        version_chunks: list[tuple[object, ...]] = []
        chunk_rows_: list[tuple[object, ...]] = []
        log: list[tuple[int, int]] = []
        for doc in documents:
            doc_id += 1
            meta = _metadata_json(doc)
            doc_rows.append(
                (doc_id, cid, doc.key, doc.title, doc.content_hash, meta)
                + (doc.source, doc.file_stamp, now, now)
            )
            version_rows.append(version_values(doc_id, 1, doc, now, meta))
            version_chunks.extend((doc_id, 1, *row) for row in chunk_rows(doc.chunks))
            for chunk in doc.chunks:
                chunk_rows_.append((chunk_id, *chunk_values(cid, doc_id, 1, chunk)))
                log.append((cid, chunk_id))
                chunk_id += 1
            stored[doc.key] = (doc_id, 1)
        conn.executemany(
            "INSERT INTO documents (id, collection_id, key, title, version, content_hash,"
            " metadata, source, file_stamp, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            doc_rows,
        )
        conn.executemany(INSERT_VERSION, version_rows)
        conn.executemany(INSERT_VERSION_CHUNK, version_chunks)
        conn.executemany(INSERT_CHUNK, chunk_rows_)
        conn.executemany(
            "INSERT INTO chunk_log (collection_id, chunk_id, op) VALUES (?, ?, 1)", log
        )
        if batch is not None:  # an import: what it added, for its rollback
            for doc in documents:
                imports.note_after(conn, batch, cid, doc.key, (1, doc.content_hash))

    def _stored_documents(self, cid: int, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
        """key → (id, version) of the stored documents among ``keys``."""
        found: dict[str, tuple[int, int]] = {}
        for part in batches(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(part))
            for doc_id, key, version in self._conn.execute(
                "SELECT id, key, version FROM documents"
                f" WHERE collection_id = ? AND key IN ({marks})",
                (cid, *part),
            ):
                found[key] = (doc_id, version)
        return found

    def _check_vectors(self, model_id: str, documents: Sequence[DocumentWrite]) -> None:
        """InvalidInput naming the first document with a chunk whose vector is not stored."""
        wanted = {c.text_hash for d in documents for c in d.chunks}
        missing = wanted - self._present_hashes(model_id, wanted)
        for doc in documents if missing else ():
            absent = {c.text_hash for c in doc.chunks} & missing
            if absent:
                raise InvalidInput(
                    f"document {doc.key!r} has {len(absent)} chunk(s) without an embedding"
                )

    def _put_embeddings(self, collection: Collection, embeddings: dict[str, np.ndarray]) -> None:
        rows = []
        for text_hash, vector in embeddings.items():
            vec = collection_vector(collection, vector)
            rows.append((collection.model_id, text_hash, vec.tobytes()))
        self._conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)", rows)

    def _write_one(
        self,
        cid: int,
        model_id: str,
        doc: DocumentWrite,
        now: str,
        batch: str | None = None,
        *,
        stored: dict[str, tuple[int, int]] | None = None,
    ) -> int:
        """Write one document's new version. Within a batch (``write_documents``), the
        caller passes the ``stored`` documents (kept up to date here) and checks the
        vectors; alone, both happen here."""
        conn = self._conn
        if stored is None:
            row = conn.execute(
                "SELECT id, version FROM documents WHERE collection_id = ? AND key = ?",
                (cid, doc.key),
            ).fetchone()
        else:
            row = stored.get(doc.key)
        meta = _metadata_json(doc)
        if row:
            doc_id, version = row[0], row[1] + 1
            if batch is not None:  # an import: keep what it replaces, for its rollback
                imports.save_before(conn, batch, cid, model_id, doc_id, doc.key, "updated")
            conn.execute(
                "UPDATE documents SET title = ?, version = ?, content_hash = ?, metadata = ?,"
                " source = ?, file_stamp = ?, updated_at = ? WHERE id = ?",
                (
                    doc.title,
                    version,
                    doc.content_hash,
                    meta,
                    doc.source,
                    doc.file_stamp,
                    now,
                    doc_id,
                ),
            )
            old_hashes = self._remove_chunks(cid, [doc_id])
        else:
            version, old_hashes = 1, []
            doc_id = conn.execute(
                "INSERT INTO documents (collection_id, key, title, version, content_hash, metadata,"
                " source, file_stamp, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    doc.key,
                    doc.title,
                    doc.content_hash,
                    meta,
                    doc.source,
                    doc.file_stamp,
                    now,
                    now,
                ),
            ).lastrowid
        if stored is not None:
            stored[doc.key] = (doc_id, version)
        old_hashes.extend(self._record_version(doc_id, version, doc, now, meta))
        insert_chunks(conn, cid, doc_id, version, doc.chunks)
        if stored is None:
            self._check_vectors(model_id, [doc])
        self._drop_orphan_embeddings(model_id, old_hashes)
        if batch is not None:
            imports.note_after(conn, batch, cid, doc.key, (version, doc.content_hash))
        return version

    def _present_hashes(self, model_id: str, hashes: set[str]) -> set[str]:
        found: set[str] = set()
        for part in batches(list(hashes)):
            found.update(
                h
                for (h,) in self._conn.execute(
                    f"SELECT text_hash FROM embeddings WHERE model_id = ? AND text_hash IN ({','.join('?' * len(part))})",
                    (model_id, *part),
                )
            )
        return found

    def _remove_chunks(self, cid: int, doc_ids: Sequence[int]) -> list[str]:
        """Delete the chunks of documents from every index; returns their text hashes."""
        hashes: list[str] = []
        for part in batches(list(doc_ids)):
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT id, text_hash FROM chunks WHERE document_id IN ({marks})", part
            ).fetchall()
            ids = [r[0] for r in rows]
            hashes.extend(r[1] for r in rows)
            for ids_part in batches(ids):
                m = ",".join("?" * len(ids_part))
                self._conn.execute(f"DELETE FROM chunks WHERE id IN ({m})", ids_part)
            self._conn.executemany(
                "INSERT INTO chunk_log (collection_id, chunk_id, op) VALUES (?, ?, 0)",
                [(cid, i) for i in ids],
            )
        return hashes

    def _drop_orphan_embeddings(self, model_id: str, hashes: Sequence[str]) -> None:
        """Remove cached vectors no chunk and no kept version uses any more (so deleted text
        leaves no trace, and a kept version is restored without a model call)."""
        for part in batches(list(set(hashes))):
            marks = ",".join("?" * len(part))
            self._conn.execute(
                f"DELETE FROM embeddings WHERE model_id = ? AND text_hash IN ({marks})"
                " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = embeddings.text_hash)"
                " AND NOT EXISTS (SELECT 1 FROM version_chunks v"
                " WHERE v.text_hash = embeddings.text_hash)",
                (model_id, *part),
            )

    def delete_documents(
        self, collection: Collection, keys: Sequence[str], *, batch: str | None = None
    ) -> int:
        span = tracing.span("store.transaction", **{"db.system": "sqlite", "deletes": len(keys)})
        with span, translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._delete_in_tx(collection, keys, batch)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._catch_up(collection)
        return deleted

    def _delete_in_tx(self, collection: Collection, keys: Sequence[str], batch: str | None) -> int:
        cid, conn = collection.id, self._conn
        found: list[tuple[int, str]] = []
        for part in batches(list(keys)):
            marks = ",".join("?" * len(part))
            found.extend(
                conn.execute(
                    f"SELECT id, key FROM documents WHERE collection_id = ? AND key IN ({marks})",
                    (cid, *part),
                )
            )
        if batch is not None:  # an import: keep what it deletes, for its rollback
            for doc_id, key in found:
                imports.save_before(conn, batch, cid, collection.model_id, doc_id, key, "deleted")
                imports.note_after(conn, batch, cid, key, None)
        doc_ids = [doc_id for doc_id, _ in found]
        # The kept versions' vectors may go too once their documents are gone.
        hashes = self._remove_chunks(cid, doc_ids) + self._version_hashes(doc_ids)
        for part in batches(doc_ids):
            conn.execute(f"DELETE FROM documents WHERE id IN ({','.join('?' * len(part))})", part)
        self._drop_orphan_embeddings(collection.model_id, hashes)
        return len(doc_ids)
