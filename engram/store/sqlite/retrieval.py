"""The embedded store's retrieval: the derived indexes (BM25 postings and an HNSW graph per
collection, in files beside the database) kept in step with SQLite through the change log
(``chunk_log``), and the two retrieval legs answered from them.

Every search first catches its collection's indexes up with the log (one statement when
nothing changed); another process's saved index files are reloaded when it pruned entries
this one had not applied; anything unreadable is rebuilt from the chunks and embeddings.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import DocumentNotFound
from ...search.ann import HnswParams
from ...types import Collection
from .. import rows as shared
from ..records import ChunkRecord, Where, collection_vector
from .derived import ChunkChange, DerivedIndexes
from .session import SQLiteSessions
from .sql import DECODING, batches, compile_where

logger = logging.getLogger("engram.store")

_ALLOWED_MEMO = 16  # filters whose chunk ids are remembered (per log position)


class SQLiteRetrievalMixin(SQLiteSessions):
    """Keyword and vector retrieval over the derived indexes (a mixin of SQLiteStore)."""

    # Provided by SQLiteStore.
    index_dir: Path | None
    hnsw: HnswParams
    _indexes: dict[int, DerivedIndexes]
    _index_lock: threading.RLock
    _COLLECTION_SQL_LIGHT: str
    _allowed_memo: OrderedDict[tuple[int, int, str], set[int]]

    if TYPE_CHECKING:

        @staticmethod
        def _collection_from_row(row: Sequence[Any]) -> Collection: ...

    # -- retrieval: derived indexes ----------------------------------------------------------
    def _indexes_for(self, collection: Collection) -> DerivedIndexes:
        with self._index_lock:
            indexes = self._indexes.get(collection.id)
            if indexes is None:
                indexes = DerivedIndexes(
                    self.index_dir, collection.id, collection.dimension, self.hnsw
                )
                self._indexes[collection.id] = indexes
        return indexes

    def _catch_up(self, collection: Collection) -> DerivedIndexes:
        """Replay chunk_log entries newer than the indexes; rebuild if the log was pruned."""
        indexes = self._indexes_for(collection)
        cid = collection.id
        # Hot path (every search): one statement, no lock, no transaction, when the indexes
        # already hold everything the log and the pruning mark say exists.
        head, pruned = self._log_position(cid)
        if head <= indexes.seq and pruned <= indexes.seq:
            return indexes
        # One read snapshot for the position and the rows: another process may prune the log
        # between two statements, and must not make us skip entries.
        with self._index_lock, self._snapshot():
            head, pruned = self._log_position(cid)
            if indexes.seq < pruned:
                # Another process saved newer index files and pruned the log: reload them.
                indexes = DerivedIndexes(self.index_dir, cid, collection.dimension, self.hnsw)
                self._indexes[cid] = indexes
                if indexes.seq < pruned:
                    return self._rebuild(collection, indexes)
            if head <= indexes.seq:
                return indexes
            rows = self._read(
                "SELECT l.chunk_id, l.op, c.terms, e.vector FROM chunk_log l"
                " LEFT JOIN chunks c ON c.id = l.chunk_id AND l.op = 1"
                " LEFT JOIN embeddings e ON e.model_id = ? AND e.text_hash = c.text_hash"
                " WHERE l.collection_id = ? AND l.seq > ? AND l.seq <= ? ORDER BY l.seq",
                (collection.model_id, cid, indexes.seq, head),
            )
            indexes.apply(
                [
                    ChunkChange(
                        chunk_id,
                        op == 1,
                        terms,
                        np.frombuffer(blob, dtype=np.float32) if blob is not None else None,
                    )
                    for chunk_id, op, terms, blob in rows
                ],
                head,
            )
            return indexes

    def _log_position(self, cid: int) -> tuple[int, int]:
        """(head of the chunk log, pruning mark) of a collection, read in one statement."""
        row = self._read(
            "SELECT coalesce((SELECT max(seq) FROM chunk_log WHERE collection_id = ?), 0),"
            " coalesce((SELECT pruned_seq FROM index_state WHERE collection_id = ?), 0)",
            (cid, cid),
        )[0]
        return int(row[0]), int(row[1])

    def _rebuild(self, collection: Collection, indexes: DerivedIndexes) -> DerivedIndexes:
        # The rebuilt indexes hold everything up to the log's head; if the log was pruned
        # empty, that point is the pruning mark, not 0 (or every open would rebuild again).
        head = max(self._log_position(collection.id))
        rows = self._read(
            "SELECT c.id, c.terms, e.vector FROM chunks c"
            " JOIN embeddings e ON e.model_id = ? AND e.text_hash = c.text_hash"
            " WHERE c.collection_id = ?",
            (collection.model_id, collection.id),
        )
        indexes.reset()
        indexes.apply(
            [
                ChunkChange(cid, True, terms, np.frombuffer(blob, dtype=np.float32))
                for cid, terms, blob in rows
            ],
            head,
        )
        return indexes

    def _allowed(self, collection: Collection, where: Where | None, seq: int) -> set[int] | None:
        """The chunk ids a filter lets through. A hybrid search asks twice (one leg each)
        for the same filter at the same log position: the second answer is remembered."""
        if not where:
            return None
        key = (collection.id, seq, json.dumps(where, sort_keys=True, default=str))
        with self._index_lock:
            found = self._allowed_memo.get(key)
        if found is not None:
            return found
        cond, params = compile_where(where)
        found = {
            r[0]
            for r in self._read(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id"
                f" WHERE c.collection_id = ? AND {cond}",
                (collection.id, *params),
            )
        }
        with self._index_lock:
            self._allowed_memo[key] = found
            while len(self._allowed_memo) > _ALLOWED_MEMO:
                self._allowed_memo.popitem(last=False)
        return found

    def keyword_search(
        self, collection: Collection, terms: Sequence[str], *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        indexes = self._catch_up(collection)
        return indexes.keywords.search(terms, k, self._allowed(collection, where, indexes.seq))

    def term_frequencies(self, collection: Collection, terms: Sequence[str]) -> dict[str, int]:
        keywords = self._catch_up(collection).keywords
        return {t: keywords.doc_freq(t) for t in terms}

    def keyword_chunks(self, collection: Collection) -> int:
        return len(self._catch_up(collection).keywords)

    def revision(self, collection: Collection) -> int:
        # chunk_log's AUTOINCREMENT counter moves on every chunk added or removed anywhere.
        rows = self._read("SELECT seq FROM sqlite_sequence WHERE name = 'chunk_log'")
        return int(rows[0][0]) if rows else 0

    def vocabulary(self, collection: Collection) -> list[str]:
        return self._catch_up(collection).keywords.vocabulary()

    def spelling_candidates(
        self, collection: Collection, terms: Sequence[str]
    ) -> dict[str, list[str]]:
        return self._catch_up(collection).keywords.spelling_candidates(terms)

    def vector_search(
        self, collection: Collection, vector: np.ndarray, *, k: int, where: Where | None = None
    ) -> list[tuple[int, float]]:
        vec = collection_vector(collection, vector, query=True)
        indexes = self._catch_up(collection)
        return indexes.vectors.search(vec, k, self._allowed(collection, where, indexes.seq))

    def get_chunks(self, collection: Collection, ids: Sequence[int]) -> dict[int, ChunkRecord]:
        out: dict[int, ChunkRecord] = {}
        for part in batches(list(ids)):
            rows = self._read(
                "SELECT c.id, c.document_id, d.key, c.version, d.title, c.text, c.start_char, c.end_char,"
                " c.page, c.heading_path, d.metadata FROM chunks c JOIN documents d ON d.id = c.document_id"
                f" WHERE c.collection_id = ? AND c.id IN ({','.join('?' * len(part))})",
                (collection.id, *part),
            )
            for r in rows:
                out[r[0]] = shared.chunk(r, DECODING)
        return out

    def document_chunks(self, collection: Collection, key: str) -> list[ChunkRecord]:
        rows = self._read(
            "SELECT c.id, c.document_id, d.key, c.version, d.title, c.text, c.start_char, c.end_char,"
            " c.page, c.heading_path, d.metadata FROM documents d"
            " LEFT JOIN chunks c ON c.document_id = d.id"
            " WHERE d.collection_id = ? AND d.key = ? ORDER BY c.start_char, c.ordinal",
            (collection.id, key),
        )
        if not rows:
            raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
        return [shared.chunk(r, DECODING) for r in rows if r[0] is not None]

    # -- lifecycle ----------------------------------------------------------------------------
    def warm_up(self) -> list[Collection]:
        collections = [self._collection_from_row(r) for r in self._read(self._COLLECTION_SQL_LIGHT)]
        for collection in collections:
            self._catch_up(collection)
        return collections

    def sync(self) -> None:
        """Save every index that changed and prune the log entries they now contain.

        The data is committed before this runs: a save that fails (a full disk) is logged
        and leaves the log unpruned, so the indexes are caught up from it at the next open.
        """
        if not self.index_dir:
            return
        with self._index_lock:
            items = list(self._indexes.items())
        for cid, indexes in items:
            try:
                indexes.save()
            except OSError as exc:
                logger.warning("could not save the indexes of collection %s: %s", cid, exc)
                continue
            with self._transaction(traced=False) as conn:
                conn.execute(
                    "INSERT INTO index_state (collection_id, pruned_seq) VALUES (?, ?)"
                    " ON CONFLICT (collection_id) DO UPDATE"
                    " SET pruned_seq = max(pruned_seq, excluded.pruned_seq)",
                    (cid, indexes.seq),
                )
                conn.execute(
                    "DELETE FROM chunk_log WHERE collection_id = ? AND seq <= ?",
                    (cid, indexes.seq),
                )
