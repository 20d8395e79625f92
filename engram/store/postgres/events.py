"""PostgreSQL implementation of the analytics-events part of the store contract (``events``).

A mixin of :class:`engram.store.postgres.PostgresStore`, returning exactly what
:mod:`engram.store.sqlite.events` returns: the same windows (``since <= created_at <
until``), days and months of the UTC timestamp, nearest-rank percentiles (``percentile_disc``
is nearest rank: the ``ceil(p·n)``-th smallest value), top queries ranked by count then by
query in byte order (``COLLATE "C"``, as SQLite compares text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidInput
from .. import rows as shared
from ..analytics_tables import erase_outbox
from ..event_insights import EventInsights
from ..records import EventWrite, QueryEvent
from .connection import DIALECT, SYSTEM, PostgresBase, _CursorSession

_WINDOW = "tenant = %s AND created_at >= %s AND created_at < %s"
_DAY = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_MONTH = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')"
TOP_QUERIES = 10
_INSERT_EVENTS = (
    "INSERT INTO events (tenant, kind, user_id, key_id, query, result_count, latency_ms, data,"
    " created_at) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::integer[], %s::double precision[], %s::jsonb[], %s::timestamptz[])"
)
_INSERT_OUTBOX = (
    "INSERT INTO event_outbox (tenant, user_id, payload, created_at, next_attempt_at)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[],"
    " %s::timestamptz[])"
)

# A bare year or year-month ("2024", "2024-03"): fromisoformat reads the rest.
_PARTIAL = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _timestamp(value: str, name: str) -> datetime:
    """An ISO 8601 bound or event time as an aware datetime (naive means UTC).

    The SQLite backend compares the strings; a prefix such as ``"2024"`` or ``"2024-03"``
    sorts before every timestamp it starts, i.e. it is the first instant of that year or
    month, which is what it becomes here."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _PARTIAL.match(text):
        text = (text + "-01-01")[:10]
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PostgresEventsMixin(PostgresBase, EventInsights):
    """Analytics events in PostgreSQL."""

    dialect = DIALECT
    outbox_lock = " FOR UPDATE SKIP LOCKED"
    epoch_day = "((({col}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
    collection_of = "(data ->> 'collection')"
    bytewise = ' COLLATE "C"'

    def _event_time(self, value: str, name: str) -> Any:
        return _timestamp(value, name)

    def record_events(self, events: Sequence[EventWrite], *, outbox: bool = False) -> None:
        if not events:
            return
        now = datetime.now(UTC)
        times = [_timestamp(e.created_at, "created_at") if e.created_at else now for e in events]
        rows = [shared.event_values(e, at) for e, at in zip(events, times)]
        # A batch from the recorder may hold several tenants' events: one transaction
        # either way, under the tenant itself when there is only one.
        tenants = {e.tenant for e in events}
        tenant = tenants.pop() if len(tenants) == 1 else SYSTEM
        # One INSERT of unnested arrays, not a statement per row: ≈ 4× the events/s. (Not
        # COPY: it refuses tables under row-level security.)
        with self._tx(tenant) as cur:
            cur.execute(_INSERT_EVENTS, [list(column) for column in zip(*rows)])
            if outbox:
                queued = [
                    (
                        *shared.outbox_values(
                            e, at, at.astimezone(UTC).isoformat(timespec="microseconds")
                        ),
                        now,
                    )
                    for e, at in zip(events, times)
                ]
                cur.execute(_INSERT_OUTBOX, [list(column) for column in zip(*queued)])

    def delete_user_events(self, *, tenant: str, user_id: str) -> int:
        with self._tx(tenant) as cur:
            cur.execute("DELETE FROM events WHERE tenant = %s AND user_id = %s", (tenant, user_id))
            deleted = int(cur.rowcount)
            erase_outbox(_CursorSession(cur), tenant, user_id)
            if deleted:
                cur.execute(
                    "INSERT INTO events (tenant, kind, created_at) VALUES (%s, 'erasure', now())",
                    (tenant,),
                )
            return deleted

    def suggest_events(self, tenant: str, *, after: int, limit: int) -> list[QueryEvent]:
        with self._tx(tenant) as cur:
            cur.execute(
                "SELECT id, CASE WHEN kind = 'search' THEN data->>'collection' END AS collection,"
                " CASE WHEN kind = 'search' THEN query END AS query FROM events"
                " WHERE id > %s AND tenant = %s AND (kind = 'erasure' OR (kind = 'search'"
                " AND result_count > 0 AND query IS NOT NULL AND data ? 'collection'))"
                " ORDER BY id LIMIT %s",
                (after, tenant, limit),
            )
            return [QueryEvent(r["id"], r["collection"], r["query"]) for r in cur.fetchall()]

    def event_stats(self, tenant: str, since: str, until: str) -> dict[str, Any]:
        window = (tenant, _timestamp(since, "since"), _timestamp(until, "until"))
        searches = f"{_WINDOW} AND kind = 'search'"
        users = f"{_WINDOW} AND user_id IS NOT NULL"
        with self._tx(tenant) as cur:
            cur.execute(
                f"SELECT kind, count(*) AS n FROM events WHERE {_WINDOW}"
                ' GROUP BY kind ORDER BY kind COLLATE "C"',
                window,
            )
            counts = {r["kind"]: r["n"] for r in cur.fetchall()}
            cur.execute(
                f"SELECT {_DAY} AS day, count(*) AS n FROM events WHERE {searches}"
                " GROUP BY 1 ORDER BY 1",
                window,
            )
            per_day = [{"date": r["day"], "count": r["n"]} for r in cur.fetchall()]
            cur.execute(
                "SELECT count(result_count) AS with_count,"
                " count(*) FILTER (WHERE result_count = 0) AS zero,"
                " count(latency_ms) AS timed,"
                " percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
                " percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95"
                f" FROM events WHERE {searches}",
                window,
            )
            agg = cur.fetchone()
            assert agg is not None
            cur.execute(
                f"SELECT query, count(*) AS n FROM events WHERE {searches}"
                ' AND query IS NOT NULL GROUP BY query ORDER BY n DESC, query COLLATE "C"'
                " LIMIT %s",
                (*window, TOP_QUERIES),
            )
            top = [{"query": r["query"], "count": r["n"]} for r in cur.fetchall()]
            cur.execute(
                f"SELECT query, count(*) AS n FROM events WHERE {searches} AND result_count = 0"
                ' AND query IS NOT NULL GROUP BY query ORDER BY n DESC, query COLLATE "C"'
                " LIMIT %s",
                (*window, TOP_QUERIES),
            )
            zero_top = [{"query": r["query"], "count": r["n"]} for r in cur.fetchall()]
            cur.execute(
                "SELECT data->>'rating' AS rating, count(*) AS n FROM events"
                f" WHERE {_WINDOW} AND kind = 'feedback' GROUP BY 1",
                window,
            )
            ratings = [(r["rating"], r["n"]) for r in cur.fetchall()]
            cur.execute(
                f"SELECT {_DAY} AS day, count(DISTINCT user_id) AS n FROM events"
                f" WHERE {users} GROUP BY 1 ORDER BY 1",
                window,
            )
            daily = [{"date": r["day"], "count": r["n"]} for r in cur.fetchall()]
            cur.execute(
                f"SELECT {_MONTH} AS month, count(DISTINCT user_id) AS n FROM events"
                f" WHERE {users} GROUP BY 1 ORDER BY 1",
                window,
            )
            monthly = [{"month": r["month"], "count": r["n"]} for r in cur.fetchall()]
            cur.execute(f"SELECT count(DISTINCT user_id) AS n FROM events WHERE {users}", window)
            total_users = cur.fetchone()
            assert total_users is not None
        with_count, zero = agg["with_count"], agg["zero"]
        return {
            "counts": counts,
            "queries_per_day": per_day,
            "search_latency_ms": {"count": agg["timed"], "p50": agg["p50"], "p95": agg["p95"]},
            "zero_result_rate": zero / with_count if with_count else None,
            "top_queries": top,
            "top_zero_result_queries": zero_top,
            "feedback": shared.feedback_counts(ratings),
            "active_users": {
                "total": total_users["n"],
                "daily": daily,
                "monthly": monthly,
            },
        }
