"""The embedded store's part of import batches (:mod:`engram.store.import_tables`): what a
write inside an import keeps of the document it replaces or deletes (called by the store's
write path, in its transaction), and the document side of a rollback, on the one writer
connection in one ``BEGIN IMMEDIATE`` transaction, so another process waits for it whole.
The derived index files follow from ``chunk_log`` after the commit, as after any write.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from ...types import Collection
from .. import rows as shared
from ..import_contract import before_state
from ..import_tables import DocumentRollback, ImportTables
from ..records import ChunkWrite, DocumentWrite
from ..session import Session
from .session import DIALECT, SQLiteSessions, _Writing
from .sql import DECODING, batches

if TYPE_CHECKING:
    from .derived import DerivedIndexes


def save_before(
    conn: sqlite3.Connection,
    batch: str,
    cid: int,
    model_id: str,
    doc_id: int,
    key: str,
    action: str,
) -> None:
    """Keep document ``doc_id`` as it is now, with its chunks' vectors, as the state batch
    ``batch`` replaced (only the first time the batch touches it)."""
    title, version, content_hash, metadata, source, stamp = conn.execute(
        "SELECT title, version, content_hash, metadata, source, file_stamp FROM documents"
        " WHERE id = ?",
        (doc_id,),
    ).fetchone()
    chunks = [
        ChunkWrite(o, text, start, end, h, terms, page, tuple(json.loads(heading)))
        for o, text, start, end, page, heading, h, terms in conn.execute(
            "SELECT ordinal, text, start_char, end_char, page, heading_path, text_hash, terms"
            " FROM chunks WHERE document_id = ? ORDER BY ordinal",
            (doc_id,),
        )
    ]
    state = before_state(title, version, content_hash, json.loads(metadata), source, stamp, chunks)
    inserted = conn.execute(
        "INSERT INTO import_documents (batch_id, collection_id, key, action, before)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (batch_id, collection_id, key) DO NOTHING",
        (batch, cid, key, action, json.dumps(state, ensure_ascii=False)),
    ).rowcount
    if not inserted:
        return  # the batch had touched it already: what it replaced then is what counts
    for part in batches(sorted({c.text_hash for c in chunks})):
        conn.execute(
            "INSERT OR IGNORE INTO import_vectors SELECT ?, model_id, text_hash, vector"
            f" FROM embeddings WHERE model_id = ? AND text_hash IN ({','.join('?' * len(part))})",
            (batch, model_id, *part),
        )


def note_after(
    conn: sqlite3.Connection, batch: str, cid: int, key: str, after: tuple[int, str] | None
) -> None:
    """Record the (version, content hash) batch ``batch`` left a document with (None:
    deleted); a document it had not touched before is one it added."""
    version, digest = after if after is not None else (None, None)
    conn.execute(
        "INSERT INTO import_documents (batch_id, collection_id, key, action, after_version,"
        " after_hash) VALUES (?, ?, ?, 'added', ?, ?) ON CONFLICT (batch_id, collection_id, key)"
        " DO UPDATE SET after_version = excluded.after_version, after_hash = excluded.after_hash",
        (batch, cid, key, version, digest),
    )


class SQLiteImportsMixin(SQLiteSessions, ImportTables):
    """Import batches in the store's SQLite file."""

    dialect = DIALECT

    if TYPE_CHECKING:  # provided by SQLiteStore

        def _catch_up(self, collection: Collection) -> DerivedIndexes: ...

        def _delete_in_tx(
            self, collection: Collection, keys: Sequence[str], batch: str | None
        ) -> int: ...

        def _write_one(
            self,
            cid: int,
            model_id: str,
            doc: DocumentWrite,
            now: str,
            batch: str | None = None,
        ) -> int: ...

        def _put_embeddings(
            self, collection: Collection, embeddings: dict[str, np.ndarray]
        ) -> None: ...

        def sync(self) -> None: ...

    @contextlib.contextmanager
    def _rollback_session(self, tenant: str) -> Iterator[tuple[Session, DocumentRollback]]:
        with self._transaction() as conn:
            yield _Writing(conn), _Documents(self, conn, tenant)

    def _rolled_back(self, collections: Sequence[Collection]) -> None:
        for collection in collections:
            self._catch_up(collection)
        self.sync()


class _Documents:
    """The document side of a rollback on the writer connection (inside its transaction)."""

    def __init__(self, store: SQLiteImportsMixin, conn: sqlite3.Connection, tenant: str) -> None:
        self._store = store
        self._conn = conn
        self._tenant = tenant

    def collection(self, collection_id: int) -> Collection | None:
        row = self._conn.execute(
            "SELECT id, tenant, name, model_id, dimension, language, settings, created_at, 0, 0"
            " FROM collections WHERE id = ? AND tenant = ?",
            (collection_id, self._tenant),
        ).fetchone()
        return shared.collection(row, DECODING) if row else None

    def current(self, collection: Collection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = {}
        for part in batches(list(keys)):
            for key, version, digest in self._conn.execute(
                "SELECT key, version, content_hash FROM documents WHERE collection_id = ?"
                f" AND key IN ({','.join('?' * len(part))})",
                (collection.id, *part),
            ):
                found[key] = (version, digest)
        return found

    def remove(self, collection: Collection, keys: Sequence[str]) -> None:
        self._store._delete_in_tx(collection, keys, None)  # noqa: SLF001 - same store

    def hold_vectors(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        vectors: dict[str, np.ndarray],
    ) -> None:
        # One writer at a time: putting the vectors back is all there is to it.
        needed = {c.text_hash for d in documents for c in d.chunks}
        self._store._put_embeddings(collection, {h: v for h, v in vectors.items() if h in needed})  # noqa: SLF001

    def restore(self, collection: Collection, documents: Sequence[DocumentWrite]) -> None:
        store = self._store
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for doc in documents:
            store._write_one(collection.id, collection.model_id, doc, now)  # noqa: SLF001

    def finish(self) -> None:
        pass
