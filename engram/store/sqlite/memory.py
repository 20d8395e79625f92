"""The embedded store's part of the memory contract: the tables themselves are written once
for both backends (:mod:`engram.store.memory_tables`); what is SQLite's own is here.

Vector candidates are scored with numpy: a search reads the vectors of that one user's live
memories and computes every cosine (exact, and always current). Erasure overwrites the freed
bytes (``secure_delete``) and checkpoints the WAL, so erased text does not linger in the
file's free pages or in older page images.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import numpy as np

from ...errors import InvalidInput
from ...memory.types import MemoryScope
from .. import rows as shared
from ..memory_tables import MemoryTables
from .session import DIALECT, SQLiteSessions
from .sql import WriteLock, translate


class SQLiteMemoryMixin(SQLiteSessions, MemoryTables):
    """Conversations, messages, memories and their history in the store's SQLite file."""

    dialect = DIALECT

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    _write_lock: WriteLock
    path: str

    @contextlib.contextmanager
    def _erasing(self) -> Iterator[None]:
        # secure_delete overwrites the freed bytes, so the erased text does not linger in
        # free pages of the file; the checkpoint then drops older page images from the WAL.
        with translate(), self._write_lock:
            self._conn.execute("PRAGMA secure_delete = ON")
        try:
            yield
        finally:
            with translate(), self._write_lock:
                self._conn.execute("PRAGMA secure_delete = OFF")
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def memory_vector_candidates(
        self, scope: MemoryScope, vector: np.ndarray, *, model_id: str, k: int
    ) -> list[tuple[str, float]]:
        cond, params = shared.scope_condition(scope, "?")
        with self._session(scope.tenant) as s:
            found = s.rows(
                f"SELECT id, embedding, model_id FROM memories WHERE {cond} AND deleted_at IS NULL",
                params,
            )
        shared.refuse_other_models(scope, [m for _, _, m in found], model_id)
        if not found or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in found), dtype=np.float32)
        if query.ndim != 1 or matrix.size != len(found) * len(query):
            raise InvalidInput(f"query vector of shape {query.shape} does not match the memories")
        matrix = matrix.reshape(len(found), len(query))
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
        sims = (matrix @ query) / np.where(norms > 0, norms, 1.0)
        # Best first; ties by id so rankings are deterministic.
        ranked = sorted(range(len(found)), key=lambda i: (-float(sims[i]), found[i][0]))[:k]
        return [(found[i][0], float(sims[i])) for i in ranked]
