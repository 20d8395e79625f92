"""The PostgreSQL backend: pgvector HNSW for vectors, BM25 over posting blocks in tables,
a psycopg connection pool, row-level security as a second tenant fence, and the readiness
probe (``status``) used by health checks and ``engram doctor``.

``PostgresStore`` is imported lazily: ``status`` and ``sql`` must stay importable where
psycopg is not installed (the embedded default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import PostgresStore

__all__ = ["PostgresStore"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from .store import PostgresStore

        return PostgresStore
    raise AttributeError(name)
