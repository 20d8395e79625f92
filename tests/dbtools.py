"""Read a database behind the store's back, on either backend (tests only).

SQL is written with ``?`` placeholders and must be valid on both SQLite and PostgreSQL; on
PostgreSQL the connection uses the system tenant '*', so row-level security shows every row.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import engram


def raw_rows(db: engram.Engram, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read over a second connection to ``db``'s database."""
    url = db.settings.database_url
    if url is None:
        conn = sqlite3.connect(db.settings.db_path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url) as pg:
        pg.execute("SELECT set_config('engram.tenant', '*', false)")
        return pg.execute(sql.replace("?", "%s").encode(), params).fetchall()


def dump(db: engram.Engram) -> str:
    """Every row of every table, as text (to prove something is not stored)."""
    url = db.settings.database_url
    if url is None:
        conn = sqlite3.connect(db.settings.db_path)
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    tables = [
        name
        for (name,) in raw_rows(
            db, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    ]
    return "\n".join(
        repr(row) for table in tables for row in raw_rows(db, f"SELECT * FROM {table}")
    )
