"""The write path of the PostgreSQL store: documents in, documents out, in one transaction
each, with their chunks, postings, vocabulary and posting blocks kept in step.

Several writers of one collection run at once; the comment above ``write_documents`` gives
the order in which every write transaction takes its locks, which is what keeps them from
deadlocking. The import of an export (transfer) reuses these steps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg

from ...errors import CollectionNotFound, InvalidInput, StoreError
from ...types import Collection
from ..records import DocumentWrite, collection_vector
from . import capture
from .bm25 import BLOCK_SHIFT, BlockCounts
from .connection import one_row, vector_text
from .sql import dumps
from .versions import PostgresVersionsMixin


class PostgresWriteMixin(PostgresVersionsMixin):
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
    #   5. vocabulary, then posting blocks: the transaction's summed changes, one upsert each
    #      in term (and block) order (then rows that reached 0 are deleted);
    #   6. the collection row's statistics and revision.
    # A transaction waits only for locks of its current phase, held by transactions in the
    # same or a later phase, so no cycle (deadlock) can form. delete_collection and
    # rename_collection lock the collection row FOR UPDATE (_lock): they wait for its writers.
    def write_documents(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        embeddings: dict[str, np.ndarray],
        *,
        batch: str | None = None,
    ) -> list[tuple[str, int]]:
        hashes, vectors = vector_rows(collection, embeddings)
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
            for positions in _key_batches(documents):
                group = [documents[i] for i in positions]
                done, delta = self._write_batch(cur, collection, group, df, batch)
                for i, result in zip(positions, done):
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
        batch: str | None = None,
    ) -> tuple[list[tuple[str, int]], tuple[int, int, list[str]]]:
        """Write documents with distinct keys (phases 3 and 4 above); returns their (key,
        version) in order, and the change of (chunk count, total length) plus the text hashes
        of the chunks they replaced. Their document-frequency changes are added to ``df``, for
        :meth:`_bump` to apply at the end of the transaction."""
        cid, tenant = collection.id, collection.tenant
        if batch is not None:  # an import: keep what it replaces, for its rollback
            capture.save_before(cur, batch, collection, [d.key for d in docs], "updated")
        # Upserted in key order (a fixed lock order: a concurrent writer of the same keys waits
        # for this transaction at its first common key), with ids drawn in the given order,
        # as SQLite gives them.
        cur.execute(
            "WITH u AS MATERIALIZED ("
            " SELECT nextval((SELECT pg_get_serial_sequence('documents', 'id')::regclass)) AS id,"
            " u.key, u.title, u.hash, u.meta, u.source, u.stamp"
            " FROM unnest(%(key)s::text[], %(title)s::text[], %(hash)s::text[], %(meta)s::text[],"
            " %(source)s::text[], %(stamp)s::text[])"
            " WITH ORDINALITY AS u(key, title, hash, meta, source, stamp, ord)"
            " ORDER BY u.ord)"
            " INSERT INTO documents (id, tenant, collection_id, key, title, version, content_hash,"
            " metadata, source, file_stamp, created_at, updated_at) OVERRIDING SYSTEM VALUE"
            " SELECT u.id, %(tenant)s, %(cid)s, u.key, u.title, 1, u.hash, u.meta::jsonb, u.source,"
            ' u.stamp, now(), now() FROM u ORDER BY u.key COLLATE "C"'
            " ON CONFLICT (collection_id, key) DO UPDATE SET title = excluded.title,"
            " version = documents.version + 1, content_hash = excluded.content_hash,"
            " metadata = excluded.metadata, source = excluded.source,"
            " file_stamp = excluded.file_stamp, updated_at = excluded.updated_at"
            " RETURNING id, key, version",
            {
                "tenant": tenant,
                "cid": cid,
                "key": [d.key for d in docs],
                "title": [d.title for d in docs],
                "hash": [d.content_hash for d in docs],
                "meta": [dumps(d.metadata) for d in docs],
                "source": [d.source for d in docs],
                "stamp": [d.file_stamp for d in docs],
            },
        )
        ids = {r["key"]: (r["id"], r["version"]) for r in cur.fetchall()}
        if batch is not None:
            after = [(d.key, ids[d.key][1], d.content_hash) for d in docs]
            capture.note_after(cur, batch, collection, after)
        # The chunks of the version replaced, read after the upsert: a writer of the same key
        # that committed meanwhile is seen, and one still running waits for this one.
        replaced = sorted(doc_id for doc_id, version in ids.values() if version > 1)
        removed, removed_length, old_hashes = self._remove_chunks(cur, collection, replaced, df)
        old_hashes = [*old_hashes, *self._record_versions(cur, tenant, docs, ids)]
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
            row = one_row(cur)
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
        row = one_row(cur)
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
            empty = one_row(cur)["empty"]
            if empty:  # rows this transaction holds already: no new lock to wait for
                cur.execute(
                    "DELETE FROM vocabulary WHERE collection_id = %s AND term = ANY(%s)"
                    " AND df <= 0",
                    (collection.id, empty),
                )
        # Every block whose postings changed, even by a net 0 (a new version of a document
        # removes and adds the same terms): the row's new xmin tells cached copies of the
        # block that they are stale (bm25.PostingsCache).
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
            empty_blocks = one_row(cur)
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
                " AND NOT EXISTS (SELECT 1 FROM version_chunks v WHERE v.text_hash = e.text_hash)"
                " FOR UPDATE SKIP LOCKED)",
                (model_id, model_id, sorted(set(hashes))),
            )

    def delete_documents(
        self, collection: Collection, keys: Sequence[str], *, batch: str | None = None
    ) -> int:
        df: BlockCounts = Counter()
        with self._tx(collection.tenant) as cur:
            if not self._hold(cur, collection):
                return 0
            deleted, removed, length = self._delete_held(cur, collection, keys, df, batch)
            if deleted:
                self._bump(cur, collection, -removed, -length, df)
        return deleted

    def _delete_held(
        self,
        cur: psycopg.Cursor[dict[str, Any]],
        collection: Collection,
        keys: Sequence[str],
        df: BlockCounts,
        batch: str | None,
    ) -> tuple[int, int, int]:
        """Delete documents of a held collection (phases 3 and 4); returns how many, and the
        chunks and total length removed, for :meth:`_bump`."""
        # Locked in key order, as writers upsert them; a document a concurrent call
        # deleted first is not returned (nor counted) once that call commits.
        cur.execute(
            "SELECT id, key FROM documents WHERE collection_id = %s AND key = ANY(%s)"
            " ORDER BY key FOR UPDATE",
            (collection.id, list(keys)),
        )
        found = cur.fetchall()
        if not found:
            return 0, 0, 0
        if batch is not None:  # an import: keep what it deletes, for its rollback
            gone = [r["key"] for r in found]
            capture.save_before(cur, batch, collection, gone, "deleted")
            capture.note_after(cur, batch, collection, [(k, None, None) for k in gone])
        doc_ids = [r["id"] for r in found]
        kept = self._version_hashes(cur, doc_ids)  # the kept versions' vectors may go too
        removed, length, hashes = self._remove_chunks(cur, collection, doc_ids, df)
        cur.execute("DELETE FROM documents WHERE id = ANY(%s)", (doc_ids,))
        self._drop_orphan_embeddings(cur, collection.model_id, [*hashes, *kept])
        return len(doc_ids), removed, length

    _DOC_SQL = (
        "SELECT d.id, d.key, d.title, d.version, d.content_hash, d.metadata, d.source,"
        " (SELECT count(*) FROM chunks k WHERE k.document_id = d.id) AS chunk_count,"
        " d.created_at, d.updated_at FROM documents d"
    )


def vector_rows(
    collection: Collection, embeddings: dict[str, np.ndarray]
) -> tuple[list[str], list[str]]:
    """(text hashes, pgvector texts) of new embeddings, each checked against the collection's
    dimension."""
    hashes = list(embeddings)
    return hashes, [vector_text(collection_vector(collection, embeddings[h])) for h in hashes]


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
