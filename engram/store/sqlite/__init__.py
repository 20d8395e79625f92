"""The embedded backend: one SQLite file (WAL mode, one writer connection and a read
connection per thread) plus derived index files (HNSW vectors, BM25 postings) kept in step
with it through a change log. Everything lives in one data directory."""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
