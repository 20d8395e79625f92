"""The retrieval half of the PostgreSQL store: BM25 candidates, nearest vectors, chunks.

Unfiltered keyword queries go through :mod:`engram.store.postgres.bm25` (postings packed by
the database, scored by numpy); filtered ones score in SQL. Vectors use each collection's
partial HNSW index (created by :meth:`PostgresStore.create_collection`), or an exact scan for
filtered searches, small collections and dimensions pgvector cannot index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import sql

from ...errors import DocumentNotFound
from ...memory.types import is_internal
from ...search.ann import HnswParams
from ...search.bm25 import K1, B
from ...search.fuzzy import like_patterns, max_edits
from ...types import Collection
from .. import rows as shared
from ..records import ChunkRecord, Where, collection_vector
from . import bm25 as postgres_bm25
from .connection import DECODING, PostgresBase, vector_text
from .sql import compile_where

HNSW_MAX_DIMENSION = 2000  # pgvector's limit for indexing `vector`; larger ones scan exactly
HNSW_MAX_EF = 1000  # pgvector's largest hnsw.ef_search


class PostgresSearchMixin(PostgresBase):
    hnsw: HnswParams
    postings_cache: postgres_bm25.PostingsCache | None

    # -- retrieval ---------------------------------------------------------------------------
    def keyword_search(
        self, collection: Collection, terms: Sequence[str], *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        counts = Counter(terms)  # a term given n times counts n times (query-term frequency)
        if not counts or k <= 0:
            return []
        if not where:  # the common case: postings packed by the database, scored by numpy
            with self._tx(collection.tenant) as cur:
                return postgres_bm25.top_k(cur, collection.id, terms, k, self.postings_cache)
        cond, params = compile_where(where)
        # d.collection_id is implied by c's; saying it lets the planner start from the
        # documents' (collection_id, key) index when the filter names keys ($keys).
        allowed = (
            " AND p.chunk_id IN (SELECT c.id FROM chunks c JOIN documents d"
            " ON d.id = c.document_id WHERE c.collection_id = %s AND d.collection_id = %s"
            f" AND {cond})"
            if where
            else ""
        )
        # Okapi BM25 exactly as engram.search.bm25: N and avgdl over live chunks, df from the
        # vocabulary, idf = max(ln((N - df + 0.5) / (df + 0.5)), 1e-6), OR semantics. Per query
        # term, q holds w = qtf * idf * (k1 + 1), c1 = k1 * (1 - b) and c2 = k1 * b / avgdl, so each
        # posting costs w * tf / (tf + c1 + c2 * |D|): one pass over the terms' postings (an
        # index-only scan) and a hash aggregate. MATERIALIZED keeps q from being inlined and
        # its ln() recomputed for every posting.
        query = (
            "WITH q AS MATERIALIZED (SELECT v.term,"
            " greatest(ln((c.chunk_count - v.df + 0.5::float8) / (v.df + 0.5::float8)), 1e-6::float8)"
            " * %s::float8 * t.qtf AS w, %s::float8 AS c1,"
            " %s::float8 * c.chunk_count / c.total_length AS c2"
            " FROM collections c JOIN vocabulary v ON v.collection_id = c.id"
            " JOIN unnest(%s::text[], %s::float8[]) AS t(term, qtf) ON t.term = v.term"
            " WHERE c.id = %s AND c.total_length > 0)"
            " SELECT p.chunk_id AS id, sum(q.w * p.tf / (p.tf + q.c1 + q.c2 * p.length)) AS score"
            " FROM q JOIN postings p ON p.collection_id = %s AND p.term = q.term"
            f" WHERE TRUE{allowed}"
            " GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %s"
        )
        cid = collection.id
        args = [K1 + 1, K1 * (1 - B), K1 * B, list(counts), list(counts.values()), cid, cid]
        if where:
            args += [cid, cid, *params]
        # One hash-aggregate group per matching chunk: enough memory that a query matching
        # most of a large collection is not spilled to disk.
        with self._tx(collection.tenant, settings={"work_mem": "64MB"}) as cur:
            cur.execute(query, (*args, k))
            return [(int(r["id"]), float(r["score"])) for r in cur.fetchall()]

    def term_frequencies(self, collection: Collection, terms: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        if terms:
            with self._tx(collection.tenant) as cur:
                cur.execute(
                    "SELECT term, df FROM vocabulary WHERE collection_id = %s AND term = ANY(%s)",
                    (collection.id, list(set(terms))),
                )
                found = {r["term"]: int(r["df"]) for r in cur.fetchall()}
        return {t: found.get(t, 0) for t in terms}

    def keyword_chunks(self, collection: Collection) -> int:
        with self._tx(collection.tenant) as cur:
            cur.execute("SELECT chunk_count FROM collections WHERE id = %s", (collection.id,))
            row = cur.fetchone()
        return int(row["chunk_count"]) if row else 0

    def revision(self, collection: Collection) -> int:
        with self._tx(collection.tenant) as cur:
            cur.execute("SELECT revision FROM collections WHERE id = %s", (collection.id,))
            row = cur.fetchone()
        return int(row["revision"]) if row else -1

    def vocabulary(self, collection: Collection) -> list[str]:
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT term FROM vocabulary WHERE collection_id = %s ORDER BY term",
                (collection.id,),
            )
            return [r["term"] for r in cur.fetchall()]

    def spelling_candidates(
        self, collection: Collection, terms: Sequence[str]
    ) -> dict[str, list[str]]:
        wanted = list(dict.fromkeys(terms))
        found: dict[str, list[str]] = {term: [] for term in wanted}
        if wanted:
            with self._tx(collection.tenant) as cur:
                cur.execute(*spelling_query(collection.id, wanted))
                for row in cur.fetchall():
                    found[wanted[row["i"]]].append(row["term"])
        return found

    def vector_search(
        self, collection: Collection, vector: np.ndarray, *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        vec = collection_vector(collection, vector, query=True)
        if k <= 0:
            return []
        # pgvector returns at most ef_search (≤ 1000) rows from the index: a deeper k scans.
        ef = max(self.hnsw.expansion_search, k)
        with self._tx(
            collection.tenant, settings={"hnsw.ef_search": str(min(ef, HNSW_MAX_EF))}
        ) as cur:
            exact = bool(where) or collection.dimension > HNSW_MAX_DIMENSION or k > HNSW_MAX_EF
            if not exact:
                # The collection's size picks the path; a large one also steers the planner
                # to the HNSW index for this transaction, whatever its (possibly stale, right
                # after a bulk ingest) statistics say: seq/bitmap scans and sorts are the
                # alternatives, and set_config only runs when the CASE reaches it.
                # A user's recall index (engram's own collection) has an HNSW index only
                # once it has grown large (PostgresStore.grow_vector_index), and only a
                # valid one may be steered to.
                own = is_internal(collection.name)
                cur.execute(
                    "SELECT chunk_count, CASE WHEN chunk_count >= %s AND (NOT %s OR EXISTS"
                    " (SELECT 1 FROM pg_class r JOIN pg_index i ON i.indexrelid = r.oid"
                    " WHERE r.relname = %s AND i.indisvalid)) THEN"
                    " set_config('enable_seqscan', 'off', true)"
                    " || set_config('enable_bitmapscan', 'off', true)"
                    " || set_config('enable_sort', 'off', true) END AS steered"
                    " FROM collections WHERE id = %s",
                    (self.hnsw.exact_below, own, f"chunks_vec_{collection.id}", collection.id),
                )
                row = cur.fetchone()
                exact = row is None or row["steered"] is None
            if exact:
                # Every matching row is scored: a filter never loses results to an index's
                # post-filtering. The plain column (not the index's expression) keeps the
                # planner off the HNSW index.
                cond, params = compile_where(where)
                cur.execute(
                    "SELECT c.id, 1 - (c.embedding <=> %s::vector) AS sim FROM chunks c"
                    " JOIN documents d ON d.id = c.document_id"
                    f" WHERE c.collection_id = %s AND d.collection_id = %s AND {cond}"
                    " ORDER BY c.embedding <=> %s::vector, c.id LIMIT %s",
                    (
                        vector_text(vec),
                        collection.id,
                        collection.id,
                        *params,
                        vector_text(vec),
                        k,
                    ),
                )
            else:
                cur.execute(_ann_query(collection), (vector_text(vec), vector_text(vec), k))
            hits = [(int(r["id"]), float(r["sim"])) for r in cur.fetchall()]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits

    def get_chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT c.id, c.document_id, d.key, c.version, d.title, c.text, c.start_char,"
                " c.end_char, c.page, c.heading_path, d.metadata FROM chunks c"
                " JOIN documents d ON d.id = c.document_id"
                " WHERE c.id = ANY(%s) AND c.collection_id = %s",
                (list(ids), collection.id),
            )
            rows = cur.fetchall()
        return {r["id"]: shared.chunk(list(r.values()), DECODING) for r in rows}

    def document_chunks(self, collection: Collection, key: str) -> list[ChunkRecord]:
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT c.id, c.document_id, d.key, c.version, d.title, c.text, c.start_char,"
                " c.end_char, c.page, c.heading_path, d.metadata FROM documents d"
                " LEFT JOIN chunks c ON c.document_id = d.id"
                " WHERE d.collection_id = %s AND d.key = %s ORDER BY c.start_char, c.ordinal",
                (collection.id, key),
            )
            rows = cur.fetchall()
        if not rows:
            raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
        return [shared.chunk(list(r.values()), DECODING) for r in rows if r["id"] is not None]


def spelling_query(collection_id: int, terms: Sequence[str]) -> tuple[str, list[Any]]:
    """The typo-candidate query: per term (its position in ``terms`` as ``i``), the vocabulary's
    terms of a length within reach that match one of its LIKE patterns (fuzzy.like_patterns),
    as every neighbour does.

    No trigram index (pg_trgm) serves this: its operators, like ``LIKE`` itself, are not
    leakproof, and under row-level security PostgreSQL evaluates the tenant policy before any
    such condition, so it never uses them as index conditions for an ordinary role (checked on
    PostgreSQL 18: the GIN index is used by a superuser and ignored under the policy). The
    query reads the collection's vocabulary, ≈ 3 ms per 26k terms, only for queries holding a
    term found nowhere."""
    selects, args = [], []
    for i, term in enumerate(terms):
        edits = max_edits(term)
        likes = like_patterns(term)
        selects.append(
            "SELECT %s::int AS i, term FROM vocabulary WHERE collection_id = %s"
            " AND length(term) BETWEEN %s AND %s AND ("
            + " OR ".join("term LIKE %s" for _ in likes)
            + ")"
        )
        args += [i, collection_id, len(term) - edits, len(term) + edits, *likes]
    return " UNION ALL ".join(selects), args


def _ann_query(collection: Collection) -> sql.Composed:
    """Nearest chunks by the collection's HNSW index: the same expression and literal
    collection id as the partial index, so that the planner can use it. Parameters: the
    vector (twice) and k."""
    dim, cid = sql.Literal(collection.dimension), sql.Literal(collection.id)
    return sql.SQL(
        "SELECT id, 1 - (embedding::vector({dim}) <=> %s::vector({dim})) AS sim"
        " FROM chunks WHERE collection_id = {cid}"
        " ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT %s"
    ).format(dim=dim, cid=cid)
