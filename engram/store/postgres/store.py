"""The PostgreSQL backend: PostgreSQL + pgvector, for several engram processes on one database.

Everything lives in tables (engram/store/postgres/migrations): BM25 postings and
per-collection statistics are maintained by every write in its transaction, with the same
analyzed terms, k1, b, IDF and document length as engram.search.bm25, so scores equal the
embedded backend's; vectors are searched by a pgvector HNSW index made per collection (a
partial expression index, see create_collection). Writes are in write, retrieval in
search (and bm25); row-level security scopes every tenant-owned table
(connection).

Round trips per search call: each store method is one transaction (tenant set-up, its
statements, commit; a pooled connection is pinged only when the server closed it).
keyword_search is one statement; vector_search two (the collection's size picks exact or
HNSW, then the search).
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ...errors import (
    CollectionNotFound,
    Conflict,
    DocumentNotFound,
)
from ...keys import ApiKey
from ...memory.types import is_internal
from ...search.ann import HnswParams
from ...search.filters import ascii_lower
from ...types import Collection, DocumentInfo
from .. import rows as shared
from ..checkpoint_tables import CheckpointTables
from ..contract import Store
from ..migrations import Migration
from ..records import StampedDocument, Where
from ..state_tables import StateTables
from ..web_session_tables import WebSessionTables
from .bm25 import PostingsCache
from .connection import (
    DECODING,
    SYSTEM,
    PostgresBase,
    one_row,
    require_psycopg,
    translate,
)
from .events import PostgresEventsMixin
from .imports import PostgresImportsMixin
from .jobs import PostgresJobsMixin
from .memory import PostgresMemoryMixin
from .search import HNSW_MAX_DIMENSION, PostgresSearchMixin
from .sql import (
    applied_migrations,
    apply_migrations,
    compile_where,
    redact,
)
from .suggest import PostgresSuggestMixin
from .transfer import PostgresTransferMixin
from .write import PostgresWriteMixin

log = logging.getLogger(__name__)


# Chunks from which a user's recall index gets an HNSW index of its own (exact search over
# 10,000 vectors takes ~40 ms on the test machine).
RECALL_INDEX_AT = 10_000


def _index_name(collection_id: int) -> sql.Identifier:
    return sql.Identifier(f"chunks_vec_{collection_id}")


class PostgresStore(
    PostgresMemoryMixin,
    PostgresJobsMixin,
    PostgresEventsMixin,
    PostgresTransferMixin,
    PostgresImportsMixin,
    PostgresWriteMixin,
    PostgresSearchMixin,
    PostgresSuggestMixin,
    PostgresBase,
    StateTables,
    WebSessionTables,
    CheckpointTables,
    Store,
):
    """Store in the PostgreSQL database at ``url`` (``postgresql://user:pass@host/db``).

    Opening applies pending migrations. ``rls_enforced`` is False when the role is a
    superuser or has BYPASSRLS, which skip row-level security (a warning is logged)."""

    concurrent_reads = True  # the database works while this process embeds the query

    def __init__(
        self,
        url: str,
        *,
        hnsw: HnswParams | None = None,
        pool_size: int = 10,
        timeout: float = 10.0,
        migrate: bool = True,
        postings_cache_mb: int = 256,
    ) -> None:
        require_psycopg()
        from psycopg_pool import ConnectionPool

        self.url = url
        self.hnsw = hnsw or HnswParams()
        self._growing: set[int] = set()  # recall indexes whose HNSW index is being built
        self.postings_cache = (
            PostingsCache(postings_cache_mb << 20) if postings_cache_mb > 0 else None
        )
        self.applied: list[Migration] = []
        with translate(), _connect(url, timeout) as conn:
            if migrate:
                self.applied = apply_migrations(conn)
            role = conn.execute(
                "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
            conn.rollback()
        self.role = str(role[0]) if role else "?"
        self.rls_enforced = not (role and (role[1] or role[2]))
        if not self.rls_enforced:
            log.warning(
                "PostgreSQL role %r is a superuser or has BYPASSRLS: row-level security does not"
                " apply to it; connect as an ordinary role that owns the database",
                self.role,
            )
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            configure=_configure,
            check=_check_connection,  # a restarted server costs no request
            timeout=timeout,
            kwargs={"connect_timeout": max(1, int(timeout)), "application_name": "engram"},
            name="engram",
        )
        with translate():
            self._pool.open(wait=True, timeout=timeout)

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def inspect(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A read-only, tenant-wide transaction on a pooled connection (readiness probes:
        it also proves the pool works); errors are translated like every store call's."""
        with self._tx(SYSTEM, snapshot=True) as cur:
            yield cur

    def pool_stats(self) -> dict[str, int]:
        """psycopg_pool's statistics of the connection pool."""
        return dict(self._pool.get_stats())

    def migrations(self) -> list[tuple[int, str]]:
        """(version, name) of every migration the database has."""
        with translate(), _connect(self.url, 10.0) as conn:
            return applied_migrations(conn)

    # -- collections -------------------------------------------------------------------------
    _COLLECTION_SQL = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at,"
        " (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS document_count,"
        " c.chunk_count FROM collections c"
    )
    _COLLECTION_SQL_LIGHT = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at, 0 AS document_count, 0 AS chunk_count FROM collections c"
    )

    @staticmethod
    def _collection(r: dict[str, Any]) -> Collection:
        return shared.collection(list(r.values()), DECODING)

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
        with self._tx(tenant) as cur:
            try:
                cur.execute(
                    "INSERT INTO collections (tenant, name, model_id, dimension, language,"
                    " settings) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (tenant, name, model_id, dimension, language, Jsonb(settings)),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict(f"collection {name!r} already exists") from exc
            cid = one_row(cur)["id"]
            if dimension <= HNSW_MAX_DIMENSION and not is_internal(name):
                # Users' recall indexes get none: every insert into chunks checks the
                # predicate of every partial index, so one per user would slow all writes;
                # their vector searches are exact (one user's messages).
                # A partial expression index per collection: a `vector` column without a
                # dimension cannot be indexed, a `vector(d)` expression can. The literal id
                # in the predicate lets the planner match it to vector_search's query.
                cur.execute(
                    sql.SQL(
                        "CREATE INDEX {} ON chunks USING hnsw ((embedding::vector({}))"
                        " vector_cosine_ops) WITH (m = {}, ef_construction = {})"
                        " WHERE collection_id = {}"
                    ).format(
                        _index_name(cid),
                        sql.Literal(dimension),
                        sql.Literal(self.hnsw.connectivity),
                        sql.Literal(self.hnsw.expansion_add),
                        sql.Literal(cid),
                    )
                )
        return self.get_collection(name, tenant=tenant)

    def get_collection(
        self, name: str, *, tenant: str = "default", counts: bool = True
    ) -> Collection:
        query = self._COLLECTION_SQL if counts else self._COLLECTION_SQL_LIGHT
        with self._tx(tenant) as cur:
            cur.execute(query + " WHERE c.tenant = %s AND c.name = %s", (tenant, name))
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    "SELECT name FROM collections WHERE tenant = %s ORDER BY name", (tenant,)
                )
                known = [r["name"] for r in cur.fetchall()]
        if row is None:
            raise CollectionNotFound(
                f"no collection named {name!r}",
                hint=f"existing collections: {', '.join(known)}"
                if known
                else "ingest documents first",
            )
        return self._collection(row)

    def list_collections(self, *, tenant: str = "default") -> list[Collection]:
        with self._tx(tenant) as cur:
            cur.execute(self._COLLECTION_SQL + " WHERE c.tenant = %s ORDER BY c.name", (tenant,))
            return [self._collection(r) for r in cur.fetchall()]

    def delete_collection(self, name: str, *, tenant: str = "default") -> None:
        collection = self.get_collection(name, tenant=tenant, counts=False)
        with self._tx(tenant) as cur:
            if not self._lock(cur, collection):
                return  # deleted meanwhile
            cur.execute(
                "SELECT DISTINCT text_hash FROM chunks WHERE collection_id = %s UNION"
                " SELECT v.text_hash FROM version_chunks v JOIN documents d"
                " ON d.id = v.document_id WHERE d.collection_id = %s",
                (collection.id, collection.id),
            )
            hashes = [r["text_hash"] for r in cur.fetchall()]
            # Documents, versions, chunks, postings and vocabulary go by ON DELETE CASCADE.
            cur.execute("DELETE FROM collections WHERE id = %s", (collection.id,))
            self._drop_orphan_embeddings(cur, collection.model_id, hashes)
        # Dropped after the commit, CONCURRENTLY: a plain DROP INDEX would lock the whole
        # chunks table (every collection's searches) until the cascade above committed.
        with translate(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                        _index_name(collection.id)
                    )
                )
            finally:
                conn.autocommit = False

    def grow_vector_index(self, collection: Collection) -> None:
        """A user's recall index gets its HNSW index once it holds ``RECALL_INDEX_AT``
        chunks (few users do: one partial index per user would slow every write to chunks
        and every plan). Built CONCURRENTLY in a background thread, so neither this append
        nor other writers wait; until it is valid, searches stay exact. An index left
        invalid by a dead process is dropped and built again."""
        if collection.dimension > HNSW_MAX_DIMENSION or collection.id in self._growing:
            return
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT c.chunk_count, i.indisvalid FROM collections c"
                " LEFT JOIN pg_class r ON r.relname = %s"
                " LEFT JOIN pg_index i ON i.indexrelid = r.oid WHERE c.id = %s",
                (f"chunks_vec_{collection.id}", collection.id),
            )
            row = cur.fetchone()
        if row is None or row["chunk_count"] < RECALL_INDEX_AT or row["indisvalid"]:
            return
        self._growing.add(collection.id)
        threading.Thread(
            target=self._build_vector_index,
            args=(collection, row["indisvalid"] is False),
            name=f"engram-hnsw-{collection.id}",
            daemon=True,
        ).start()

    def _build_vector_index(self, collection: Collection, invalid: bool) -> None:
        name = _index_name(collection.id)
        try:
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    if invalid:
                        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
                    conn.execute(
                        sql.SQL(
                            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON chunks USING hnsw"
                            " ((embedding::vector({})) vector_cosine_ops)"
                            " WITH (m = {}, ef_construction = {}) WHERE collection_id = {}"
                        ).format(
                            name,
                            sql.Literal(collection.dimension),
                            sql.Literal(self.hnsw.connectivity),
                            sql.Literal(self.hnsw.expansion_add),
                            sql.Literal(collection.id),
                        )
                    )
                finally:
                    conn.autocommit = False
            # Erased while the index was built: drop what no collection owns.
            with self._tx(collection.tenant) as cur:
                cur.execute("SELECT 1 FROM collections WHERE id = %s", (collection.id,))
                gone = cur.fetchone() is None
            if gone:
                with self._pool.connection() as conn:
                    conn.autocommit = True
                    try:
                        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
                    finally:
                        conn.autocommit = False
        except Exception:  # searches stay exact; the next write tries again
            log.warning("building the vector index of %s failed", collection.name, exc_info=True)
        finally:
            self._growing.discard(collection.id)

    # -- documents ---------------------------------------------------------------------------
    def document_hashes(
        self, collection: Collection, *, keys: Sequence[str] | None = None
    ) -> dict[str, str]:
        query = "SELECT key, content_hash FROM documents WHERE collection_id = %s"
        params: tuple[Any, ...] = (collection.id,)
        if keys is not None:
            if not keys:
                return {}
            query += " AND key = ANY(%s)"
            params += (list(keys),)
        with self._tx(collection.tenant) as cur:
            cur.execute(query, params)
            return {r["key"]: r["content_hash"] for r in cur.fetchall()}

    def file_stamps(
        self, collection: Collection, sources: Sequence[str]
    ) -> dict[str, list[StampedDocument]]:
        if not sources:
            return {}
        found: dict[str, list[StampedDocument]] = {}
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT source, key, content_hash, file_stamp FROM documents"
                " WHERE collection_id = %s AND source = ANY(%s) AND file_stamp IS NOT NULL",
                (collection.id, list(sources)),
            )
            for r in cur.fetchall():
                found.setdefault(r["source"], []).append(
                    StampedDocument(r["key"], r["content_hash"], r["file_stamp"])
                )
        return found

    def set_file_stamps(self, collection: Collection, stamps: Sequence[StampedDocument]) -> int:
        if not stamps:
            return 0
        with self._tx(collection.tenant) as cur:
            # Rows locked in key order, as writers lock documents (engram.store.postgres.write):
            # a concurrent writer of the same keys waits, or makes this one wait, never both.
            cur.execute(
                "WITH locked AS (SELECT d.id, u.stamp FROM documents d"
                " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS u(key, hash, stamp)"
                " ON d.key = u.key AND d.content_hash = u.hash"
                " WHERE d.collection_id = %s AND d.file_stamp IS DISTINCT FROM u.stamp"
                ' ORDER BY d.key COLLATE "C" FOR UPDATE OF d)'
                " UPDATE documents d SET file_stamp = locked.stamp FROM locked"
                " WHERE d.id = locked.id",
                (
                    [s.key for s in stamps],
                    [s.content_hash for s in stamps],
                    [s.stamp for s in stamps],
                    collection.id,
                ),
            )
            return cur.rowcount

    def embedding_models(self) -> list[str]:
        with self._tx(SYSTEM) as cur:  # every tenant's: the server serves them all
            cur.execute(shared.EMBEDDING_MODELS_SQL)
            return [r["model_id"] for r in cur.fetchall()]

    def cached_embeddings(self, model_id: str, hashes: Iterable[str]) -> set[str]:
        wanted = list(set(hashes))
        if not wanted:
            return set()
        with self._tx(SYSTEM) as cur:  # the cache is shared by every tenant
            cur.execute(
                "SELECT text_hash FROM embeddings WHERE model_id = %s AND text_hash = ANY(%s)",
                (model_id, wanted),
            )
            return {r["text_hash"] for r in cur.fetchall()}

    @staticmethod
    def _document(collection: Collection, r: dict[str, Any]) -> DocumentInfo:
        return shared.document(collection, list(r.values()), DECODING)

    def list_documents(
        self,
        collection: Collection,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
        contains: str | None = None,
    ) -> list[DocumentInfo]:
        cond, params = compile_where(where)
        if contains:
            # ASCII letters folded only, as SQLite's lower() does.
            fold = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'"
            cond += (
                f" AND (strpos(translate(d.key, {fold}), %s) > 0"
                f" OR strpos(translate(d.title, {fold}), %s) > 0)"
            )
            params = [*params, ascii_lower(contains), ascii_lower(contains)]
        with self._tx(collection.tenant) as cur:
            cur.execute(
                self._DOC_SQL
                + f" WHERE d.collection_id = %s AND {cond} ORDER BY d.key LIMIT %s OFFSET %s",
                (collection.id, *params, limit, offset),
            )
            return [self._document(collection, r) for r in cur.fetchall()]

    def get_document(self, collection: Collection, key: str) -> DocumentInfo:
        with self._tx(collection.tenant) as cur:
            cur.execute(
                self._DOC_SQL + " WHERE d.collection_id = %s AND d.key = %s", (collection.id, key)
            )
            row = cur.fetchone()
        if row is None:
            raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
        return self._document(collection, row)

    # -- API keys ----------------------------------------------------------------------------
    _KEY_SQL = f"SELECT {shared.KEY_COLS} FROM api_keys"

    @staticmethod
    def _key(r: dict[str, Any]) -> ApiKey:
        return shared.api_key(list(r.values()), DECODING)

    def create_api_key(self, key: ApiKey, secret_hash: str) -> None:
        with self._tx(key.tenant) as cur:
            cur.execute(
                "INSERT INTO api_keys (id, tenant, name, scopes, secret_hash, created_at,"
                " user_id) VALUES (%s, %s, %s, %s, %s, %s::timestamptz, %s)",
                (
                    key.id,
                    key.tenant,
                    key.name,
                    Jsonb(list(key.scopes)),
                    secret_hash,
                    key.created_at,
                    key.user_id,
                ),
            )

    def get_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self._tx(SYSTEM) as cur:  # a presented key is looked up before its tenant is known
            cur.execute(
                self._KEY_SQL.replace(" FROM", ", secret_hash FROM") + " WHERE id = %s",
                (key_id,),
            )
            row = cur.fetchone()
        return (self._key(row), row["secret_hash"]) if row else None

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self._tx(SYSTEM if tenant is None else tenant) as cur:
            if tenant is None:
                cur.execute(self._KEY_SQL + " ORDER BY created_at, id")
            else:
                cur.execute(self._KEY_SQL + " WHERE tenant = %s ORDER BY created_at, id", (tenant,))
            return [self._key(r) for r in cur.fetchall()]

    def revoke_api_key(self, key_id: str) -> bool:
        with self._tx(SYSTEM) as cur:
            cur.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            return cur.rowcount == 1


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection works in UTC (date_trunc, day boundaries of statistics), and
    without JIT compilation, which costs tens of milliseconds for queries (BM25 over many
    postings) that run in a few."""
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute("SET jit = off")
    conn.commit()


def _check_connection(conn: psycopg.Connection[Any]) -> None:
    """Checked out of the pool: is the connection alive? Without a round trip in the common
    case: an idle connection that the server closed (restart, pg_terminate_backend, idle
    timeout) has something to read — the FATAL message or end of file — while a live idle
    one has nothing. Only then is it pinged, and replaced by the pool when the ping fails.
    (Pinging every checkout costs one round trip per transaction: several per search.)"""
    from psycopg_pool import ConnectionPool

    if conn.closed or select.select([conn.fileno()], [], [], 0)[0]:
        ConnectionPool.check_connection(conn)


def _connect(url: str, timeout: float) -> psycopg.Connection[Any]:
    """A dedicated connection (migrations, role check), with a clear error when it fails."""
    from ...errors import ServerUnavailable

    try:
        return psycopg.connect(url, connect_timeout=max(1, int(timeout)), application_name="engram")
    except psycopg.OperationalError as exc:
        raise ServerUnavailable(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}",
            hint="check ENGRAM_DATABASE_URL and that the server is running",
        ) from exc
