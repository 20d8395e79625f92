"""The little a table written once for both backends needs from a backend: a transaction
(:class:`Session`) and the dialect's few differences (:class:`Dialect`).

Shared implementations (:mod:`engram.store.memory_tables`, :mod:`engram.store.job_tables`)
write their SQL with ``?`` placeholders and ask the dialect for what differs: how JSON and
vector parameters are cast, which column keeps insertion order, how timestamps and vectors
are passed, and how rows come back (:class:`~engram.store.rows.Decoding`). A backend opens
sessions on its own connections: SQLite on its single writer or a per-thread reader,
PostgreSQL on a pooled connection scoped to the tenant (row-level security).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import numpy as np

from .rows import Decoding

# The tenant of a session that serves every tenant (the job workers' side): PostgreSQL's
# row-level-security policies let it through; SQLite has none to pass.
ALL_TENANTS = "*"


class Session(Protocol):
    """One transaction; statements use ``?`` placeholders and rows come back as tuples in
    the order of their select list."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement; the number of rows it changed."""

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Execute a statement once per parameter row."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row, or None."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL and drivers, for the shared tables."""

    decoding: Decoding
    # The column that orders rows by insertion (SQLite's rowid, PostgreSQL's seq).
    insertion_order: str
    # A JSON and a vector parameter: "?" where the driver passes them as they are, or with
    # a cast ("?::jsonb", "?::vector").
    json_mark: str
    vector_mark: str
    # Appended to a SELECT that reads a row about to be changed: PostgreSQL locks it ("FOR
    # UPDATE"); SQLite needs nothing, its writer is one at a time.
    lock_rows: str
    # Child rows (messages, memory history) carry their tenant (PostgreSQL, for row-level
    # security), or take it from their parent (SQLite).
    tenant_on_children: bool
    time_value: Callable[[datetime], Any]
    vector_value: Callable[[np.ndarray], Any]
    # A vector column as read back (SQLite: float32 bytes; PostgreSQL: pgvector's text).
    vector_from: Callable[[Any], np.ndarray]

    # A LIMIT parameter: a negative one means no limit, which SQLite reads as such and
    # PostgreSQL wants as NULL (SQLite refuses NULL).
    limit: Callable[[int], int | None]
    # SQL (and its parameters) true when the top-level field ``key`` of the JSON object in
    # ``column`` equals ``value`` exactly (None: the field is missing or null), for
    # (column, key, value) — LangGraph's metadata filter.
    json_equals: Callable[[str, str, Any], tuple[str, list[Any]]]

    @staticmethod
    def offset(value: int) -> int:
        """A negative OFFSET means 0 (SQLite reads it so; PostgreSQL refuses it)."""
        return max(value, 0)


class Tables(ABC):
    """Base of the tables written once for both backends: they run their SQL through
    :meth:`_session`, which each backend provides, in the dialect it names."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    def _session(
        self, tenant: str, *, write: bool = False, snapshot: bool = False
    ) -> contextlib.AbstractContextManager[Session]:
        """A transaction for ``tenant``'s rows: ``write`` to change them (committed when the
        block ends, rolled back if it raises), ``snapshot`` for reads that must all see the
        same state; otherwise each read sees the latest committed state."""
