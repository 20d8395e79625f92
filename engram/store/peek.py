"""What a one-shot command can read from an embedded database before opening it.

Read-only, standard library only (no engine, no migrations), and never an error: a missing
file, a database being written or an older schema all read as "unknown".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def collection_model(db_path: Path, name: str, *, tenant: str = "default") -> str | None:
    """The model id collection ``name`` of ``tenant`` was created with, if it can be read."""
    if not db_path.is_file():
        return None
    try:
        uri = db_path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=0.5)
        try:
            row = conn.execute(
                "SELECT model_id FROM collections WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
        finally:
            conn.close()
    except (sqlite3.Error, OSError, ValueError):
        return None
    return str(row[0]) if row else None
