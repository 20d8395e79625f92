"""Plumbing shared by the PostgreSQL store and its mixins: the pool, tenant-scoped
transactions, error translation, timestamps and vectors.

Every statement runs inside :meth:`PostgresBase._tx`, which sets ``engram.tenant`` for the
transaction; the row-level-security policies of every tenant-owned table compare each row's
``tenant`` column with it, so a query that forgets its ``WHERE tenant = ...`` still sees one
tenant's rows only. :data:`SYSTEM` is the tenant value of the few operations that serve every
tenant (claiming jobs, looking an API key up by id, migrations).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ... import tracing
from ...errors import (
    Conflict,
    EngramError,
    InvalidInput,
    MissingDependency,
    ServerUnavailable,
    StoreError,
)
from ..rows import Decoding
from ..session import ALL_TENANTS, Dialect, Session
from ..translation import translating

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

log = logging.getLogger(__name__)

SYSTEM = ALL_TENANTS  # tenant value for system operations that cross tenants

_INSTALL = 'pip install "engram[postgres]"'


def require_psycopg() -> None:
    """Fail with the install command when the ``postgres`` extra is missing."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(
            "the PostgreSQL backend needs psycopg 3 and psycopg-pool", hint=_INSTALL
        ) from exc


def iso(
    value: datetime | None, *, timespec: Literal["seconds", "microseconds"] = "microseconds"
) -> str | None:
    """A timestamp exactly as the SQLite backend stores it: ISO 8601 in UTC with ``+00:00``.
    Collections, documents and API keys use ``timespec="seconds"``; memories, jobs and events
    ``"microseconds"`` (see the ``_now()`` of each SQLite module)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec=timespec)


def parse_vector(text: str) -> np.ndarray:
    """The inverse of :func:`vector_text` (pgvector returns ``vector`` columns as text)."""
    return np.array(text.strip("[]").split(","), dtype=np.float32)


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a vector: ``[0.1,0.2,...]`` (float32 round-trips exactly)."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    return "[" + ",".join(repr(float(x)) for x in vec.tolist()) + "]"


def sorted_keys(value: Any) -> Any:
    """jsonb returns object keys by length; SQLite's text keeps them sorted: sort them back."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def _time(value: datetime | None, seconds: bool) -> str | None:
    return iso(value, timespec="seconds" if seconds else "microseconds")


# psycopg hands over jsonb as Python values (keys reordered: sorted back) and timestamps as
# datetimes. Job columns are json, not jsonb: their keys keep the order they were written in.
DECODING = Decoding(json=sorted_keys, time=_time)
JOB_DECODING = Decoding(json=lambda value: value, time=_time)


def _json_equals(column: str, key: str, value: Any) -> tuple[str, list[Any]]:
    # The key is cast: an untyped parameter after -> could be an array index as well.
    if value is None:
        return f"COALESCE({column} -> (?::text), 'null'::jsonb) = 'null'::jsonb", [key]
    return f"{column} -> (?::text) = ?::jsonb", [key, json.dumps(value, ensure_ascii=False)]


# What the tables written once for both backends need to know of PostgreSQL.
DIALECT = Dialect(
    decoding=DECODING,
    insertion_order="seq",
    json_mark="?::jsonb",
    vector_mark="?::vector",
    lock_rows=" FOR UPDATE",
    tenant_on_children=True,
    time_value=lambda value: value,
    vector_value=vector_text,
    vector_from=parse_vector,
    limit=lambda value: None if value < 0 else value,
    json_equals=_json_equals,
)


def one_row(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    """The row a statement always returns (an aggregate, an INSERT ... RETURNING)."""
    row = cur.fetchone()
    assert row is not None
    return row


def translate() -> contextlib.AbstractContextManager[None]:
    """The one boundary where psycopg errors become engram errors."""
    return translating(_read_error)


def _read_error(exc: Exception) -> EngramError | None:
    import psycopg
    import psycopg_pool
    from psycopg import errors as pgerr

    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ServerUnavailable(
            f"no PostgreSQL connection available: {exc}",
            hint="check that the database is up and reachable (ENGRAM_DATABASE_URL)",
        )
    if isinstance(exc, pgerr.UniqueViolation):
        return Conflict(f"already exists: {exc.diag.message_detail or exc}")
    if isinstance(exc, psycopg.DataError):
        nul = "NUL" in str(exc) or "\\u0000" in str(exc)
        return InvalidInput(
            f"PostgreSQL refused a value: {str(exc).splitlines()[0]}",
            hint="PostgreSQL cannot store NUL (\\x00) characters in text: remove them"
            if nul
            else None,
        )
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return StoreError(
            f"PostgreSQL refused the operation: {exc}",
            hint="row-level security or grants forbid it for this tenant or role",
        )
    if isinstance(exc, (pgerr.DeadlockDetected, pgerr.SerializationFailure)):
        # temporary (503), so clients and the job worker retry it; not a 409 they would not
        return ServerUnavailable(
            f"a concurrent change collided with this one ({exc.sqlstate}); nothing was written",
            hint="retry the request",
        )
    if isinstance(exc, (pgerr.AdminShutdown, pgerr.CannotConnectNow, psycopg.OperationalError)):
        return ServerUnavailable(
            f"lost the connection to PostgreSQL: {exc}".strip(),
            hint="the database restarted or is unreachable; retry the request",
        )
    if isinstance(exc, psycopg.Error):
        return StoreError(f"PostgreSQL error: {exc}")
    return None


class _CursorSession:
    """A :class:`~engram.store.session.Session` over a transaction's cursor: the shared
    tables' ``?`` placeholders become psycopg's ``%s``, dict rows become tuples."""

    def __init__(self, cur: psycopg.Cursor[dict[str, Any]]) -> None:
        self._cur = cur

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        self._cur.execute(self._sql(sql), params)

    def run_many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(self._sql(sql), params)

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._execute(sql, params)
        return self._cur.rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._execute(sql, params)
        return [tuple(r.values()) for r in self._cur.fetchall()]

    def row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._execute(sql, params)
        found = self._cur.fetchone()
        return None if found is None else tuple(found.values())


class PostgresBase:
    """Holds the connection pool; the store and its mixins run SQL through :meth:`_tx`."""

    _pool: psycopg_pool.ConnectionPool[Any]

    @contextlib.contextmanager
    def _tx(
        self, tenant: str, *, snapshot: bool = False, settings: dict[str, str] | None = None
    ) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """One transaction on a pooled connection; rows as dicts. ``engram.tenant`` (and any
        ``settings``, e.g. ``hnsw.ef_search``) are set for this transaction only, so the
        connection goes back to the pool unscoped. ``snapshot=True`` makes it a read-only
        REPEATABLE READ transaction: every statement sees the same database state.

        The pool checks a connection before handing it out and replaces it when the server
        restarted, so a restart costs no request; a failure inside the transaction rolls it
        back and surfaces as ServerUnavailable (nothing was committed: safe to retry)."""
        from psycopg.rows import dict_row

        names = [("engram.tenant", tenant), *(settings or {}).items()]
        set_sql = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names)
        params = [x for pair in names for x in pair]
        with (
            tracing.span("store.transaction", **{"db.system": "postgresql", "read_only": snapshot}),
            translate(),
            self._pool.connection() as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if snapshot:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(set_sql, params)
            yield cur

    @contextlib.contextmanager
    def _session(
        self, tenant: str, *, write: bool = False, snapshot: bool = False
    ) -> Iterator[Session]:
        """A :class:`~engram.store.session.Session` in one transaction (see :meth:`_tx`);
        row-level security scopes it to ``tenant``."""
        with self._tx(tenant, snapshot=snapshot and not write) as cur:
            yield _CursorSession(cur)
