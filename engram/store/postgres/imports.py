"""PostgreSQL's part of import batches (:mod:`engram.store.import_tables`): the document
side of a rollback, on one transaction scoped to the tenant, through the write path's own
steps (engram.store.postgres.write), so chunks, postings, vocabulary, posting blocks and the
collection's statistics change with the documents, as in any write.

Locks, in the writers' order (engram.store.postgres.write): the collections FOR KEY SHARE,
the embeddings of every document to write back (inserted or held), then each collection's
documents FOR UPDATE in key order, checked against what the batch left before anything is
written; a concurrent writer of one of them waits, and sees the rollback's result.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg

from ...types import Collection
from .. import rows as shared
from ..import_tables import DocumentRollback, ImportTables
from ..records import DocumentWrite
from ..session import Session
from .bm25 import BlockCounts
from .connection import DECODING, DIALECT, _CursorSession
from .write import PostgresWriteMixin, _key_batches, vector_rows


class PostgresImportsMixin(PostgresWriteMixin, ImportTables):
    """Import batches in PostgreSQL."""

    dialect = DIALECT

    @contextlib.contextmanager
    def _rollback_session(self, tenant: str) -> Iterator[tuple[Session, DocumentRollback]]:
        with self._tx(tenant) as cur:
            yield _CursorSession(cur), _Documents(self, cur, tenant)


class _Documents:
    """The document side of a rollback, in the rollback's transaction."""

    def __init__(
        self, store: PostgresImportsMixin, cur: psycopg.Cursor[dict[str, Any]], tenant: str
    ) -> None:
        self._store = store
        self._cur = cur
        self._tenant = tenant
        # Per collection id: the collection, and its chunk count, length and posting changes.
        self._changes: dict[int, tuple[Collection, list[int], BlockCounts]] = {}
        self._written: set[int] = set()

    def collection(self, collection_id: int) -> Collection | None:
        self._cur.execute(
            "SELECT id, tenant, name, model_id, dimension, language, settings, created_at,"
            " 0 AS documents, 0 AS chunks FROM collections WHERE id = %s AND tenant = %s"
            " FOR KEY SHARE",
            (collection_id, self._tenant),
        )
        row = self._cur.fetchone()
        if row is None:
            return None
        collection = shared.collection(list(row.values()), DECODING)
        self._changes[collection.id] = (collection, [0, 0], Counter())
        return collection

    def current(self, collection: Collection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        self._cur.execute(
            "SELECT key, version, content_hash FROM documents WHERE collection_id = %s"
            " AND key = ANY(%s) ORDER BY key FOR UPDATE",
            (collection.id, list(keys)),
        )
        return {r["key"]: (r["version"], r["content_hash"]) for r in self._cur.fetchall()}

    def remove(self, collection: Collection, keys: Sequence[str]) -> None:
        _, totals, df = self._changes[collection.id]
        self._written.add(collection.id)
        _, removed, length = self._store._delete_held(self._cur, collection, keys, df, None)  # noqa: SLF001
        totals[0] -= removed
        totals[1] -= length

    def hold_vectors(
        self,
        collection: Collection,
        documents: Sequence[DocumentWrite],
        vectors: dict[str, np.ndarray],
    ) -> None:
        cur = self._cur
        needed = sorted({c.text_hash for d in documents for c in d.chunks})
        cur.execute(
            "SELECT text_hash FROM embeddings WHERE model_id = %s AND text_hash = ANY(%s)",
            (collection.model_id, needed),
        )
        cached = {r["text_hash"] for r in cur.fetchall()}
        # Only the vectors the cache lacks are inserted: the others are held FOR KEY SHARE,
        # which no concurrent writer waits for.
        hashes, texts = vector_rows(
            collection, {h: vectors[h] for h in needed if h not in cached and h in vectors}
        )
        self._store._use_embeddings(cur, collection.model_id, needed, hashes, texts)  # noqa: SLF001

    def restore(self, collection: Collection, documents: Sequence[DocumentWrite]) -> None:
        cur, store = self._cur, self._store
        _, totals, df = self._changes[collection.id]
        self._written.add(collection.id)
        for positions in _key_batches(documents):
            group = [documents[i] for i in positions]
            _, (chunks, length, old) = store._write_batch(cur, collection, group, df)  # noqa: SLF001
            store._drop_orphan_embeddings(cur, collection.model_id, old)  # noqa: SLF001
            totals[0] += chunks
            totals[1] += length

    def finish(self) -> None:
        for cid in sorted(self._written):  # the collection rows, last, in one order
            collection, (chunks, length), df = self._changes[cid]
            self._store._bump(self._cur, collection, chunks, length, df)  # noqa: SLF001
