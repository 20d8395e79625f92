"""PostgreSQL helpers: metadata filters compiled to jsonb SQL, migrations, pool set-up.

Filters mean exactly what they mean on SQLite (engram.store.sqlite.sql.compile_where): the
same values match, including numbers stored as text and SQLite's view of JSON booleans as
1 and 0, so a filtered search returns the same chunks on both backends.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ...errors import MigrationError, ServerUnavailable, StoreError
from ...search.filters import Condition, ascii_lower, equal_forms
from ..migrations import Migration, check_applied, load_migrations
from ..records import Where
from ..where import compile_conditions

log = logging.getLogger(__name__)

# Serialises migrations across processes (pg_advisory_xact_lock key: "engram" in ASCII).
MIGRATION_LOCK = 0x656E6772616D

# The longest numeric prefix of a string, as SQLite's CAST(text AS REAL) reads it.
_NUMBER_PREFIX = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"


def compile_where(where: Where | None, alias: str = "d") -> tuple[str, list[Any]]:
    """SQL condition over ``{alias}.metadata`` (jsonb) for a filter; ("TRUE", []) if empty."""
    return compile_conditions(
        where,
        lambda cond: _condition_sql(cond, alias),
        always="TRUE",
        # Measured against a semi-join on unnest(): = ANY was faster for a recall narrowed to
        # 500 and to 5,000 of 20,000 messages (128 vs 159 ms, 1.5 vs 2.5 s; both too slow).
        keys_sql=lambda keys: (f"{alias}.key = ANY(%s::text[])", [list(keys)]),
    )


def _condition_sql(cond: Condition, alias: str) -> tuple[str, list[Any]]:
    path = cond.field.split(".")
    value = f"({alias}.metadata #> %s::text[])"
    if cond.op == "$exists":
        # A key holding JSON null exists (as json_type says 'null' in SQLite).
        return f"{value} IS {'NOT ' if cond.value else ''}NULL", [path]
    if cond.op in ("$eq", "$ne", "$in"):
        values = cond.value if cond.op == "$in" else [cond.value]
        forms = [form for v in values for form in _jsonb_forms(v)]
        if cond.op == "$ne":
            # A missing field, or JSON null (SQL NULL in SQLite), is "not equal" to anything.
            return (
                f"({value} IS NULL OR {value} = 'null'::jsonb OR NOT {value} = ANY(%s::jsonb[]))",
                [path, path, path, forms],
            )
        return f"{value} = ANY(%s::jsonb[])", [path, forms]
    text = f"({value} #>> '{{}}')"
    if cond.op == "$contains":
        # ASCII letters folded only, as SQLite's lower() does.
        folded = f"translate({text}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
        return (
            f"(jsonb_typeof({value}) = 'string' AND strpos({folded}, %s) > 0)",
            [path, path, ascii_lower(cond.value)],
        )
    sym = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
    if isinstance(cond.value, str):
        # Strings compare bytewise (SQLite's BINARY collation), with strings only.
        return (
            f"(jsonb_typeof({value}) = 'string' AND {text} COLLATE \"C\" {sym} %s)",
            [path, path, cond.value],
        )
    # Numbers compare numerically, including numbers stored as text (CSV metadata is text):
    # a string counts when it has a digit and only number characters, read as its longest
    # numeric prefix (0 when there is none), like SQLite's CAST(... AS REAL).
    numeric = (
        f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN {text}::float8"
        f" WHEN jsonb_typeof({value}) = 'string' AND {text} ~ '[0-9]'"
        f" AND {text} !~ '[^0-9.eE+-]'"
        f" THEN coalesce(substring({text} FROM '{_NUMBER_PREFIX}')::float8, 0) END)"
    )
    return f"{numeric} {sym} %s::float8", [path] * 6 + [float(cond.value)]


def _jsonb_forms(value: Any) -> list[Jsonb]:
    """The JSON values SQLite's equality matches for ``value``: its json_extract() turns JSON
    numbers into numbers, strings into text and true/false into 1/0 (so a number 1 or 0
    also matches a boolean, and a boolean a number)."""
    out: list[Jsonb] = []
    for form in equal_forms(value):
        out.append(Jsonb(form))
        if not isinstance(form, str) and form in (0, 1):
            out.append(Jsonb(bool(form)))
    return out


def dumps(value: Any) -> str:
    """JSON text for a jsonb column (keys sorted, as the SQLite backend stores metadata)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# -- migrations ------------------------------------------------------------------------------
def apply_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply pending migrations, each in its own transaction under an advisory lock, so that
    processes starting together apply each exactly once. Returns the ones applied here."""
    applied_now: list[Migration] = []
    migrations = load_migrations("postgres")
    pending: list[Migration] = []
    while True:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, sha256 text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                rows = conn.execute("SELECT version, sha256 FROM schema_migrations").fetchall()
                pending = check_applied({int(v): str(s) for v, s in rows}, migrations)
                if not pending:
                    return applied_now
                migration = pending[0]
                conn.execute(migration.sql.encode())  # a whole script: no parameters allowed
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.sha256),
                )
        except psycopg.errors.InsufficientPrivilege as exc:
            which = f"{pending[0].version:04d}_{pending[0].name}" if pending else "(setup)"
            raise MigrationError(
                f"cannot apply PostgreSQL migration {which}: {exc}",
                hint="create the extension first as a superuser (CREATE EXTENSION vector) and"
                " run engram as the owner of the database",
            ) from exc
        except psycopg.OperationalError as exc:
            raise ServerUnavailable(f"lost the connection to PostgreSQL: {exc}") from exc
        except psycopg.Error as exc:
            raise MigrationError(f"a PostgreSQL migration failed: {exc}") from exc
        log.info("applied PostgreSQL migration %04d_%s", migration.version, migration.name)
        applied_now.append(migration)


def applied_migrations(conn: psycopg.Connection[Any]) -> list[tuple[int, str]]:
    """(version, name) of every migration recorded in the database."""
    try:
        with conn.transaction():
            rows = conn.execute(
                "SELECT version, name FROM schema_migrations ORDER BY version"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return []
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL error: {exc}") from exc
    return [(int(v), str(n)) for v, n in rows]
