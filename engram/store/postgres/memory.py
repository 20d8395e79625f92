"""PostgreSQL's part of the memory contract: the tables themselves are written once for
both backends (:mod:`engram.store.memory_tables`, run here in the store's tenant-scoped
transactions, so the row-level-security policies apply on top of the explicit
``tenant = ...`` conditions); what is PostgreSQL's own is here.

Vector candidates are scored by pgvector's ``<=>`` over the user's rows, exactly (no ANN
index: per-user sets are small). Erased rows are gone for every query at commit; their
bytes stay in the table files until autovacuum reclaims the space (PostgreSQL has no
secure_delete).
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInput
from ...memory.types import MemoryScope
from .. import rows as shared
from ..memory_tables import MemoryTables
from .connection import DIALECT, PostgresBase, vector_text


class PostgresMemoryMixin(PostgresBase, MemoryTables):
    """Conversations, messages, memories and their history in PostgreSQL."""

    dialect = DIALECT

    def memory_vector_candidates(
        self, scope: MemoryScope, vector: np.ndarray, *, model_id: str, k: int
    ) -> list[tuple[str, float]]:
        cond, params = shared.scope_condition(scope, "%s")
        query = np.asarray(vector, dtype=np.float32)
        with self._tx(scope.tenant) as cur:
            cur.execute(
                "SELECT model_id, vector_dims(embedding) AS dim FROM memories"
                f" WHERE {cond} AND deleted_at IS NULL GROUP BY 1, 2",
                params,
            )
            kinds = cur.fetchall()
            shared.refuse_other_models(scope, [r["model_id"] for r in kinds], model_id)
            if not kinds or k <= 0:
                return []
            if query.ndim != 1 or any(r["dim"] != len(query) for r in kinds):
                raise InvalidInput(
                    f"query vector of shape {query.shape} does not match the memories"
                )
            if not np.all(np.isfinite(query)):
                raise InvalidInput("the query vector must contain finite numbers only")
            # pgvector's cosine distance is NaN when a vector is zero; the SQLite backend
            # scores those 0. Ties by id (byte order, like Python's) for determinism.
            cur.execute(
                "SELECT id, CASE WHEN d = 'NaN'::float8 THEN 0 ELSE 1 - d END AS sim"
                " FROM (SELECT id, embedding <=> %s::vector AS d FROM memories"
                f" WHERE {cond} AND deleted_at IS NULL) AS scored"
                ' ORDER BY sim DESC, id COLLATE "C" LIMIT %s',
                (vector_text(query), *params, k),
            )
            return [(r["id"], float(r["sim"])) for r in cur.fetchall()]
