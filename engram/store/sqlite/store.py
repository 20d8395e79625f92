"""The embedded backend: one SQLite file (WAL) plus derived index files beside it.

SQLite holds everything: documents, chunks with their analyzed terms, and vectors in the
``embeddings`` table. Each collection's BM25 and HNSW indexes (``indexes/<id>.bm25.npz``,
``indexes/<id>.hnsw``) are rebuilt or caught up from ``chunk_log`` whenever they are
missing or behind, so losing them loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import CollectionNotFound, Conflict, DocumentNotFound
from ...keys import ApiKey
from ...search.ann import HnswParams
from ...types import Collection, DocumentInfo
from .. import rows as shared
from ..checkpoint_tables import CheckpointTables
from ..contract import Store
from ..migrations import check_applied, load_migrations
from ..records import StampedDocument, Where
from ..state_tables import StateTables
from ..web_session_tables import WebSessionTables
from . import imports
from .derived import DerivedIndexes, remove_index_files
from .events import SQLiteEventsMixin
from .jobs import SQLiteJobsMixin
from .memory import SQLiteMemoryMixin
from .sql import DECODING, WriteLock, compile_listing, connect, translate
from .suggest import SQLiteSuggestMixin
from .transfer import SQLiteTransferMixin
from .versions import SQLiteVersionsMixin
from .writes import SQLiteWritesMixin

logger = logging.getLogger("engram.store")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLiteStore(
    SQLiteWritesMixin,
    SQLiteVersionsMixin,
    SQLiteSuggestMixin,
    SQLiteMemoryMixin,
    SQLiteJobsMixin,
    SQLiteEventsMixin,
    imports.SQLiteImportsMixin,
    SQLiteTransferMixin,
    StateTables,
    WebSessionTables,
    CheckpointTables,
    Store,
):
    """Store in ``<data_dir>/engram.db``; ``path=":memory:"`` keeps everything in memory."""

    def __init__(
        self, path: Path | str, *, index_dir: Path | None = None, hnsw: HnswParams | None = None
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.index_dir = index_dir  # None: indexes live in memory only
        self.hnsw = hnsw or HnswParams()
        self._write_lock = WriteLock()
        self._conn = connect(self.path)  # the one writer (and the reader of in-memory stores)
        self._local = threading.local()  # per thread: its read connection, its snapshot
        # Every open read connection, to close them with the store. A thread's connection is
        # also closed when the thread ends (its thread-local holder is collected): server
        # thread pools retire idle threads, and their connections must not pile up.
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._indexes: dict[int, DerivedIndexes] = {}
        self._index_lock = threading.RLock()
        self._allowed_memo = OrderedDict()  # retrieval: chunk ids of recent filters
        self._migrate()

    # -- plumbing ----------------------------------------------------------------------------
    def _migrate(self) -> None:
        with translate(), self._write_lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = dict(self._conn.execute("SELECT version, sha256 FROM schema_migrations"))
            if not check_applied(applied, load_migrations("sqlite")):
                return
            # Another process may be migrating the same file: decide what to apply inside
            # the write transaction, where the list of applied migrations cannot change.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                applied = dict(self._conn.execute("SELECT version, sha256 FROM schema_migrations"))
                for migration in check_applied(applied, load_migrations("sqlite")):
                    # executescript would COMMIT the open transaction first: run statements
                    # one by one so a failing migration rolls back completely.
                    for statement in _split_sql(migration.sql):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                        (migration.version, migration.name, migration.sha256, _now()),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _reader(self) -> sqlite3.Connection:
        """The connection this thread reads with: its open snapshot's, the writer's while
        it holds the write lock (to see its own uncommitted writes), else a connection of
        its own — readers never wait for writers in WAL mode, and one connection is never
        used by two threads at once."""
        conn: sqlite3.Connection | None = getattr(self._local, "snapshot", None)
        if conn is not None:
            return conn
        if self.path == ":memory:" or self._write_lock.held():
            return self._conn
        holder: _Reader | None = getattr(self._local, "reader", None)
        if holder is None:
            holder = _Reader(connect(self.path, reader=True))
            weakref.finalize(holder, holder.conn.close)
            self._local.reader = holder
            with self._readers_lock:
                self._readers.add(holder)
        return holder.conn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A read transaction: every statement inside sees the same database state."""
        if getattr(self._local, "snapshot", None) is not None:
            yield  # already inside one
            return
        if self.path == ":memory:" or self._write_lock.held():
            # One connection for everything: hold the write lock so no other thread's
            # statement joins the transaction.
            with self._write_lock:
                with translate():
                    self._conn.execute("BEGIN")
                try:
                    yield
                finally:
                    with translate():
                        self._conn.execute("COMMIT")
            return
        conn = self._reader()
        with translate():
            conn.execute("BEGIN")
        self._local.snapshot = conn
        try:
            yield
        finally:
            self._local.snapshot = None
            with translate():
                conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._reader()
        with translate():
            if conn is self._conn:
                with self._write_lock:
                    return conn.execute(sql, params).fetchall()
            return conn.execute(sql, params).fetchall()

    def embedding_models(self) -> list[str]:
        return [r[0] for r in self._read(shared.EMBEDDING_MODELS_SQL)]

    def close(self) -> None:
        self.sync()
        with self._readers_lock:
            readers = list(self._readers)
        with translate():
            for holder in readers:
                holder.conn.close()
            self._conn.close()

    # -- collections -------------------------------------------------------------------------
    @staticmethod
    def _collection_from_row(row: Sequence[Any]) -> Collection:
        return shared.collection(row, DECODING)

    _COLLECTION_SQL = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id),"
        " (SELECT count(*) FROM chunks k WHERE k.collection_id = c.id) FROM collections c"
    )

    _COLLECTION_SQL_LIGHT = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at, 0, 0 FROM collections c"
    )

    def create_collection(
        self,
        name: str,
        *,
        model_id: str,
        dimension: int,
        language: str,
        settings: dict[str, Any],
        tenant: str = "default",
    ) -> Collection:
        with translate(), self._write_lock:
            try:
                self._conn.execute(
                    "INSERT INTO collections (tenant, name, model_id, dimension, language,"
                    " settings, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant, name, model_id, dimension, language, json.dumps(settings), _now()),
                )
            except sqlite3.DatabaseError as exc:
                # Under concurrent first writes the driver has been seen to raise the unique
                # violation as a plain DatabaseError: the same conflict either way.
                if isinstance(exc, sqlite3.IntegrityError) or "UNIQUE constraint" in str(exc):
                    raise Conflict(f"collection {name!r} already exists") from exc
                raise
        return self.get_collection(name, tenant=tenant)

    def get_collection(
        self, name: str, *, tenant: str = "default", counts: bool = True
    ) -> Collection:
        sql = self._COLLECTION_SQL if counts else self._COLLECTION_SQL_LIGHT
        rows = self._read(sql + " WHERE c.tenant = ? AND c.name = ?", (tenant, name))
        if not rows:
            known = [c.name for c in self.list_collections(tenant=tenant)]
            raise CollectionNotFound(
                f"no collection named {name!r}",
                hint=f"existing collections: {', '.join(known)}"
                if known
                else "ingest documents first",
            )
        return self._collection_from_row(rows[0])

    def list_collections(self, *, tenant: str = "default") -> list[Collection]:
        return [
            self._collection_from_row(r)
            for r in self._read(
                self._COLLECTION_SQL + " WHERE c.tenant = ? ORDER BY c.name", (tenant,)
            )
        ]

    def delete_collection(self, name: str, *, tenant: str = "default") -> None:
        collection = self.get_collection(name, tenant=tenant)
        cid = collection.id
        with translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                hashes = [
                    h
                    for (h,) in self._conn.execute(
                        "SELECT DISTINCT text_hash FROM chunks WHERE collection_id = ? UNION"
                        " SELECT v.text_hash FROM version_chunks v JOIN documents d"
                        " ON d.id = v.document_id WHERE d.collection_id = ?",
                        (cid, cid),
                    )
                ]
                self._conn.execute("DELETE FROM chunks WHERE collection_id = ?", (cid,))
                self._conn.execute("DELETE FROM collections WHERE id = ?", (cid,))
                self._conn.execute("DELETE FROM chunk_log WHERE collection_id = ?", (cid,))
                self._conn.execute("DELETE FROM index_state WHERE collection_id = ?", (cid,))
                self._drop_orphan_embeddings(collection.model_id, hashes)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        with self._index_lock:
            self._indexes.pop(cid, None)
        if self.index_dir:
            remove_index_files(self.index_dir, cid)

    # -- documents ---------------------------------------------------------------------------
    def document_hashes(
        self, collection: Collection, *, keys: Sequence[str] | None = None
    ) -> dict[str, str]:
        query = "SELECT key, content_hash FROM documents WHERE collection_id = ?"
        if keys is None:
            return dict(self._read(query, (collection.id,)))
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(keys))
        for i in range(0, len(wanted), 500):  # under SQLite's bound-parameter limit
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(self._read(f"{query} AND key IN ({marks})", (collection.id, *part)))
        return found

    def file_stamps(
        self, collection: Collection, sources: Sequence[str]
    ) -> dict[str, list[StampedDocument]]:
        found: dict[str, list[StampedDocument]] = {}
        wanted = list(dict.fromkeys(sources))
        for i in range(0, len(wanted), 500):  # under SQLite's bound-parameter limit
            part = wanted[i : i + 500]
            rows = self._read(
                "SELECT source, key, content_hash, file_stamp FROM documents"
                f" WHERE collection_id = ? AND source IN ({','.join('?' * len(part))})"
                " AND file_stamp IS NOT NULL",
                (collection.id, *part),
            )
            for source, key, content_hash, stamp in rows:
                found.setdefault(source, []).append(StampedDocument(key, content_hash, stamp))
        return found

    def set_file_stamps(self, collection: Collection, stamps: Sequence[StampedDocument]) -> int:
        if not stamps:
            return 0
        with translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany(
                    "UPDATE documents SET file_stamp = ? WHERE collection_id = ? AND key = ?"
                    " AND content_hash = ? AND file_stamp IS NOT ?",
                    [(s.stamp, collection.id, s.key, s.content_hash, s.stamp) for s in stamps],
                )
                changed = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return changed

    def cached_embeddings(self, model_id: str, hashes: Iterable[str]) -> set[str]:
        with translate():
            return self._present_hashes(model_id, set(hashes))

    _DOC_SQL = (
        "SELECT d.id, d.key, d.title, d.version, d.content_hash, d.metadata, d.source,"
        " (SELECT count(*) FROM chunks k WHERE k.document_id = d.id), d.created_at, d.updated_at"
        " FROM documents d"
    )

    @staticmethod
    def _doc_from_row(collection: Collection, r: Sequence[Any]) -> DocumentInfo:
        return shared.document(collection, r, DECODING)

    def list_documents(
        self,
        collection: Collection,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
        contains: str | None = None,
    ) -> list[DocumentInfo]:
        cond, params = compile_listing(where, contains)
        rows = self._read(
            self._DOC_SQL
            + f" WHERE d.collection_id = ? AND {cond} ORDER BY d.key LIMIT ? OFFSET ?",
            (collection.id, *params, limit, offset),
        )
        return [self._doc_from_row(collection, r) for r in rows]

    def get_document(self, collection: Collection, key: str) -> DocumentInfo:
        rows = self._read(
            self._DOC_SQL + " WHERE d.collection_id = ? AND d.key = ?", (collection.id, key)
        )
        if not rows:
            raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
        return self._doc_from_row(collection, rows[0])

    # -- API keys ----------------------------------------------------------------------------
    _KEY_SQL = f"SELECT {shared.KEY_COLS} FROM api_keys"

    @staticmethod
    def _key_from_row(r: Sequence[Any]) -> ApiKey:
        return shared.api_key(r, DECODING)

    def create_api_key(self, key: ApiKey, secret_hash: str) -> None:
        with translate(), self._write_lock:
            self._conn.execute(
                "INSERT INTO api_keys (id, tenant, name, scopes, secret_hash, created_at,"
                " user_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.tenant,
                    key.name,
                    json.dumps(list(key.scopes)),
                    secret_hash,
                    key.created_at,
                    key.user_id,
                ),
            )

    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        rows = self._read(
            f"SELECT {shared.KEY_COLS}, secret_hash FROM api_keys WHERE id = ?", (key_id,)
        )
        return (self._key_from_row(rows[0]), rows[0][-1]) if rows else None

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant is None:
            rows = self._read(self._KEY_SQL + " ORDER BY created_at, id")
        else:
            rows = self._read(
                self._KEY_SQL + " WHERE tenant = ? ORDER BY created_at, id", (tenant,)
            )
        return [self._key_from_row(r) for r in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        with translate(), self._write_lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_now(), key_id),
            )
        return cur.rowcount == 1


class _Reader:
    """A thread's read connection (held in thread-local storage, so collected with it)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (our migrations contain no ';' inside literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
