"""The embedded backend: one SQLite file (WAL mode, one writer connection and a read
connection per thread) plus derived index files (HNSW vectors, BM25 postings) kept in step
with it through a change log. Everything lives in one data directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import SQLiteStore

__all__ = ["SQLiteStore"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``engram.store.sqlite.sql`` (used by the doctor and migrate) does not load
    # the whole store.
    if name == "SQLiteStore":
        from .store import SQLiteStore

        return SQLiteStore
    raise AttributeError(name)
