"""SQLite implementation of the operations part of the store contract: analytics events
(``events``) and the job-queue depth read by the metrics endpoint.

A mixin of :class:`engram.store.sqlite.SQLiteStore`, sharing its connection, write lock and
error translation. Statistics are computed in SQL over one tenant's events in a time window
(the ``events_tenant_kind_time`` index serves every per-kind query); percentiles are
nearest-rank, read with ``ORDER BY ... LIMIT 1 OFFSET`` so no column is loaded into Python.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .. import rows as shared
from ..analytics_tables import erase_outbox, write_outbox
from ..event_insights import EventInsights
from ..records import EventWrite, QueryEvent
from .session import DIALECT, SQLiteSessions, _Writing
from .sql import WriteLock, translate

_WINDOW = "tenant = ? AND created_at >= ? AND created_at < ?"
# Written where a user's events are deleted: suggestions read from events start over.
ERASURE_EVENT = "INSERT INTO events (tenant, kind, created_at) VALUES (?, 'erasure', ?)"
TOP_QUERIES = 10


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SQLiteEventsMixin(SQLiteSessions, EventInsights):
    """Analytics events in the store's SQLite file."""

    dialect = DIALECT
    outbox_lock = ""
    # A timestamp column's UTC day as a number of days since 1970-01-01 (julianday of a
    # date is n.5), the collection property of an event's data, text ordered bytewise.
    epoch_day = "CAST(julianday(substr({col}, 1, 10)) - 2440587.5 AS INTEGER)"
    collection_of = "json_extract(data, '$.collection')"
    bytewise = ""

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    _write_lock: WriteLock

    def record_events(self, events: Sequence[EventWrite], *, outbox: bool = False) -> None:
        if not events:
            return
        now = _now()
        rows = [shared.event_values(e, e.created_at or now) for e in events]
        with translate(), self._write_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO events (tenant, kind, user_id, key_id, query, result_count,"
                    " latency_ms, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if outbox:
                    queued = [
                        shared.outbox_values(e, e.created_at or now, e.created_at or now)
                        for e in events
                    ]
                    write_outbox(_Writing(self._conn), queued, now)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def delete_user_events(self, *, tenant: str, user_id: str) -> int:
        with self._transaction() as conn:
            cur = conn.execute(
                "DELETE FROM events WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            )
            if cur.rowcount:
                conn.execute(ERASURE_EVENT, (tenant, _now()))
            erase_outbox(_Writing(conn), tenant, user_id)
        return int(cur.rowcount)

    def suggest_events(self, tenant: str, *, after: int, limit: int) -> list[QueryEvent]:
        # "+tenant": a range of the primary key from ``after`` (the events since the last
        # call: a few), not the tenant's index, which read all its events and sorted them
        # (0.3 ms at 3,000 events, growing with them; 0.01 ms this way).
        rows = self._read(
            "SELECT id, CASE WHEN kind = 'search' THEN json_extract(data, '$.collection') END,"
            " CASE WHEN kind = 'search' THEN query END FROM events"
            " WHERE id > ? AND +tenant = ? AND (kind = 'erasure' OR (kind = 'search'"
            " AND result_count > 0 AND query IS NOT NULL"
            " AND json_extract(data, '$.collection') IS NOT NULL)) ORDER BY id LIMIT ?",
            (after, tenant, limit),
        )
        return [QueryEvent(int(i), c, q) for i, c, q in rows]

    def event_stats(self, tenant: str, since: str, until: str) -> dict[str, Any]:
        window = (tenant, since, until)
        counts = dict(
            self._read(f"SELECT kind, count(*) FROM events WHERE {_WINDOW} GROUP BY kind", window)
        )
        searches = f"{_WINDOW} AND kind = 'search'"
        per_day = self._read(
            "SELECT substr(created_at, 1, 10), count(*) FROM events"
            f" WHERE {searches} GROUP BY 1 ORDER BY 1",
            window,
        )
        with_count, zero = self._read(
            "SELECT count(result_count), coalesce(sum(result_count = 0), 0) FROM events"
            f" WHERE {searches}",
            window,
        )[0]
        top = self._read(
            f"SELECT query, count(*) AS n FROM events WHERE {searches} AND query IS NOT NULL"
            " GROUP BY query ORDER BY n DESC, query LIMIT ?",
            (*window, TOP_QUERIES),
        )
        zero_top = self._read(
            f"SELECT query, count(*) AS n FROM events WHERE {searches} AND result_count = 0"
            " AND query IS NOT NULL GROUP BY query ORDER BY n DESC, query LIMIT ?",
            (*window, TOP_QUERIES),
        )
        ratings = self._read(
            "SELECT json_extract(data, '$.rating'), count(*) FROM events"
            f" WHERE {_WINDOW} AND kind = 'feedback' GROUP BY 1",
            window,
        )
        users = f"{_WINDOW} AND user_id IS NOT NULL"
        daily = self._read(
            "SELECT substr(created_at, 1, 10), count(DISTINCT user_id) FROM events"
            f" WHERE {users} GROUP BY 1 ORDER BY 1",
            window,
        )
        monthly = self._read(
            "SELECT substr(created_at, 1, 7), count(DISTINCT user_id) FROM events"
            f" WHERE {users} GROUP BY 1 ORDER BY 1",
            window,
        )
        total_users = self._read(
            f"SELECT count(DISTINCT user_id) FROM events WHERE {users}", window
        )[0][0]
        return {
            "counts": counts,
            "queries_per_day": [{"date": d, "count": n} for d, n in per_day],
            "search_latency_ms": self._latency_percentiles(searches, window),
            "zero_result_rate": zero / with_count if with_count else None,
            "top_queries": [{"query": q, "count": n} for q, n in top],
            "top_zero_result_queries": [{"query": q, "count": n} for q, n in zero_top],
            "feedback": shared.feedback_counts(ratings),
            "active_users": {
                "total": total_users,
                "daily": [{"date": d, "count": n} for d, n in daily],
                "monthly": [{"month": m, "count": n} for m, n in monthly],
            },
        }

    def _latency_percentiles(
        self, condition: str, window: tuple[str, str, str]
    ) -> dict[str, float | int | None]:
        where = f"{condition} AND latency_ms IS NOT NULL"
        n = self._read(f"SELECT count(*) FROM events WHERE {where}", window)[0][0]
        out: dict[str, float | int | None] = {"count": n}
        for name, p in (("p50", 0.50), ("p95", 0.95)):
            if not n:
                out[name] = None
                continue
            rank = max(1, math.ceil(p * n))  # nearest rank, 1-based
            out[name] = self._read(
                f"SELECT latency_ms FROM events WHERE {where} ORDER BY latency_ms LIMIT 1 OFFSET ?",
                (*window, rank - 1),
            )[0][0]
        return out
