"""The PostgreSQL backend: PostgreSQL + pgvector, for several engram processes on one database.

Everything lives in tables (engram/store/migrations/postgres): BM25 postings and
per-collection statistics are maintained by every write in its transaction, with the same
analyzed terms, k1, b, IDF and document length as engram.search.bm25, so scores equal the
embedded backend's; vectors are searched by a pgvector HNSW index made per collection (a
partial expression index, see create_collection). Retrieval is in postgres_search (and
postgres_bm25); row-level security scopes every tenant-owned table (postgres_base).

Round trips per search call: each store method is one transaction (tenant set-up, its
statements, commit; a pooled connection is pinged only when the server closed it).
keyword_search is one statement; vector_search two (the collection's size picks exact or
HNSW, then the search).
"""

from __future__ import annotations

import logging
import select
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import (
    CollectionNotFound,
    Conflict,
    DocumentNotFound,
    InvalidInput,
    StoreError,
)
from ..keys import ApiKey
from ..search.ann import HnswParams
from ..types import Collection, DocumentInfo
from .base import DocumentVersion, DocumentWrite, Store, Where
from .migrations import Migration
from .postgres_base import (
    SYSTEM,
    PostgresBase,
    iso,
    require_psycopg,
    translate,
    vector_text,
)
from .postgres_bm25 import BLOCK_SHIFT, BlockCounts, PostingsCache
from .postgres_events import PostgresEventsMixin
from .postgres_jobs import PostgresJobsMixin
from .postgres_memory import PostgresMemoryMixin
from .postgres_search import HNSW_MAX_DIMENSION, PostgresSearchMixin
from .postgres_sql import (
    applied_migrations,
    apply_migrations,
    compile_where,
    dumps,
    redact,
    sorted_keys,
)
from .postgres_transfer import PostgresTransferMixin

log = logging.getLogger(__name__)


def _index_name(collection_id: int) -> sql.Identifier:
    return sql.Identifier(f"chunks_vec_{collection_id}")


class PostgresStore(
    PostgresMemoryMixin,
    PostgresJobsMixin,
    PostgresEventsMixin,
    PostgresTransferMixin,
    PostgresSearchMixin,
    PostgresBase,
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

    def migrations(self) -> list[tuple[int, str]]:
        """(version, name) of every migration the database has."""
        with translate(), _connect(self.url, 10.0) as conn:
            return applied_migrations(conn)

    # -- collections -------------------------------------------------------------------------
    _COLLECTION_SQL = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at, c.chunk_count,"
        " (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS document_count"
        " FROM collections c"
    )
    _COLLECTION_SQL_LIGHT = (
        "SELECT c.id, c.tenant, c.name, c.model_id, c.dimension, c.language, c.settings,"
        " c.created_at, 0 AS chunk_count, 0 AS document_count FROM collections c"
    )

    @staticmethod
    def _collection(r: dict[str, Any]) -> Collection:
        return Collection(
            id=r["id"],
            tenant=r["tenant"],
            name=r["name"],
            model_id=r["model_id"],
            dimension=r["dimension"],
            language=r["language"],
            settings=r["settings"],
            created_at=iso(r["created_at"], timespec="seconds") or "",
            document_count=r["document_count"],
            chunk_count=r["chunk_count"],
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
        with self._tx(tenant) as cur:
            try:
                cur.execute(
                    "INSERT INTO collections (tenant, name, model_id, dimension, language,"
                    " settings) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (tenant, name, model_id, dimension, language, Jsonb(settings)),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise Conflict(f"collection {name!r} already exists") from exc
            cid = _one(cur)["id"]
            if dimension <= HNSW_MAX_DIMENSION:
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
                "SELECT DISTINCT text_hash FROM chunks WHERE collection_id = %s",
                (collection.id,),
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

    # Writers of one collection run concurrently: the heavy part of a write (chunks with their
    # HNSW index entries, postings) touches rows no other writer shares, and the rows they do
    # share are written at the very end, in one fixed order, so that they are locked only for
    # the tail of the transaction and its commit. Every write transaction takes its row locks
    # in these phases, each in a fixed order:
    #   1. the collection row FOR KEY SHARE (_hold): it cannot be deleted or renamed meanwhile,
    #      yet writers do not exclude each other (the foreign keys take the same lock);
    #   2. embeddings: the vectors used are inserted or locked, in hash order (_use_embeddings);
    #   3. documents, upserted (or locked, to delete them) in key order: a second writer of a
    #      key waits here and then replaces what the first one wrote;
    #   4. chunks and postings of those documents only; then the replaced vectors no chunk uses
    #      any more are deleted from the cache, skipping locked rows (it never waits, and a
    #      vector a writer holds stays);
    #   5. vocabulary: the transaction's summed document-frequency changes, one upsert in term
    #      order (then rows that reached 0 are deleted);
    #   6. the collection row's statistics and revision.
    # A transaction waits only for locks of its current phase, held by transactions in the
    # same or a later phase, so no cycle (deadlock) can form. delete_collection and
    # rename_collection lock the collection row FOR UPDATE (_lock): they wait for its writers.
    def write_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        embeddings: dict[str, np.ndarray],
    ) -> list[tuple[str, int]]:
        hashes, vectors = [], []
        for text_hash, vector in embeddings.items():
            vec = np.asarray(vector, dtype=np.float32)
            if vec.shape != (collection.dimension,):
                raise InvalidInput(
                    f"vector of shape {vec.shape} for a collection of dimension {collection.dimension}"
                )
            hashes.append(text_hash)
            vectors.append(vector_text(vec))
        written: list[tuple[str, int]] = [("", 0)] * len(documents)
        df: BlockCounts = Counter()
        with self._tx(collection.tenant) as cur:
            if not self._hold(cur, collection):
                raise CollectionNotFound(f"collection {collection.name!r} was deleted")
            needed = {c.text_hash for d in documents for c in d.chunks}
            present = self._use_embeddings(cur, collection.model_id, needed, hashes, vectors)
            for doc in documents:
                missing = {c.text_hash for c in doc.chunks} - present
                if missing:
                    raise InvalidInput(
                        f"document {doc.key!r} has {len(missing)} chunk(s) without an embedding"
                    )
            chunks = length = 0
            old_hashes: list[str] = []
            for batch in _key_batches(documents):
                done, delta = self._write_batch(cur, collection, [documents[i] for i in batch], df)
                for i, result in zip(batch, done):
                    written[i] = result
                chunks += delta[0]
                length += delta[1]
                old_hashes.extend(delta[2])
            self._drop_orphan_embeddings(cur, collection.model_id, old_hashes)
            self._bump(cur, collection, chunks, length, df)
        return written

    @staticmethod
    def _use_embeddings(
        cur: psycopg.Cursor[dict[str, Any]],
        model_id: str,
        needed: Iterable[str],
        hashes: Sequence[str],
        vectors: Sequence[str],
    ) -> set[str]:
        """Phase 2: hold the cached vectors of the ``needed`` text hashes until the commit, so
        that no orphan clean-up removes one before the chunks copy it. The given ones
        (``hashes`` with their pgvector texts) are inserted, or locked where the cache has
        them already, in one statement (ON CONFLICT DO UPDATE locks the row it does not
        update): a second pass, in another order, could deadlock with a concurrent writer.
        The others are locked FOR KEY SHARE, which waits for no writer. Returns the hashes
        held: a needed one not among them is missing from the cache."""
        held = set(hashes)
        cached = sorted(set(needed) - held)
        if cached:
            cur.execute(
                "SELECT text_hash FROM embeddings WHERE model_id = %s AND text_hash = ANY(%s)"
                ' ORDER BY text_hash COLLATE "C" FOR KEY SHARE',
                (model_id, cached),
            )
            held.update(r["text_hash"] for r in cur.fetchall())
        if hashes:
            cur.execute(
                "INSERT INTO embeddings AS e (model_id, text_hash, vector)"
                " SELECT %s, u.h, u.v::vector FROM unnest(%s::text[], %s::text[]) AS u(h, v)"
                ' ORDER BY u.h COLLATE "C"'
                " ON CONFLICT (model_id, text_hash) DO UPDATE SET vector = e.vector WHERE false",
                (model_id, list(hashes), list(vectors)),
            )
        return held

    def _write_batch(
        self,
        cur: psycopg.Cursor[dict[str, Any]],
        collection: Collection,
        docs: list[DocumentWrite],
        df: BlockCounts,
    ) -> tuple[list[tuple[str, int]], tuple[int, int, list[str]]]:
        """Write documents with distinct keys (phases 3 and 4 above); returns their (key,
        version) in order, and the change of (chunk count, total length) plus the text hashes
        of the chunks they replaced. Their document-frequency changes are added to ``df``, for
        :meth:`_bump` to apply at the end of the transaction."""
        cid, tenant = collection.id, collection.tenant
        # Upserted in key order (a fixed lock order: a concurrent writer of the same keys waits
        # for this transaction at its first common key), with ids drawn in the given order,
        # as SQLite gives them.
        cur.execute(
            "WITH u AS MATERIALIZED ("
            " SELECT nextval((SELECT pg_get_serial_sequence('documents', 'id')::regclass)) AS id,"
            " u.key, u.title, u.hash, u.meta, u.source"
            " FROM unnest(%(key)s::text[], %(title)s::text[], %(hash)s::text[], %(meta)s::text[],"
            " %(source)s::text[]) WITH ORDINALITY AS u(key, title, hash, meta, source, ord)"
            " ORDER BY u.ord)"
            " INSERT INTO documents (id, tenant, collection_id, key, title, version, content_hash,"
            " metadata, source, created_at, updated_at) OVERRIDING SYSTEM VALUE"
            " SELECT u.id, %(tenant)s, %(cid)s, u.key, u.title, 1, u.hash, u.meta::jsonb, u.source,"
            ' now(), now() FROM u ORDER BY u.key COLLATE "C"'
            " ON CONFLICT (collection_id, key) DO UPDATE SET title = excluded.title,"
            " version = documents.version + 1, content_hash = excluded.content_hash,"
            " metadata = excluded.metadata, source = excluded.source,"
            " updated_at = excluded.updated_at"
            " RETURNING id, key, version",
            {
                "tenant": tenant,
                "cid": cid,
                "key": [d.key for d in docs],
                "title": [d.title for d in docs],
                "hash": [d.content_hash for d in docs],
                "meta": [dumps(d.metadata) for d in docs],
                "source": [d.source for d in docs],
            },
        )
        ids = {r["key"]: (r["id"], r["version"]) for r in cur.fetchall()}
        # The chunks of the version replaced, read after the upsert: a writer of the same key
        # that committed meanwhile is seen, and one still running waits for this one.
        replaced = sorted(doc_id for doc_id, version in ids.values() if version > 1)
        removed, removed_length, old_hashes = self._remove_chunks(cur, collection, replaced, df)
        cur.execute(
            "INSERT INTO document_versions (tenant, document_id, version, content_hash,"
            " chunk_count, created_at)"
            " SELECT %s, u.doc, u.version, u.hash, u.n, now()"
            " FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[]) AS u(doc, version, hash, n)",
            (
                tenant,
                [ids[d.key][0] for d in docs],
                [ids[d.key][1] for d in docs],
                [d.content_hash for d in docs],
                [len(d.chunks) for d in docs],
            ),
        )
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                [
                    "doc",
                    "version",
                    "ordinal",
                    "text",
                    "start",
                    "end",
                    "page",
                    "heading",
                    "hash",
                    "terms",
                    "length",
                ]
            )
        }
        for doc in docs:
            doc_id, version = ids[doc.key]
            for c in doc.chunks:
                terms = c.terms.split()  # exactly BM25Index's split
                for key, value in zip(
                    rows,
                    (
                        doc_id,
                        version,
                        c.ordinal,
                        c.text,
                        c.start,
                        c.end,
                        c.page,
                        dumps(list(c.heading_path)),
                        c.text_hash,
                        " ".join(terms),
                        len(terms),
                    ),
                ):
                    rows[key].append(value)
        if rows["doc"]:
            # Chunks (with their vector, copied from the cache) and their postings, in one
            # statement that returns the document frequency each term gains.
            cur.execute(
                "WITH new AS ("
                " INSERT INTO chunks (tenant, collection_id, document_id, version, ordinal, text,"
                " start_char, end_char, page, heading_path, text_hash, terms, length, embedding)"
                " SELECT %(tenant)s, %(cid)s, u.doc, u.version, u.ordinal, u.text, u.start_char,"
                " u.end_char, u.page, u.heading::jsonb, u.hash, u.terms, u.length, e.vector"
                " FROM unnest(%(doc)s::bigint[], %(version)s::int[], %(ordinal)s::int[],"
                " %(text)s::text[], %(start)s::int[], %(end)s::int[], %(page)s::int[],"
                " %(heading)s::text[], %(hash)s::text[], %(terms)s::text[], %(length)s::int[])"
                " WITH ORDINALITY AS u(doc, version, ordinal, text, start_char, end_char, page,"
                " heading, hash, terms, length, ord)"
                " JOIN embeddings e ON e.model_id = %(model)s AND e.text_hash = u.hash"
                " ORDER BY u.ord"
                " RETURNING id, terms, length"
                "), post AS ("
                " INSERT INTO postings (tenant, collection_id, term, chunk_id, tf, length)"
                " SELECT %(tenant)s, %(cid)s, t.term, new.id, count(*), new.length"
                " FROM new, unnest(string_to_array(new.terms, ' ')) AS t(term)"
                " GROUP BY new.id, new.length, t.term"
                " RETURNING term, chunk_id >> %(shift)s AS block"
                "), d AS (SELECT term, block, count(*) AS n FROM post GROUP BY term, block)"
                " SELECT (SELECT count(*) FROM new) AS chunks,"
                " coalesce(array_agg(d.term), '{}') AS terms,"
                " coalesce(array_agg(d.block), '{}') AS blocks, coalesce(array_agg(d.n), '{}') AS df"
                " FROM d",
                {
                    "tenant": tenant,
                    "cid": cid,
                    "model": collection.model_id,
                    "shift": BLOCK_SHIFT,
                    **rows,
                },
            )
            row = _one(cur)
            if row["chunks"] != len(rows["doc"]):  # the vectors were locked above: cannot happen
                raise StoreError("a chunk's embedding vanished from the cache while writing")
            df.update(dict(zip(zip(row["terms"], row["blocks"]), row["df"])))
        added, added_length = len(rows["doc"]), sum(rows["length"])
        return (
            [(d.key, ids[d.key][1]) for d in docs],
            (added - removed, added_length - removed_length, old_hashes),
        )

    def _remove_chunks(
        self,
        cur: psycopg.Cursor[dict[str, Any]],
        collection: Collection,
        doc_ids: list[int],
        df: BlockCounts,
    ) -> tuple[int, int, list[str]]:
        """Delete the chunks of documents (locked by the caller) with their postings; their
        terms' document frequencies are subtracted from ``df``. Returns (chunks removed, their
        total length, their text hashes)."""
        if not doc_ids:
            return 0, 0, []
        cur.execute(
            "WITH gone AS ("
            " DELETE FROM chunks WHERE document_id = ANY(%(docs)s)"
            " RETURNING id, terms, length, text_hash"
            "), pairs AS ("
            " SELECT DISTINCT g.id, t.term FROM gone g,"
            " unnest(string_to_array(g.terms, ' ')) AS t(term)"
            "), post AS ("
            " DELETE FROM postings p USING pairs"
            " WHERE p.collection_id = %(cid)s AND p.term = pairs.term AND p.chunk_id = pairs.id"
            " RETURNING p.term, p.chunk_id >> %(shift)s AS block"
            "), d AS (SELECT term, block, count(*) AS n FROM post GROUP BY term, block)"
            " SELECT g.n, g.length, g.hashes, d.terms, d.blocks, d.df FROM"
            " (SELECT count(*) AS n, coalesce(sum(length), 0) AS length,"
            " coalesce(array_agg(text_hash), '{}') AS hashes FROM gone) AS g,"
            " (SELECT coalesce(array_agg(term), '{}') AS terms,"
            " coalesce(array_agg(block), '{}') AS blocks,"
            " coalesce(array_agg(n), '{}') AS df FROM d) AS d",
            {"docs": doc_ids, "cid": collection.id, "shift": BLOCK_SHIFT},
        )
        row = _one(cur)
        df.subtract(dict(zip(zip(row["terms"], row["blocks"]), row["df"])))
        return int(row["n"]), int(row["length"]), list(row["hashes"])

    @staticmethod
    def _hold(cur: psycopg.Cursor[dict[str, Any]], collection: Collection) -> bool:
        """A writer's first lock: the collection row FOR KEY SHARE, which other writers share
        and delete_collection / rename_collection wait for. False if the collection is gone."""
        cur.execute("SELECT id FROM collections WHERE id = %s FOR KEY SHARE", (collection.id,))
        return cur.fetchone() is not None

    @staticmethod
    def _lock(cur: psycopg.Cursor[dict[str, Any]], collection: Collection) -> bool:
        """Lock the collection row exclusively (to delete, rename or import into it): waits for
        its running writers to finish and keeps new ones out. False if the collection is gone."""
        cur.execute("SELECT id FROM collections WHERE id = %s FOR UPDATE", (collection.id,))
        return cur.fetchone() is not None

    @staticmethod
    def _bump(
        cur: psycopg.Cursor[dict[str, Any]],
        collection: Collection,
        chunks: int,
        length: int,
        df: BlockCounts,
    ) -> None:
        """The end of every write transaction (phases 5 and 6 above): apply the summed
        posting-count changes ``df`` (per term and block) to the vocabulary (per term) and to
        the posting blocks, each in one statement, in term (and block) order, deleting the
        rows that reach 0; then the collection's statistics and revision."""
        per_term: Counter[str] = Counter()
        for (term, _), n in df.items():
            per_term[term] += n
        changes = sorted((term, n) for term, n in per_term.items() if n)
        if changes:
            cur.execute(
                "WITH up AS ("
                " INSERT INTO vocabulary AS v (tenant, collection_id, term, df)"
                " SELECT %s, %s, u.term, u.n FROM unnest(%s::text[], %s::int[]) AS u(term, n)"
                ' ORDER BY u.term COLLATE "C"'
                " ON CONFLICT (collection_id, term) DO UPDATE SET df = v.df + excluded.df"
                " RETURNING v.term, v.df"
                ") SELECT coalesce(array_agg(term), '{}') AS empty FROM up WHERE df <= 0",
                (
                    collection.tenant,
                    collection.id,
                    [term for term, _ in changes],
                    [n for _, n in changes],
                ),
            )
            empty = _one(cur)["empty"]
            if empty:  # rows this transaction holds already: no new lock to wait for
                cur.execute(
                    "DELETE FROM vocabulary WHERE collection_id = %s AND term = ANY(%s)"
                    " AND df <= 0",
                    (collection.id, empty),
                )
        # Every block whose postings changed, even by a net 0 (a new version of a document
        # removes and adds the same terms): the row's new xmin tells cached copies of the
        # block that they are stale (postgres_bm25.PostingsCache).
        blocks = sorted(df.items())
        if blocks:
            cur.execute(
                "WITH up AS ("
                " INSERT INTO posting_blocks AS b (tenant, collection_id, term, block, postings)"
                " SELECT %s, %s, u.term, u.block, u.n"
                " FROM unnest(%s::text[], %s::bigint[], %s::int[]) AS u(term, block, n)"
                ' ORDER BY u.term COLLATE "C", u.block'
                " ON CONFLICT (collection_id, term, block)"
                " DO UPDATE SET postings = b.postings + excluded.postings"
                " RETURNING b.term, b.block, b.postings"
                ") SELECT coalesce(array_agg(term), '{}') AS terms,"
                " coalesce(array_agg(block), '{}') AS blocks FROM up WHERE postings <= 0",
                (
                    collection.tenant,
                    collection.id,
                    [term for (term, _), _ in blocks],
                    [block for (_, block), _ in blocks],
                    [n for _, n in blocks],
                ),
            )
            empty_blocks = _one(cur)
            if empty_blocks["terms"]:
                cur.execute(
                    "DELETE FROM posting_blocks b USING unnest(%s::text[], %s::bigint[])"
                    " AS u(term, block) WHERE b.collection_id = %s AND b.term = u.term"
                    " AND b.block = u.block AND b.postings <= 0",
                    (empty_blocks["terms"], empty_blocks["blocks"], collection.id),
                )
        cur.execute(
            "UPDATE collections SET chunk_count = chunk_count + %s,"
            " total_length = total_length + %s, revision = revision + 1 WHERE id = %s",
            (chunks, length, collection.id),
        )

    @staticmethod
    def _drop_orphan_embeddings(
        cur: psycopg.Cursor[dict[str, Any]], model_id: str, hashes: Sequence[str]
    ) -> None:
        """Remove cached vectors no chunk uses any more (so deleted text leaves no trace).
        A vector a running writer has locked to use is skipped (never waited for): it is not
        an orphan. Row-level security hides other tenants' chunks here, so a vector another
        tenant also uses may go too: it is only a cache (their chunks keep their own copy)."""
        if hashes:
            cur.execute(
                "DELETE FROM embeddings WHERE model_id = %s AND text_hash IN ("
                " SELECT e.text_hash FROM embeddings e WHERE e.model_id = %s"
                " AND e.text_hash = ANY(%s)"
                " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.text_hash = e.text_hash)"
                " FOR UPDATE SKIP LOCKED)",
                (model_id, model_id, sorted(set(hashes))),
            )

    def delete_documents(self, collection: Collection, keys: Sequence[str]) -> int:
        df: BlockCounts = Counter()
        with self._tx(collection.tenant) as cur:
            if not self._hold(cur, collection):
                return 0
            # Locked in key order, as writers upsert them; a document a concurrent call
            # deleted first is not returned (nor counted) once that call commits.
            cur.execute(
                "SELECT id FROM documents WHERE collection_id = %s AND key = ANY(%s)"
                " ORDER BY key FOR UPDATE",
                (collection.id, list(keys)),
            )
            doc_ids = [r["id"] for r in cur.fetchall()]
            if not doc_ids:
                return 0
            removed, length, hashes = self._remove_chunks(cur, collection, doc_ids, df)
            cur.execute("DELETE FROM documents WHERE id = ANY(%s)", (doc_ids,))
            self._drop_orphan_embeddings(cur, collection.model_id, hashes)
            self._bump(cur, collection, -removed, -length, df)
        return len(doc_ids)

    _DOC_SQL = (
        "SELECT d.id, d.key, d.title, d.version, d.content_hash, d.metadata, d.source,"
        " (SELECT count(*) FROM chunks k WHERE k.document_id = d.id) AS chunk_count,"
        " d.created_at, d.updated_at FROM documents d"
    )

    @staticmethod
    def _document(collection: Collection, r: dict[str, Any]) -> DocumentInfo:
        return DocumentInfo(
            id=r["id"],
            collection=collection.name,
            key=r["key"],
            title=r["title"],
            version=r["version"],
            content_hash=r["content_hash"],
            metadata=sorted_keys(r["metadata"]),
            source=r["source"],
            chunk_count=r["chunk_count"],
            created_at=iso(r["created_at"], timespec="seconds") or "",
            updated_at=iso(r["updated_at"], timespec="seconds") or "",
        )

    def list_documents(
        self,
        collection: Collection,
        *,
        limit: int = 100,
        offset: int = 0,
        where: Where | None = None,
    ) -> list[DocumentInfo]:
        cond, params = compile_where(where)
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

    def document_versions(self, collection: Collection, key: str) -> list[DocumentVersion]:
        doc = self.get_document(collection, key)
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT version, content_hash, chunk_count, created_at FROM document_versions"
                " WHERE document_id = %s ORDER BY version",
                (doc.id,),
            )
            return [
                DocumentVersion(
                    r["version"],
                    r["content_hash"],
                    r["chunk_count"],
                    iso(r["created_at"], timespec="seconds") or "",
                )
                for r in cur.fetchall()
            ]

    # -- API keys ----------------------------------------------------------------------------
    _KEY_SQL = "SELECT id, tenant, name, scopes, created_at, revoked_at, last_used_at FROM api_keys"

    @staticmethod
    def _key(r: dict[str, Any]) -> ApiKey:
        return ApiKey(
            r["id"],
            r["tenant"],
            r["name"],
            tuple(r["scopes"]),
            iso(r["created_at"], timespec="seconds") or "",
            iso(r["revoked_at"], timespec="seconds"),
            iso(r["last_used_at"], timespec="seconds"),
        )

    def create_api_key(self, key: ApiKey, secret_hash: str) -> None:
        with self._tx(key.tenant) as cur:
            cur.execute(
                "INSERT INTO api_keys (id, tenant, name, scopes, secret_hash, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s::timestamptz)",
                (
                    key.id,
                    key.tenant,
                    key.name,
                    Jsonb(list(key.scopes)),
                    secret_hash,
                    key.created_at,
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


def _one(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    row = cur.fetchone()
    assert row is not None
    return row


def _key_batches(documents: Sequence[DocumentWrite]) -> list[list[int]]:
    """Positions of the documents in groups of distinct keys: every key's first write, then
    the second writes of the keys written twice, and so on (a key written twice in one call
    becomes two versions, in order, as on SQLite). The first group holds every key, so the
    documents' rows are locked in one key order however the keys repeat."""
    batches: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(documents):
        rank = seen.get(doc.key, 0)
        seen[doc.key] = rank + 1
        if rank == len(batches):
            batches.append([])
        batches[rank].append(i)
    return batches


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
    from ..errors import ServerUnavailable

    try:
        return psycopg.connect(url, connect_timeout=max(1, int(timeout)), application_name="engram")
    except psycopg.OperationalError as exc:
        raise ServerUnavailable(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}",
            hint="check ENGRAM_DATABASE_URL and that the server is running",
        ) from exc
