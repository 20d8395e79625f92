"""SQLite implementation of the bulk part of the store contract used by ``engram.transfer``:
a consistent snapshot to export from, and writes that carry documents, conversations and
memories over exactly as they were exported (versions, timestamps, ids, vectors).

A mixin of :class:`engram.store.sqlite.SQLiteStore`, sharing its connection, write lock and
error translation. A snapshot of a database file reads through a connection of its own in
one read transaction (WAL: writers go on meanwhile, the export sees none of their changes);
an in-memory database has only the store's connection, so its snapshot holds the store's
lock until the export ends.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import Conflict, InvalidInput
from ...memory.types import Conversation, MemoryEvent, MemoryRecord, Message
from ...types import Collection
from .. import rows as shared
from ..contract import StoreSnapshot
from ..records import (
    ChunkWrite,
    ConversationDump,
    DocumentDump,
    DocumentVersion,
    EventWrite,
    MemoryDump,
    StoredVersion,
    VersionChunk,
)
from ..versions import layout_rows, pack_text, unpack_text, version_chunk
from .sql import DECODING, WriteLock, connect, insert_chunks, translate

if TYPE_CHECKING:
    from .derived import DerivedIndexes

_COLLECTIONS = (
    "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
    " c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id),"
    " (SELECT count(*) FROM chunks k WHERE k.collection_id = c.id)"
    " FROM collections c WHERE c.tenant = ? ORDER BY c.name"
)


class SQLiteSnapshot(StoreSnapshot):
    """Reads one SQLite read transaction; see :class:`~engram.store.contract.StoreSnapshot`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Stream rows (a cursor of its own: several may be open at once)."""
        with translate():
            cursor = self._conn.execute(sql, params)
        while True:
            with translate():
                rows = cursor.fetchmany(256)
            if not rows:
                return
            yield from rows

    def tenants(self) -> list[str]:
        return [
            r[0]
            for r in self._rows(
                "SELECT tenant FROM collections UNION SELECT tenant FROM conversations"
                " UNION SELECT tenant FROM memories UNION SELECT tenant FROM events ORDER BY 1"
            )
        ]

    def collections(self, tenant: str) -> list[Collection]:
        return [shared.collection(r, DECODING) for r in self._rows(_COLLECTIONS, (tenant,))]

    def documents(self, collection: Collection) -> Iterator[DocumentDump]:
        docs = self._rows(
            "SELECT id, key, title, version, content_hash, metadata, source, created_at,"
            " updated_at FROM documents WHERE collection_id = ? ORDER BY key",
            (collection.id,),
        )
        for r in docs:
            layout: dict[int, list[VersionChunk]] = {}
            for c in self._rows(
                "SELECT version, ordinal, start_char, end_char, page, heading_path, text_hash"
                " FROM version_chunks WHERE document_id = ? ORDER BY version, ordinal",
                (r[0],),
            ):
                layout.setdefault(c[0], []).append(version_chunk(c[1:]))
            versions: list[DocumentVersion] = []
            kept: dict[int, StoredVersion] = {}
            for v in self._rows(
                "SELECT version, content_hash, chunk_count, created_at, title, metadata, source,"
                " body, restored_from FROM document_versions WHERE document_id = ? ORDER BY version",
                (r[0],),
            ):
                if v[7] is not None or v[0] in layout:
                    kept[v[0]] = StoredVersion(
                        key=r[1],
                        version=v[0],
                        current=v[0] == r[3],
                        content_hash=v[1],
                        created_at=v[3],
                        title=v[4] or "",
                        metadata=json.loads(v[5]) if v[5] else {},
                        source=v[6] or "",
                        text=unpack_text(v[7]),
                        chunks=layout.get(v[0], []),
                        restored_from=v[8],
                    )
                versions.append(DocumentVersion(v[0], v[1], v[2], v[3], v[0] in kept, v[8]))
            chunks = [
                ChunkWrite(
                    ordinal=c[0],
                    text=c[1],
                    start=c[2],
                    end=c[3],
                    text_hash=c[6],
                    terms=c[7],
                    page=c[4],
                    heading_path=tuple(json.loads(c[5])),
                )
                for c in self._rows(
                    "SELECT ordinal, text, start_char, end_char, page, heading_path, text_hash,"
                    " terms FROM chunks WHERE document_id = ? ORDER BY ordinal",
                    (r[0],),
                )
            ]
            yield DocumentDump(
                key=r[1],
                title=r[2],
                version=r[3],
                content_hash=r[4],
                metadata=json.loads(r[5]),
                source=r[6],
                created_at=r[7],
                updated_at=r[8],
                versions=versions,
                chunks=chunks,
                kept=kept,
            )

    def embeddings(self, collection: Collection) -> Iterator[tuple[str, bytes]]:
        for text_hash, blob in self._rows(
            "SELECT text_hash, vector FROM embeddings WHERE model_id = ? AND text_hash IN"
            " (SELECT text_hash FROM chunks WHERE collection_id = ? UNION"
            " SELECT v.text_hash FROM version_chunks v JOIN documents d ON d.id = v.document_id"
            " WHERE d.collection_id = ?) ORDER BY text_hash",
            (collection.model_id, collection.id, collection.id),
        ):
            yield text_hash, bytes(blob)

    def conversations(self, tenant: str) -> Iterator[ConversationDump]:
        for r in self._rows(
            "SELECT id, tenant, user_id, title, metadata, created_at, updated_at"
            " FROM conversations WHERE tenant = ? ORDER BY id",
            (tenant,),
        ):
            messages = [
                Message(m[0], m[1], m[2], m[3], json.loads(m[4]), m[5], m[6])
                for m in self._rows(
                    "SELECT id, conversation_id, role, content, metadata, created_at, speaker"
                    " FROM messages WHERE conversation_id = ? ORDER BY id",
                    (r[0],),
                )
            ]
            conversation = Conversation(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6])
            yield ConversationDump(conversation, messages)

    def memories(self, tenant: str) -> Iterator[MemoryDump]:
        for r in self._rows(
            "SELECT id, tenant, user_id, agent_id, content, metadata, source, model_id,"
            " created_at, updated_at, deleted_at, content_hash, embedding"
            " FROM memories WHERE tenant = ? ORDER BY id",
            (tenant,),
        ):
            history = [
                MemoryEvent(*h)
                for h in self._rows(
                    "SELECT id, memory_id, event, old_content, new_content, created_at, source"
                    " FROM memory_history WHERE memory_id = ? ORDER BY id",
                    (r[0],),
                )
            ]
            record = MemoryRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), *r[6:11])
            yield MemoryDump(record, r[11], bytes(r[12]), history)

    def events(self, tenant: str) -> Iterator[EventWrite]:
        for r in self._rows(
            "SELECT kind, user_id, key_id, query, result_count, latency_ms, data, created_at"
            " FROM events WHERE tenant = ? ORDER BY created_at, id",
            (tenant,),
        ):
            yield EventWrite(
                tenant,
                r[0],
                user_id=r[1],
                key_id=r[2],
                query=r[3],
                result_count=r[4],
                latency_ms=r[5],
                data=json.loads(r[6]),
                created_at=r[7],
            )


class SQLiteTransferMixin:
    """Snapshot and bulk imports over the store's SQLite file."""

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    _write_lock: WriteLock
    path: str

    if TYPE_CHECKING:

        def _snapshot(self) -> contextlib.AbstractContextManager[None]: ...

        def _put_embeddings(
            self, collection: Collection, embeddings: dict[str, np.ndarray]
        ) -> None: ...

        def _present_hashes(self, model_id: str, hashes: set[str]) -> set[str]: ...

        def _catch_up(self, collection: Collection) -> DerivedIndexes: ...

        def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StoreSnapshot]:
        if self.path == ":memory:":
            with self._snapshot():
                yield SQLiteSnapshot(self._conn)
            return
        conn = connect(Path(self.path))
        try:
            with translate():
                conn.execute("BEGIN")
                # A WAL read transaction takes its snapshot at its first read.
                conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
            yield SQLiteSnapshot(conn)
        finally:
            with translate():
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()

    # -- documents ---------------------------------------------------------------------------
    def import_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentDump],
        embeddings: dict[str, np.ndarray],
    ) -> None:
        cid = collection.id
        with self._transaction() as conn:
            self._put_embeddings(collection, embeddings)
            for doc in documents:
                if conn.execute(
                    "SELECT 1 FROM documents WHERE collection_id = ? AND key = ?", (cid, doc.key)
                ).fetchone():
                    raise Conflict(
                        f"document {doc.key!r} already exists in collection {collection.name!r}"
                    )
                doc_id = conn.execute(
                    "INSERT INTO documents (collection_id, key, title, version, content_hash,"
                    " metadata, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        doc.key,
                        doc.title,
                        doc.version,
                        doc.content_hash,
                        json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True),
                        doc.source,
                        doc.created_at,
                        doc.updated_at,
                    ),
                ).lastrowid
                assert doc_id is not None  # lastrowid of the INSERT above
                import_versions(conn, doc_id, doc)
                insert_chunks(conn, cid, doc_id, doc.version, doc.chunks)
                hashes = {c.text_hash for c in doc.chunks}
                missing = hashes - self._present_hashes(collection.model_id, hashes)
                if missing:
                    raise InvalidInput(
                        f"document {doc.key!r} has {len(missing)} chunk(s) without a vector",
                        hint="the export is incomplete: its embeddings file lacks these texts",
                    )
        self._catch_up(collection)

    def rename_collection(
        self,
        collection: Collection,
        name: str,
        *,
        swap: bool = False,
        created_at: str | None = None,
    ) -> Collection | None:
        displaced: Collection | None = None
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM collections WHERE tenant = ? AND name = ?",
                (collection.tenant, name),
            ).fetchone()
            if row and row[0] != collection.id:
                if not swap:
                    raise Conflict(f"collection {name!r} already exists")
                # (tenant, name) is unique: park the displaced one on a name nobody uses.
                conn.execute(
                    "UPDATE collections SET name = ? WHERE id = ?", (f"~swap~{row[0]}", row[0])
                )
            conn.execute(
                "UPDATE collections SET name = ?, created_at = coalesce(?, created_at)"
                " WHERE id = ?",
                (name, created_at, collection.id),
            )
            if row and row[0] != collection.id:
                conn.execute(
                    "UPDATE collections SET name = ? WHERE id = ?", (collection.name, row[0])
                )
                displaced = _collection_by_id(conn, row[0])
        return displaced

    # -- conversations and memories ---------------------------------------------------------


def import_versions(conn: sqlite3.Connection, doc_id: int, doc: DocumentDump) -> None:
    """Insert a document's history as exported, with the content kept of its versions."""
    for v in doc.versions:
        kept = doc.kept.get(v.version)
        conn.execute(
            "INSERT INTO document_versions (document_id, version, content_hash, chunk_count,"
            " created_at, title, metadata, source, body, restored_from)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                doc_id,
                v.version,
                v.content_hash,
                v.chunk_count,
                v.created_at,
                *_content_values(kept),
            ),
        )
        if kept:
            conn.executemany(
                "INSERT INTO version_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(doc_id, v.version, *row) for row in layout_rows(kept.chunks)],
            )


def _content_values(kept: StoredVersion | None) -> tuple[Any, ...]:
    """(title, metadata, source, body, restored_from) of a kept version; NULLs without one."""
    if kept is None:
        return (None, None, None, None, None)
    meta = json.dumps(kept.metadata, ensure_ascii=False, sort_keys=True)
    return (kept.title, meta, kept.source, pack_text(kept.text), kept.restored_from)


def _collection_by_id(conn: sqlite3.Connection, cid: int) -> Collection:
    r = conn.execute(
        "SELECT id, tenant, name, model_id, dimension, language, settings, created_at, 0, 0"
        " FROM collections WHERE id = ?",
        (cid,),
    ).fetchone()
    return shared.collection(r, DECODING)
