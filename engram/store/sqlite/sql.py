"""SQLite helpers: connection set-up, error translation, filter compilation."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...errors import EngramError, StoreError, StoreLocked
from ...search.filters import Condition, ascii_lower, equal_forms
from ..records import ChunkWrite, Where
from ..rows import Decoding
from ..translation import translating
from ..versions import heading_json
from ..where import compile_conditions

# SQLite hands over JSON columns as text and timestamps as the ISO text engram wrote.
DECODING = Decoding(json=json.loads, time=lambda value, seconds: value)


def translate() -> contextlib.AbstractContextManager[None]:
    """The one boundary where sqlite3 errors become engram errors."""
    return translating(_read_error)


def _read_error(exc: Exception) -> EngramError | None:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreLocked(
                f"the database is locked by another process: {text}",
                hint="wait for the other engram process to finish, or raise busy_timeout",
            )
        return StoreError(f"SQLite error: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"SQLite integrity error: {exc}")
    if isinstance(exc, sqlite3.DatabaseError):
        text = str(exc)
        if any(s in text for s in ("malformed", "not a database", "disk image", "encrypted")):
            return StoreError(
                f"the database file is unreadable: {text}",
                hint="restore it from a backup or point --data-dir elsewhere",
            )
        # Anything else says nothing about the file: do not send people to their backups.
        return StoreError(f"SQLite error: {text}", hint="retry; report it if it persists")
    return None


def _use_wal(conn: sqlite3.Connection, budget: float = 30.0) -> None:
    """Put the database in WAL mode (a property of the file: once done, nothing to do).
    Converting needs the file to itself, and SQLite does not run the busy handler for it:
    when processes open a new data directory at once, the conversion can fail at once
    ("database is locked") or return the old mode. Retry with backoff within ``budget``
    seconds, and accept that another process finished it meanwhile."""
    deadline = time.monotonic() + budget
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if mode == "wal":
                return
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower()
            if mode == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("database is locked (converting it to WAL mode)")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


# The most of the database file a reader maps; beyond it, reads go through its page cache.
READER_MMAP_BYTES = 1 << 30


def connect(path: Path | str, *, reader: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode: one writer and many readers at once; a reader sees a
    consistent snapshot, so a search never sees half of a document update. A ``reader``
    connection refuses writes (``query_only``)."""
    with translate():
        conn = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if reader:
            conn.execute("PRAGMA query_only = ON")
        elif str(path) != ":memory:":
            _use_wal(conn)
        # NORMAL in WAL mode survives application crashes (SIGKILL) and loses at most the
        # last transactions on power loss, for a large write-speed gain over FULL.
        conn.execute("PRAGMA synchronous = NORMAL")
        if reader:
            # Readers are one per thread (dozens in a server, coming and going with the
            # thread pool): they read the file through one shared memory map instead of
            # each filling a private page cache, so a server's memory does not grow with
            # its threads and stays flat once the file is mapped.
            conn.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
            conn.execute("PRAGMA cache_size = -2048")
        else:
            conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA temp_store = MEMORY")
    return conn


class WriteLock:
    """The store's in-process write lock (re-entrant) that knows whether the calling thread
    holds it: while it does, the thread's reads go through the writer's connection."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner = threading.local()

    def held(self) -> bool:
        return getattr(self._owner, "depth", 0) > 0

    def __enter__(self) -> WriteLock:
        self._lock.acquire()
        self._owner.depth = getattr(self._owner, "depth", 0) + 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.depth -= 1
        self._lock.release()


def _json_path(field: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in field.split("."))


def compile_where(where: Where | None, alias: str = "d") -> tuple[str, list[Any]]:
    """SQL condition over ``{alias}.metadata`` (JSON) for a filter; ("1", []) when empty."""
    return compile_conditions(
        where,
        lambda cond: _condition_sql(cond, alias),
        always="1",
        # One JSON parameter, however many keys (SQLite caps the number of parameters).
        keys_sql=lambda keys: (
            f"{alias}.key IN (SELECT value FROM json_each(?))",
            [json.dumps(list(keys))],
        ),
    )


def compile_listing(where: Where | None, contains: str | None) -> tuple[str, list[Any]]:
    """The condition of a document listing: the metadata filter and, with ``contains``, a
    key or title containing that text (ASCII letters' case ignored, as ``$contains``)."""
    cond, params = compile_where(where)
    if contains:
        cond += " AND (instr(lower(d.key), ?) > 0 OR instr(lower(d.title), ?) > 0)"
        params += [ascii_lower(contains), ascii_lower(contains)]
    return cond, params


def _condition_sql(cond: Condition, alias: str) -> tuple[str, list[Any]]:
    expr = f"json_extract({alias}.metadata, ?)"
    path = _json_path(cond.field)
    if cond.op == "$exists":
        test = "IS NOT NULL" if cond.value else "IS NULL"
        return f"json_type({alias}.metadata, ?) {test}", [path]
    if cond.op in ("$eq", "$ne"):
        values = equal_forms(cond.value)
        marks = ",".join("?" * len(values))
        neg = "NOT " if cond.op == "$ne" else ""
        # A missing field is "not equal" to anything.
        if cond.op == "$ne":
            return f"({expr} IS NULL OR {expr} {neg}IN ({marks}))", [path, path, *values]
        return f"{expr} IN ({marks})", [path, *values]
    if cond.op == "$contains":
        return f"(json_type({alias}.metadata, ?) = 'text' AND instr(lower({expr}), ?) > 0)", [
            path,
            path,
            ascii_lower(cond.value),
        ]
    if cond.op == "$in":
        values = [form for v in cond.value for form in equal_forms(v)]
        return f"{expr} IN ({','.join('?' * len(values))})", [path, *values]
    sym = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
    if isinstance(cond.value, str):
        return f"(json_type({alias}.metadata, ?) = 'text' AND {expr} {sym} ?)", [
            path,
            path,
            cond.value,
        ]
    # Numbers compare numerically, including numbers stored as text (CSV metadata is text):
    # a text value counts when it looks like a number, so "2024" >= 2020 but "n/a" never does.
    numeric = (
        f"(CASE WHEN json_type({alias}.metadata, ?) IN ('integer', 'real') THEN {expr}"
        f" WHEN json_type({alias}.metadata, ?) = 'text' AND {expr} GLOB '*[0-9]*'"
        f" AND NOT {expr} GLOB '*[^0-9.eE+-]*' THEN CAST({expr} AS REAL) END)"
    )
    return f"{numeric} {sym} ?", [path] * 6 + [cond.value]


# A chunk row: its id (NULL: the next one), then chunk_values()'s.
INSERT_CHUNK = (
    "INSERT INTO chunks (id, collection_id, document_id, version, ordinal, text, start_char,"
    " end_char, page, heading_path, text_hash, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def chunk_values(cid: int, doc_id: int, version: int, chunk: ChunkWrite) -> tuple[Any, ...]:
    """The columns of a chunk's row after its id (see INSERT_CHUNK)."""
    return (
        cid,
        doc_id,
        version,
        chunk.ordinal,
        chunk.text,
        chunk.start,
        chunk.end,
        chunk.page,
        heading_json(chunk.heading_path),
        chunk.text_hash,
        chunk.terms,
    )


def insert_chunks(
    conn: sqlite3.Connection,
    cid: int,
    doc_id: int,
    version: int,
    chunks: Sequence[ChunkWrite],
) -> None:
    """Insert one version's chunks and log each for the derived indexes to replay."""
    rows = []
    for chunk in chunks:
        values = (None, *chunk_values(cid, doc_id, version, chunk))
        chunk_id = conn.execute(INSERT_CHUNK, values).lastrowid
        assert chunk_id is not None  # lastrowid of the INSERT above
        rows.append((cid, chunk_id))
    conn.executemany("INSERT INTO chunk_log (collection_id, chunk_id, op) VALUES (?, ?, 1)", rows)


def next_chunk_id(conn: sqlite3.Connection) -> int:
    """The id the next chunk inserted gets (chunks' AUTOINCREMENT: above every id ever used),
    for a writer holding the write lock that numbers a batch of chunks itself."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM chunks), 0),"
        " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'chunks'), 0))"
    ).fetchone()
    return int(row[0]) + 1


# Parameters per IN (...) list, well below SQLite's limit.
_BATCH = 500


def batches(seq: Sequence[Any], size: int = _BATCH) -> Iterable[Sequence[Any]]:
    """``seq`` in slices of at most ``size``, for IN (...) lists."""
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
