"""What an operator needs to know about the PostgreSQL database engram runs on.

One read-only probe (:func:`probe`) answers: is the server reachable and how fast, is the
schema at the version of this code's migrations (or behind, or ahead, or altered), is
pgvector installed and in which version, does row-level security apply to the connected
role (superusers and BYPASSRLS roles skip the tenant policies), and how many connections
are open against ``max_connections``. ``/v1/ready`` runs it on the store's connection pool,
``engram doctor`` on a connection of its own; :func:`pool_stats` reads the pool's usage for
both ``/v1/ready`` and ``/metrics``.

It reads catalogs and ``schema_migrations`` only, in a read-only transaction: it never
migrates, never takes a lock another process could wait on, and touches no tenant's rows.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import MigrationError, StoreError
from ..migrations import Migration, check_applied, load_migrations

if TYPE_CHECKING:
    import psycopg

    from ..contract import Store

RLS_HINT = (
    "connect as an ordinary role that owns the database (CREATE ROLE engram LOGIN;"
    " ALTER DATABASE ... OWNER TO engram): superusers and BYPASSRLS roles skip the"
    " row-level-security policies that keep tenants apart"
)
PGVECTOR_HINT = (
    "install pgvector on the server and, as a superuser, run CREATE EXTENSION vector"
    " in this database"
)
MIGRATE_HINT = (
    "run `engram migrate` (with the same ENGRAM_DATABASE_URL) before serving with this version"
)

_PROBE = """
SELECT current_setting('server_version') AS server_version,
       current_database() AS database,
       current_user AS role,
       r.rolsuper AS superuser,
       r.rolbypassrls AS bypass_rls,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,
       to_regclass('schema_migrations') IS NOT NULL AS has_schema,
       current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::int
           AS connections
FROM pg_roles r WHERE r.rolname = current_user
"""

# The psycopg_pool statistics worth reporting: gauges, not counters since start.
POOL_GAUGES = ("pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting")


@dataclass(frozen=True, slots=True)
class PostgresStatus:
    """The answer of :func:`probe`."""

    latency_ms: float  # the whole probe: a pooled connection (or a new one), two queries
    server_version: str
    database: str
    role: str
    superuser: bool
    bypass_rls: bool
    pgvector: str | None  # the extension's version; None: not installed in this database
    schema_version: int  # the latest migration applied (0: none)
    code_version: int  # the latest migration this code has
    pending: tuple[str, ...]  # migrations of this code not applied yet, as NNNN_name
    schema_error: str | None  # the database has a migration unknown to this code, or altered
    schema_hint: str | None
    max_connections: int
    connections: int  # open on this database, by every process

    @property
    def rls_enforced(self) -> bool:
        """Whether row-level security applies to the role (as PostgresStore.rls_enforced)."""
        return not (self.superuser or self.bypass_rls)

    def rls_bypass_reason(self) -> str | None:
        """Why row-level security does not apply to the role, or None when it does."""
        if self.superuser:
            return f"role {self.role!r} is a superuser: row-level security does not apply to it"
        if self.bypass_rls:
            return f"role {self.role!r} has BYPASSRLS: row-level security does not apply to it"
        return None

    @property
    def schema_ok(self) -> bool:
        return not self.pending and self.schema_error is None

    def schema_detail(self) -> str:
        """One line on the schema, for a check's message."""
        if self.schema_error:
            return self.schema_error
        detail = f"schema version {self.schema_version} of {self.code_version}"
        if self.pending:
            detail += f": {len(self.pending)} migration(s) pending ({', '.join(self.pending)})"
        return detail


@functools.cache
def _code_migrations() -> list[Migration]:
    return load_migrations("postgres")  # files of the installed package: read them once


def probe(
    cursor: psycopg.Cursor[dict[str, Any]], *, started: float | None = None
) -> PostgresStatus:
    """Read the status through ``cursor`` (rows as dicts), in its current transaction.
    ``started`` (a ``time.perf_counter()`` value) is when the caller began waiting for the
    connection, so that the latency includes it."""
    started = time.perf_counter() if started is None else started
    row = cursor.execute(_PROBE).fetchone()
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        raise StoreError("the connected role is missing from pg_roles")
    applied: dict[int, str] = {}
    if row["has_schema"]:
        rows = cursor.execute("SELECT version, sha256 FROM schema_migrations").fetchall()
        applied = {int(r["version"]): str(r["sha256"]) for r in rows}
    latency = (time.perf_counter() - started) * 1000
    migrations = _code_migrations()
    pending: tuple[str, ...] = ()
    error = hint = None
    try:
        pending = tuple(f"{m.version:04d}_{m.name}" for m in check_applied(applied, migrations))
    except MigrationError as exc:
        error, hint = exc.message, exc.hint
    if pending:
        hint = MIGRATE_HINT
    return PostgresStatus(
        latency_ms=round(latency, 3),
        server_version=str(row["server_version"]),
        database=str(row["database"]),
        role=str(row["role"]),
        superuser=bool(row["superuser"]),
        bypass_rls=bool(row["bypass_rls"]),
        pgvector=row["pgvector"],
        schema_version=max(applied, default=0),
        code_version=migrations[-1].version if migrations else 0,
        pending=pending,
        schema_error=error,
        schema_hint=hint,
        max_connections=int(row["max_connections"]),
        connections=int(row["connections"]),
    )


def store_status(store: Store) -> PostgresStatus:
    """:func:`probe` on a connection of the store's pool (so it also proves the pool works);
    a failure raises the store's errors (ServerUnavailable, StoreError)."""
    from .store import PostgresStore

    if not isinstance(store, PostgresStore):
        raise StoreError(f"{type(store).__name__} is not the PostgreSQL store")
    started = time.perf_counter()
    with store.inspect() as cur:
        return probe(cur, started=started)


def url_status(url: str, *, timeout: float = 5.0) -> PostgresStatus:
    """:func:`probe` on a new connection to ``url`` (``engram doctor``: no pool, no
    migration). Raises ServerUnavailable when the server cannot be reached."""
    from .connection import require_psycopg, translate

    require_psycopg()  # before importing psycopg: a missing extra gets its pip command
    import psycopg
    from psycopg.rows import dict_row

    from ...errors import ServerUnavailable
    from .sql import redact

    started = time.perf_counter()
    try:
        conn = psycopg.connect(
            url,
            connect_timeout=max(1, int(timeout)),
            application_name="engram-doctor",
            row_factory=dict_row,
        )
    except psycopg.OperationalError as exc:
        raise ServerUnavailable(
            f"cannot connect to PostgreSQL at {redact(url)}: {str(exc).strip()}",
            hint="check ENGRAM_DATABASE_URL and that the server is running",
        ) from exc
    with translate(), conn:
        conn.read_only = True
        with conn.cursor() as cur:
            return probe(cur, started=started)


def pool_stats(store: Any) -> dict[str, int] | None:
    """The connection pool's gauges (see :data:`POOL_GAUGES`, plus ``pool_in_use``), or
    None when the store has no psycopg pool (SQLite). ``pool_size`` counts the connections
    being opened too, so ``pool_in_use`` (size - available) includes them."""
    get_stats = getattr(store, "pool_stats", None)
    if get_stats is None:
        return None
    stats = get_stats()
    gauges = {name: int(stats.get(name, 0)) for name in POOL_GAUGES}
    gauges["pool_in_use"] = gauges["pool_size"] - gauges["pool_available"]
    return gauges
