"""PostgreSQL implementation of the bulk part of the store contract used by
``engram.transfer``: a consistent snapshot to export from, and writes that carry documents,
conversations and memories over exactly as they were exported.

A mixin of :class:`engram.store.postgres.PostgresStore`. The snapshot is one REPEATABLE READ,
READ ONLY transaction as the system tenant; it streams through server-side cursors (several
open at once in that transaction), so a collection never sits in memory whole: documents,
their versions and their chunks come from three cursors ordered by key and are joined on
the fly. Orders use the "C" collation, which is SQLite's bytewise order, so both backends
export the same bytes. A collection's vectors are read from its chunks' own copies.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg.rows import dict_row

from ...errors import CollectionNotFound, Conflict, InvalidInput, StoreError
from ...memory.types import Conversation, MemoryEvent, MemoryRecord, Message
from ...types import Collection
from ..contract import StoreSnapshot
from ..records import (
    ChunkWrite,
    ConversationDump,
    DocumentDump,
    DocumentVersion,
    DocumentWrite,
    EventWrite,
    MemoryDump,
    StoredVersion,
    VersionChunk,
)
from ..versions import layout_rows, pack_text, unpack_text, version_chunk
from .bm25 import BlockCounts
from .connection import SYSTEM, iso, parse_vector, translate
from .sql import dumps
from .write import PostgresWriteMixin, vector_rows

if TYPE_CHECKING:
    import psycopg

_ITERSIZE = 1000


def _seconds(value: Any) -> str:
    return iso(value, timespec="seconds") or ""


def _micro(value: Any) -> str:
    return iso(value) or ""


class _Grouped:
    """Rows sorted by a key, handed out group by group to a merge join with a parent stream."""

    def __init__(self, rows: Iterator[dict[str, Any]], key: str) -> None:
        self._rows = rows
        self._key = key
        self._next = next(rows, None)

    def take(self, value: str) -> list[dict[str, Any]]:
        out = []
        while self._next is not None and self._next[self._key] == value:
            out.append(self._next)
            self._next = next(self._rows, None)
        return out


def _kept(key: str, current: int, v: dict[str, Any], chunks: list[VersionChunk]) -> StoredVersion:
    """The content kept of one version (a row of document_versions) for an export."""
    return StoredVersion(
        key=key,
        version=v["version"],
        current=v["version"] == current,
        content_hash=v["content_hash"],
        created_at=_seconds(v["created_at"]),
        title=v["title"] or "",
        metadata=v["metadata"] or {},
        source=v["source"] or "",
        text=unpack_text(v["body"]),
        chunks=chunks,
        restored_from=v["restored_from"],
    )


class PostgresSnapshot(StoreSnapshot):
    """Reads one snapshot transaction; see :class:`~engram.store.contract.StoreSnapshot`."""

    def __init__(self, cur: psycopg.Cursor[dict[str, Any]]) -> None:
        self._cur = cur
        self._names = itertools.count()

    def _all(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cur.execute(query, params)
        return self._cur.fetchall()

    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Rows through a server-side cursor of the snapshot's transaction."""
        conn = self._cur.connection
        with conn.cursor(f"engram_export_{next(self._names)}", row_factory=dict_row) as cur:
            cur.itersize = _ITERSIZE
            cur.execute(query, params)
            yield from cur

    def tenants(self) -> list[str]:
        rows = self._all(
            "SELECT tenant FROM collections UNION SELECT tenant FROM conversations"
            " UNION SELECT tenant FROM memories UNION SELECT tenant FROM events"
        )
        return sorted(r["tenant"] for r in rows)

    def collections(self, tenant: str) -> list[Collection]:
        rows = self._all(
            "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
            " c.created_at, (SELECT count(*) FROM chunks k WHERE k.collection_id = c.id) AS chunks,"
            " (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS documents"
            ' FROM collections c WHERE c.tenant = %s ORDER BY c.name COLLATE "C"',
            (tenant,),
        )
        return [
            Collection(
                id=r["id"],
                tenant=r["tenant"],
                name=r["name"],
                model_id=r["model_id"],
                dimension=r["dimension"],
                language=r["language"],
                settings=r["settings"],
                created_at=_seconds(r["created_at"]),
                document_count=r["documents"],
                chunk_count=r["chunks"],
            )
            for r in rows
        ]

    def documents(self, collection: Collection) -> Iterator[DocumentDump]:
        cid = (collection.id,)
        versions = _Grouped(
            self._stream(
                "SELECT d.key, v.version, v.content_hash, v.chunk_count, v.created_at, v.title,"
                " v.metadata, v.source, v.body, v.restored_from"
                " FROM document_versions v JOIN documents d ON d.id = v.document_id"
                ' WHERE d.collection_id = %s ORDER BY d.key COLLATE "C", v.version',
                cid,
            ),
            "key",
        )
        layouts = _Grouped(
            self._stream(
                "SELECT d.key, c.version, c.ordinal, c.start_char, c.end_char, c.page,"
                " c.heading_path, c.text_hash FROM version_chunks c"
                " JOIN documents d ON d.id = c.document_id WHERE d.collection_id = %s"
                ' ORDER BY d.key COLLATE "C", c.version, c.ordinal',
                cid,
            ),
            "key",
        )
        chunks = _Grouped(
            self._stream(
                "SELECT d.key, c.ordinal, c.text, c.start_char, c.end_char, c.page,"
                " c.heading_path, c.text_hash, c.terms FROM chunks c"
                " JOIN documents d ON d.id = c.document_id"
                ' WHERE c.collection_id = %s ORDER BY d.key COLLATE "C", c.ordinal',
                cid,
            ),
            "key",
        )
        for r in self._stream(
            "SELECT key, title, version, content_hash, metadata, source, created_at, updated_at"
            ' FROM documents WHERE collection_id = %s ORDER BY key COLLATE "C"',
            cid,
        ):
            layout: dict[int, list[VersionChunk]] = {}
            for c in layouts.take(r["key"]):
                layout.setdefault(c["version"], []).append(version_chunk(list(c.values())[2:]))
            history = versions.take(r["key"])
            kept = {
                v["version"]: _kept(r["key"], r["version"], v, layout.get(v["version"], []))
                for v in history
                if v["body"] is not None or v["version"] in layout
            }
            yield DocumentDump(
                key=r["key"],
                title=r["title"],
                version=r["version"],
                content_hash=r["content_hash"],
                metadata=r["metadata"],
                source=r["source"],
                created_at=_seconds(r["created_at"]),
                updated_at=_seconds(r["updated_at"]),
                versions=[
                    DocumentVersion(
                        v["version"],
                        v["content_hash"],
                        v["chunk_count"],
                        _seconds(v["created_at"]),
                        v["version"] in kept,
                        v["restored_from"],
                    )
                    for v in history
                ],
                kept=kept,
                chunks=[
                    ChunkWrite(
                        ordinal=c["ordinal"],
                        text=c["text"],
                        start=c["start_char"],
                        end=c["end_char"],
                        text_hash=c["text_hash"],
                        terms=c["terms"],
                        page=c["page"],
                        heading_path=tuple(c["heading_path"]),
                    )
                    for c in chunks.take(r["key"])
                ],
            )

    def embeddings(self, collection: Collection) -> Iterator[tuple[str, bytes]]:
        # The chunks' own copies: the shared cache may have lost a vector that another
        # tenant's deletion judged orphaned (row-level security hides this tenant's chunks).
        # Past versions' chunks have no copy: their vectors come from the cache.
        for r in self._stream(
            "SELECT * FROM (SELECT * FROM ("
            " SELECT DISTINCT ON (text_hash) text_hash, embedding::text AS vector"
            " FROM chunks WHERE collection_id = %s ORDER BY text_hash"
            ") AS current UNION ALL SELECT e.text_hash, e.vector::text FROM embeddings e"
            " WHERE e.model_id = %s AND e.text_hash IN (SELECT v.text_hash FROM version_chunks v"
            " JOIN documents d ON d.id = v.document_id WHERE d.collection_id = %s)"
            " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.collection_id = %s"
            " AND c.text_hash = e.text_hash)) AS every"
            ' ORDER BY text_hash COLLATE "C"',
            (collection.id, collection.model_id, collection.id, collection.id),
        ):
            yield r["text_hash"], parse_vector(r["vector"]).tobytes()

    def conversations(self, tenant: str) -> Iterator[ConversationDump]:
        messages = _Grouped(
            self._stream(
                "SELECT id, conversation_id, role, content, metadata, created_at, speaker FROM messages"
                ' WHERE tenant = %s ORDER BY conversation_id COLLATE "C", id',
                (tenant,),
            ),
            "conversation_id",
        )
        for r in self._stream(
            "SELECT id, tenant, user_id, title, metadata, created_at, updated_at"
            ' FROM conversations WHERE tenant = %s ORDER BY id COLLATE "C"',
            (tenant,),
        ):
            yield ConversationDump(
                Conversation(
                    r["id"],
                    r["tenant"],
                    r["user_id"],
                    r["title"],
                    r["metadata"],
                    _micro(r["created_at"]),
                    _micro(r["updated_at"]),
                ),
                [
                    Message(
                        m["id"],
                        m["conversation_id"],
                        m["role"],
                        m["content"],
                        m["metadata"],
                        _micro(m["created_at"]),
                        m["speaker"],
                    )
                    for m in messages.take(r["id"])
                ],
            )

    def memories(self, tenant: str) -> Iterator[MemoryDump]:
        history = _Grouped(
            self._stream(
                "SELECT id, memory_id, event, old_content, new_content, created_at, source"
                ' FROM memory_history WHERE tenant = %s ORDER BY memory_id COLLATE "C", id',
                (tenant,),
            ),
            "memory_id",
        )
        for r in self._stream(
            "SELECT id, tenant, user_id, agent_id, content, metadata, source, model_id,"
            " created_at, updated_at, deleted_at, content_hash, embedding::text AS vector"
            ' FROM memories WHERE tenant = %s ORDER BY id COLLATE "C"',
            (tenant,),
        ):
            record = MemoryRecord(
                r["id"],
                r["tenant"],
                r["user_id"],
                r["agent_id"],
                r["content"],
                r["metadata"],
                r["source"],
                r["model_id"],
                _micro(r["created_at"]),
                _micro(r["updated_at"]),
                iso(r["deleted_at"]),
            )
            events = [
                MemoryEvent(
                    h["id"],
                    h["memory_id"],
                    h["event"],
                    h["old_content"],
                    h["new_content"],
                    _micro(h["created_at"]),
                    h["source"],
                )
                for h in history.take(r["id"])
            ]
            vector = parse_vector(r["vector"]).tobytes()
            yield MemoryDump(record, r["content_hash"], vector, events)

    def events(self, tenant: str) -> Iterator[EventWrite]:
        for r in self._stream(
            "SELECT kind, user_id, key_id, query, result_count, latency_ms, data, created_at"
            " FROM events WHERE tenant = %s ORDER BY created_at, id",
            (tenant,),
        ):
            yield EventWrite(
                tenant,
                r["kind"],
                user_id=r["user_id"],
                key_id=r["key_id"],
                query=r["query"],
                result_count=r["result_count"],
                latency_ms=r["latency_ms"],
                data=r["data"],
                created_at=_micro(r["created_at"]),
            )


class PostgresTransferMixin(PostgresWriteMixin):
    """Snapshot and bulk imports over the store's PostgreSQL database."""

    if TYPE_CHECKING:
        _COLLECTION_SQL_LIGHT: str

        @staticmethod
        def _collection(r: dict[str, Any]) -> Collection: ...

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[StoreSnapshot]:
        with self._tx(SYSTEM, snapshot=True) as cur:
            yield PostgresSnapshot(cur)

    # -- documents ---------------------------------------------------------------------------
    def import_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentDump],
        embeddings: dict[str, np.ndarray],
    ) -> None:
        hashes, vectors = vector_rows(collection, embeddings)
        if len({d.key for d in documents}) != len(documents):
            raise InvalidInput("the same document key twice in one import batch")
        with self._tx(collection.tenant) as cur:
            if not self._lock(cur, collection):
                raise CollectionNotFound(f"collection {collection.name!r} was deleted")
            needed = {c.text_hash for d in documents for c in d.chunks}
            present = self._use_embeddings(cur, collection.model_id, needed, hashes, vectors)
            for doc in documents:
                missing = {c.text_hash for c in doc.chunks} - present
                if missing:
                    raise InvalidInput(
                        f"document {doc.key!r} has {len(missing)} chunk(s) without a vector",
                        hint="the export is incomplete: its embeddings file lacks these texts",
                    )
            cur.execute(
                "SELECT key FROM documents WHERE collection_id = %s AND key = ANY(%s) LIMIT 1",
                (collection.id, [d.key for d in documents]),
            )
            clash = cur.fetchone()
            if clash is not None:
                raise Conflict(
                    f"document {clash['key']!r} already exists in collection {collection.name!r}"
                )
            # The store's own write path writes chunks, postings and vocabulary. Each document
            # row is inserted first, one version below the exported one, with its exported
            # times: the write path's upsert then brings it to the exported version, which
            # its chunks get as they are inserted (updating chunk rows afterwards would index
            # every vector twice). The write path's version history is replaced below.
            cur.execute(
                "INSERT INTO documents (tenant, collection_id, key, title, version, content_hash,"
                " metadata, source, created_at, updated_at)"
                " SELECT %s, %s, u.key, '', u.version - 1, '', '{}', '', u.created, u.updated"
                " FROM unnest(%s::text[], %s::int[], %s::timestamptz[], %s::timestamptz[])"
                " AS u(key, version, created, updated)",
                (
                    collection.tenant,
                    collection.id,
                    [d.key for d in documents],
                    [d.version for d in documents],
                    [d.created_at for d in documents],
                    [d.updated_at for d in documents],
                ),
            )
            writes = [
                DocumentWrite(d.key, d.title, d.content_hash, d.chunks, d.metadata, d.source)
                for d in documents
            ]
            df: BlockCounts = Counter()
            written, (added, length, _) = self._write_batch(cur, collection, writes, df)
            if [v for _, v in written] != [d.version for d in documents]:
                raise StoreError("import: the write path did not give the exported versions")
            self._bump(cur, collection, added, length, df)
            cur.execute(
                "UPDATE documents d SET updated_at = u.updated"
                " FROM unnest(%s::text[], %s::timestamptz[]) AS u(key, updated)"
                " WHERE d.collection_id = %s AND d.key = u.key RETURNING d.id, d.key",
                ([d.key for d in documents], [d.updated_at for d in documents], collection.id),
            )
            ids = {r["key"]: r["id"] for r in cur.fetchall()}
            doc_ids = [ids[d.key] for d in documents]
            cur.execute("DELETE FROM document_versions WHERE document_id = ANY(%s)", (doc_ids,))
            versions = [
                (ids[d.key], v, d.kept.get(v.version)) for d in documents for v in d.versions
            ]
            cur.execute(
                "INSERT INTO document_versions (tenant, document_id, version, content_hash,"
                " chunk_count, created_at, title, metadata, source, body, restored_from)"
                " SELECT %s, u.doc, u.version, u.hash, u.n, u.created, u.title, u.meta::jsonb,"
                " u.source, u.body, u.restored"
                " FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::timestamptz[],"
                " %s::text[], %s::text[], %s::text[], %s::bytea[], %s::int[])"
                " AS u(doc, version, hash, n, created, title, meta, source, body, restored)",
                (
                    collection.tenant,
                    [doc_id for doc_id, _, _ in versions],
                    [v.version for _, v, _ in versions],
                    [v.content_hash for _, v, _ in versions],
                    [v.chunk_count for _, v, _ in versions],
                    [v.created_at for _, v, _ in versions],
                    [k.title if k else None for _, _, k in versions],
                    [dumps(k.metadata) if k else None for _, _, k in versions],
                    [k.source if k else None for _, _, k in versions],
                    [pack_text(k.text) if k else None for _, _, k in versions],
                    [k.restored_from if k else None for _, _, k in versions],
                ),
            )
            rows = [
                (doc_id, v.version, *row)
                for doc_id, v, k in versions
                if k is not None
                for row in layout_rows(k.chunks)
            ]
            if rows:
                cur.execute(
                    "INSERT INTO version_chunks (tenant, document_id, version, ordinal,"
                    " start_char, end_char, page, heading_path, text_hash)"
                    " SELECT %s, u.doc, u.version, u.ordinal, u.s, u.e, u.page, u.heading::jsonb,"
                    " u.hash FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[],"
                    " %s::int[], %s::int[], %s::text[], %s::text[])"
                    " AS u(doc, version, ordinal, s, e, page, heading, hash)",
                    (collection.tenant, *[list(c) for c in zip(*rows)]),
                )

    @contextlib.contextmanager
    def bulk_load(self, collection: Collection) -> Iterator[None]:
        """Drop the collection's HNSW index(es) for the block and build them once at its end,
        from their own catalog definitions (CONCURRENTLY: other collections' writers are not
        blocked): pgvector builds an index several times faster than it maintains one."""
        from psycopg import sql

        marker = f"WHERE (collection_id = {int(collection.id)})"
        with translate(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                found = conn.execute(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE tablename = 'chunks' AND schemaname = current_schema()"
                    " AND indexdef LIKE '%%USING hnsw%%' AND indexdef LIKE %s",
                    ("%" + marker,),
                ).fetchall()
                for name, _ in found:
                    conn.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name))
                    )
            finally:
                conn.autocommit = False
        yield
        for name, definition in found:
            statement = definition.replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
            with translate(), self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    conn.execute(statement.encode())
                except BaseException:
                    # A failed concurrent build leaves an invalid index behind.
                    conn.execute(
                        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name))
                    )
                    raise
                finally:
                    conn.autocommit = False

    def rename_collection(
        self,
        collection: Collection,
        name: str,
        *,
        swap: bool = False,
        created_at: str | None = None,
    ) -> Collection | None:
        with self._tx(collection.tenant) as cur:
            if not self._lock(cur, collection):
                raise CollectionNotFound(f"collection {collection.name!r} was deleted")
            cur.execute(
                "SELECT id FROM collections WHERE tenant = %s AND name = %s FOR UPDATE",
                (collection.tenant, name),
            )
            row = cur.fetchone()
            other = row["id"] if row and row["id"] != collection.id else None
            if other is not None:
                if not swap:
                    raise Conflict(f"collection {name!r} already exists")
                # (tenant, name) is unique: park the displaced one on a name nobody uses.
                cur.execute(
                    "UPDATE collections SET name = %s WHERE id = %s", (f"~swap~{other}", other)
                )
            cur.execute(
                "UPDATE collections SET name = %s,"
                " created_at = coalesce(%s::timestamptz, created_at), revision = revision + 1"
                " WHERE id = %s",
                (name, created_at, collection.id),
            )
            if other is None:
                return None
            cur.execute(
                "UPDATE collections SET name = %s, revision = revision + 1 WHERE id = %s",
                (collection.name, other),
            )
            cur.execute(self._COLLECTION_SQL_LIGHT + " WHERE c.id = %s", (other,))
            displaced = cur.fetchone()
        return self._collection(displaced) if displaced else None
