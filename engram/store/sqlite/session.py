"""Transactions of the embedded store as :class:`~engram.store.session.Session` objects,
for the tables written once for both backends (memory, jobs)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ... import tracing
from ..session import Dialect, Session
from .sql import DECODING, WriteLock, translate


def _time(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _json_equals(column: str, key: str, value: Any) -> tuple[str, list[Any]]:
    # json_each reads the object's top-level fields, whatever their names (a JSON path would
    # have to quote them); a scalar comes back as an SQL value, an object or array as
    # minified JSON text, as json_extract returns the value written with sorted keys.
    if value is None:
        return (
            f"NOT EXISTS (SELECT 1 FROM json_each({column}) WHERE key = ? AND type <> 'null')",
            [key],
        )
    return (
        f"EXISTS (SELECT 1 FROM json_each({column})"
        " WHERE key = ? AND value IS json_extract(?, '$'))",
        [key, json.dumps(value, sort_keys=True, ensure_ascii=False)],
    )


# What the tables written once for both backends need to know of SQLite.
DIALECT = Dialect(
    decoding=DECODING,
    insertion_order="rowid",
    json_mark="?",
    vector_mark="?",
    lock_rows="",
    tenant_on_children=False,
    time_value=_time,
    vector_value=lambda vector: vector.tobytes(),
    vector_from=lambda blob: np.frombuffer(blob, dtype=np.float32),
    limit=lambda value: value,
    json_equals=_json_equals,
)


class _Writing:
    """Statements of the write transaction, on the writer's connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        # fetchall: a statement left half-stepped (INSERT … RETURNING) would block COMMIT.
        found = self.rows(sql, params)
        return found[0] if found else None


class _Reading:
    """Reads through the store's ``_read`` (this thread's reader, or its open snapshot)."""

    def __init__(self, read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> None:
        self._read = read

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise TypeError("a read session does not change rows")

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        raise TypeError("a read session does not change rows")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(sql, params)

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        found = self._read(sql, params)
        return found[0] if found else None


class SQLiteSessions:
    """Write transactions and sessions over the store's connections (a mixin of
    :class:`~engram.store.sqlite.store.SQLiteStore`, which provides the attributes below)."""

    _conn: sqlite3.Connection
    _write_lock: WriteLock
    _read: Callable[..., list[tuple[Any, ...]]]
    _snapshot: Callable[[], contextlib.AbstractContextManager[None]]

    @contextlib.contextmanager
    def _transaction(self, *, traced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.
        ``BEGIN IMMEDIATE`` takes the file's write lock at once (waiting up to busy_timeout
        for another process), so the transaction never fails on upgrading a read.
        ``traced=False`` for housekeeping outside any request (saving index files), which
        must not start traces of its own."""
        span = (
            tracing.span("store.transaction", **{"db.system": "sqlite"})
            if traced
            else contextlib.nullcontext()
        )
        with span, translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _session(
        self, tenant: str, *, write: bool = False, snapshot: bool = False
    ) -> Iterator[Session]:
        # The tenant is in every statement's WHERE: SQLite has no row-level security.
        if write:
            with self._transaction() as conn:
                yield _Writing(conn)
        elif snapshot:
            with self._snapshot():
                yield _Reading(self._read)
        else:
            yield _Reading(self._read)
