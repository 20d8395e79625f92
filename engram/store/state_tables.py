"""Agent state (the ``state`` table), written once for both backends over a
:class:`~engram.store.session.Session` and a :class:`~engram.store.session.Dialect`.

Compare-and-set is one statement, so it holds with many writers in many processes: a create
is an ``INSERT … ON CONFLICT DO UPDATE … WHERE`` whose condition lets through only what the
caller expected (nothing, or an expired item, for ``expect=0``; anything for ``expect=None``),
a replace of version n is an ``UPDATE … WHERE version = n``. A statement that changes no row
lost the race, and says so (VersionConflict). Expired items stay in the table, invisible,
until :meth:`StateTables.purge_state` deletes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..state.types import StateItem, VersionConflict, user_home
from .contract import StateStore
from .rows import required, required_row
from .session import ALL_TENANTS, Dialect, Session, Tables

_COLS = "namespace, key, value, version, created_at, updated_at, expires_at"
_ITEM = "tenant = ? AND namespace = ? AND key = ?"


def namespace_prefix(prefix: str) -> tuple[str, list[Any]]:
    """SQL selecting ``prefix`` and the namespaces below it. In byte order "/" sorts just
    before "0", so they all lie in [prefix, prefix + "0"): one range of the primary key's
    index; the second condition drops the neighbours in that range ("a/b-c", "a/b.c")."""
    if not prefix:
        return "TRUE", []
    return "namespace >= ? AND namespace < ? AND (namespace = ? OR namespace >= ?)", [
        prefix,
        prefix + "0",
        prefix,
        prefix + "/",
    ]


def user_state(s: Session, dialect: Dialect, tenant: str, user_id: str) -> list[dict[str, Any]]:
    """The live state items under ``user_id``'s namespace (user/<id>), JSON-able, for the
    user's export."""
    cond, params = namespace_prefix(user_home(user_id))
    rows = s.rows(
        f"SELECT {_COLS} FROM state WHERE tenant = ? AND {cond}"
        " AND (expires_at IS NULL OR expires_at > ?) ORDER BY namespace, key",
        (tenant, *params, dialect.time_value(datetime.now(UTC))),
    )
    return [_item(r, dialect).to_dict() for r in rows]


def _item(r: tuple[Any, ...] | list[Any], dialect: Dialect) -> StateItem:
    d = dialect.decoding
    return StateItem(
        namespace=tuple(r[0].split("/")),
        key=r[1],
        value=d.json(r[2]),
        version=int(r[3]),
        created_at=required(d.time(r[4], False)),
        updated_at=required(d.time(r[5], False)),
        expires_at=d.time(r[6], False),
    )


class StateTables(Tables, StateStore):
    """Agent state in a backend's ``state`` table."""

    def _item(self, r: tuple[Any, ...] | list[Any]) -> StateItem:
        return _item(r, self.dialect)

    def _live(self, alias: str = "") -> str:
        """SQL: the row has not expired at the ``?`` instant that follows."""
        col = f"{alias}expires_at"
        return f"({col} IS NULL OR {col} > ?)"

    def put_state(
        self,
        tenant: str,
        namespace: str,
        key: str,
        value: str,
        *,
        expect: int | None,
        expires_at: datetime | None,
        embedding: tuple[str, np.ndarray] | None,
        ttl: float | None = None,
    ) -> StateItem:
        d = self.dialect
        now = d.time_value(datetime.now(UTC))
        expiry = d.time_value(expires_at) if expires_at is not None else None
        model_id, vector = embedding if embedding else (None, None)
        vec = d.vector_value(np.asarray(vector, dtype=np.float32)) if vector is not None else None
        with self._session(tenant, write=True) as s:
            if expect is not None and expect > 0:
                row = s.row(
                    f"UPDATE state SET value = {d.json_mark}, version = version + 1,"
                    f" updated_at = ?, expires_at = ?, ttl_seconds = ?, embedding = {d.vector_mark},"
                    f" model_id = ? WHERE {_ITEM} AND version = ? AND {self._live()}"
                    f" RETURNING {_COLS}",
                    (value, now, expiry, ttl, vec, model_id, tenant, namespace, key, expect, now),
                )
            else:
                live = self._live("state.")
                cas = "TRUE" if expect is None else f"NOT {live}"
                row = s.row(
                    "INSERT INTO state (tenant, namespace, key, value, version, created_at,"
                    " updated_at, expires_at, ttl_seconds, embedding, model_id)"
                    f" VALUES (?, ?, ?, {d.json_mark}, 1, ?, ?, ?, ?, {d.vector_mark}, ?)"
                    " ON CONFLICT (tenant, namespace, key) DO UPDATE SET value = excluded.value,"
                    f" version = CASE WHEN {live} THEN state.version + 1 ELSE 1 END,"
                    f" created_at = CASE WHEN {live} THEN state.created_at"
                    " ELSE excluded.created_at END,"
                    " updated_at = excluded.updated_at, expires_at = excluded.expires_at,"
                    " ttl_seconds = excluded.ttl_seconds,"
                    " embedding = excluded.embedding, model_id = excluded.model_id"
                    f" WHERE {cas} RETURNING {_COLS}",
                    (tenant, namespace, key, value, now, now, expiry, ttl, vec, model_id, now, now)
                    + ((now,) if expect is not None else ()),
                )
            if row is None:
                found = s.row(
                    f"SELECT version FROM state WHERE {_ITEM} AND {self._live()}",
                    (
                        tenant,
                        namespace,
                        key,
                        now,
                    ),
                )
                current = int(found[0]) if found else 0
                raise VersionConflict(
                    f"{namespace}/{key} is at version {current}, not {expect}",
                    hint="read it again and retry with its current version (If-Match)",
                    version=current,
                )
        return self._item(required_row(row))

    def get_state(self, tenant: str, namespace: str, key: str) -> StateItem | None:
        now = self.dialect.time_value(datetime.now(UTC))
        with self._session(tenant) as s:
            row = s.row(
                f"SELECT {_COLS} FROM state WHERE {_ITEM} AND {self._live()}",
                (tenant, namespace, key, now),
            )
        return self._item(row) if row else None

    def refresh_state(
        self, tenant: str, items: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], datetime]:
        d = self.dialect
        moment = datetime.now(UTC)
        now = d.time_value(moment)
        fresh: dict[tuple[str, str], datetime] = {}
        with self._session(tenant, write=True) as s:
            for namespace, key in items:
                row = s.row(
                    f"SELECT ttl_seconds FROM state WHERE {_ITEM} AND ttl_seconds IS NOT NULL"
                    f" AND {self._live()}",
                    (tenant, namespace, key, now),
                )
                if row is None:
                    continue
                expiry = moment + timedelta(seconds=float(row[0]))
                s.run(
                    f"UPDATE state SET expires_at = ? WHERE {_ITEM}",
                    (d.time_value(expiry), tenant, namespace, key),
                )
                fresh[(namespace, key)] = expiry
        return fresh

    def delete_state(
        self, tenant: str, namespace: str, key: str, *, expect: int | None = None
    ) -> bool:
        d = self.dialect
        now = d.time_value(datetime.now(UTC))
        with self._session(tenant, write=True) as s:
            found = s.row(
                f"SELECT version FROM state WHERE {_ITEM} AND {self._live()}{d.lock_rows}",
                (tenant, namespace, key, now),
            )
            current = int(found[0]) if found else 0
            if expect is not None and expect != current:
                raise VersionConflict(
                    f"{namespace}/{key} is at version {current}, not {expect}",
                    hint="read it again and retry with its current version (If-Match)",
                    version=current,
                )
            s.run(f"DELETE FROM state WHERE {_ITEM}", (tenant, namespace, key))
        return found is not None

    def scan_state(
        self, tenant: str, prefix: str, *, model_id: str | None = None
    ) -> list[tuple[StateItem, np.ndarray | None]]:
        d = self.dialect
        cond, params = namespace_prefix(prefix)
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT {_COLS}, embedding, model_id FROM state"
                f" WHERE tenant = ? AND {self._live()} AND {cond} ORDER BY namespace, key",
                (tenant, d.time_value(datetime.now(UTC)), *params),
            )
        return [
            (
                self._item(r),
                d.vector_from(r[7]) if model_id and r[7] is not None and r[8] == model_id else None,
            )
            for r in found
        ]

    def state_namespaces(self, tenant: str, prefix: str) -> list[str]:
        cond, params = namespace_prefix(prefix)
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT DISTINCT namespace FROM state WHERE tenant = ? AND {self._live()}"
                f" AND {cond} ORDER BY namespace",
                (tenant, self.dialect.time_value(datetime.now(UTC)), *params),
            )
        return [r[0] for r in found]

    def purge_state(self) -> int:
        with self._session(ALL_TENANTS, write=True) as s:
            return s.run(
                "DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (self.dialect.time_value(datetime.now(UTC)),),
            )
