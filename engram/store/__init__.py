"""Stores: the contract (``base``) and its backends, chosen from the settings by
:func:`open_store` (PostgreSQL when ``database_url`` is set, else the embedded SQLite file).
Backends are imported lazily, so the embedded path never imports psycopg."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..search.ann import HnswParams

if TYPE_CHECKING:
    from ..config import Settings
    from .contract import Store
    from .postgres import PostgresStore


def hnsw_params(settings: Settings) -> HnswParams:
    return HnswParams(
        connectivity=settings.hnsw_m,
        expansion_add=settings.hnsw_ef_construction,
        expansion_search=settings.hnsw_ef_search,
        exact_below=settings.exact_search_below,
    )


def _postgres_store() -> type[PostgresStore]:
    """The PostgreSQL backend class, or the install command when its extra is missing."""
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("psycopg", "psycopg_pool", "psycopg_binary"):
            from ..errors import MissingDependency

            raise MissingDependency(
                "the PostgreSQL backend needs psycopg 3 and psycopg-pool",
                hint='pip install "engram[postgres]"',
            ) from exc
        raise
    return PostgresStore


def open_store(settings: Settings) -> Store:
    """The store the settings name; opening it applies pending schema migrations."""
    if settings.database_url:
        return _postgres_store()(
            settings.database_url,
            hnsw=hnsw_params(settings),
            pool_size=settings.database_pool_size,
            postings_cache_mb=settings.postings_cache_mb,
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.db_path, index_dir=settings.index_dir, hnsw=hnsw_params(settings))


@dataclass(frozen=True)
class MigrationReport:
    """What ``engram migrate`` did: where, the migrations applied now, and every migration
    the database has (version, name)."""

    backend: str
    location: str
    applied_now: list[str]
    recorded: list[tuple[int, str]]


def migrate(settings: Settings) -> MigrationReport:
    """Bring the database the settings name to the current schema, and say what was done."""
    if settings.database_url:
        PostgresStore = _postgres_store()  # noqa: N806 - a class
        from .postgres.sql import redact

        store = PostgresStore(settings.database_url, hnsw=hnsw_params(settings), pool_size=1)
        try:
            return MigrationReport(
                "postgres",
                redact(settings.database_url),
                [f"{m.version:04d}_{m.name}" for m in store.applied],
                store.migrations(),
            )
        finally:
            store.close()
    import sqlite3

    from .sqlite import SQLiteStore
    from .sqlite.sql import translate

    path = settings.db_path
    before: set[int] = set()
    if path.exists():
        with translate():
            conn = sqlite3.connect(path)
            try:
                if conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'"
                ).fetchone():
                    before = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            finally:
                conn.close()
    embedded = SQLiteStore(path, index_dir=settings.index_dir, hnsw=hnsw_params(settings))
    try:
        recorded = [
            (int(v), str(n))
            for v, n in embedded._read(
                "SELECT version, name FROM schema_migrations ORDER BY version"
            )
        ]
    finally:
        embedded.close()
    return MigrationReport(
        "sqlite",
        str(path),
        [f"{v:04d}_{n}" for v, n in recorded if v not in before],
        recorded,
    )
