"""Retention, cohorts and breakdowns of a tenant's events (``event_insights``), computed in
SQL written once for both backends; each backend names the three expressions that differ
(:attr:`EventInsights.epoch_day`, :attr:`~EventInsights.collection_of`,
:attr:`~EventInsights.bytewise`).

Definitions, all in UTC days, for a window ``since <= created_at < until``:

- a user's *first-seen* time is their earliest event of the tenant before ``until`` (however
  long ago); the *cohort* of the window is the users first seen inside it;
- *day-N retention*: of the cohort users whose day N (first-seen day + N) has begun before
  ``until`` (``eligible``), those with an event on exactly that day (``retained``);
- *cohorts by first-seen week* (weeks start on Monday): per week, how many users were first
  seen in it (``users``) and how many of them had an event in that week and each week after
  it, up to the window's last (``active``: week 0 first, so ``active[0] == users``);
- *per collection*: events carrying a ``collection`` property, with searches, the zero-result
  rate of those searches, chats and distinct users; *per user*: the most active users with
  their searches, chats and first and last event of the window.

Only aggregates leave the database: the retention query returns one row per (first-seen
day, N), the cohort query one per (week, week offset).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from ..errors import InvalidInput
from .analytics_tables import AnalyticsTables

RETENTION_DAYS = (1, 7, 30)
TOP_COLLECTIONS = 50
TOP_USERS = 20
EPOCH = date(1970, 1, 1)
_PARTIAL = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")

# Each user's days with events in the window, with their first-seen day, for the users first
# seen in it: one pass over the tenant's events before ``until`` in (user, time) order (the
# events_user_time index), the first-seen time a window minimum over the user's rows.
_ACTIVE = (
    "WITH marked AS (SELECT user_id, {day} AS d,"
    " min(created_at) OVER (PARTITION BY user_id) AS first_at FROM events"
    " WHERE tenant = ? AND user_id IS NOT NULL AND created_at < ?),"
    " active AS (SELECT DISTINCT user_id, {first_day} AS d0, d FROM marked"
    " WHERE first_at >= ?)"
)


def parse_bound(value: str, name: str) -> datetime:
    """An ISO 8601 bound as an aware datetime (naive: UTC). A bare year or year-month
    ("2024", "2024-03") is the first instant of it, as the SQLite backend's text comparison
    reads it."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _PARTIAL.match(text):
        text = (text + "-01-01")[:10]
    try:
        parsed = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be an ISO 8601 timestamp, not {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch_day(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - EPOCH).days


def _day(number: int) -> str:
    return (EPOCH + timedelta(days=number)).isoformat()


class EventInsights(AnalyticsTables):
    """Retention, cohorts and per-collection / per-user breakdowns of a tenant's events."""

    # SQL of a timestamp column's UTC day as days since 1970-01-01 ("{col}": the column).
    epoch_day: ClassVar[str]
    # SQL of an event's ``collection`` property (text, or NULL).
    collection_of: ClassVar[str]
    # Appended to a text ORDER BY to compare bytewise, as SQLite does (PostgreSQL: COLLATE "C").
    bytewise: ClassVar[str]

    def event_insights(self, tenant: str, since: str, until: str) -> dict[str, Any]:
        """``retention``, ``cohorts``, ``by_collection`` and ``by_user`` of the tenant's
        events with ``since <= created_at < until`` (see the module's docstring)."""
        start, end = parse_bound(since, "since"), parse_bound(until, "until")
        first_day, last_day = _epoch_day(start), _epoch_day(end - timedelta(microseconds=1))
        bounds = (self._event_time(since, "since"), self._event_time(until, "until"))
        window = (tenant, bounds[1], bounds[0])
        active = _ACTIVE.format(
            first_day=self.epoch_day.format(col="first_at"),
            day=self.epoch_day.format(col="created_at"),
        )
        offsets = ", ".join(str(n) for n in (0, *RETENTION_DAYS))
        with self._session(tenant, snapshot=True) as s:
            daily = s.rows(
                f"{active} SELECT d0, d - d0 AS n, count(*) AS users FROM active"
                f" WHERE d - d0 IN ({offsets}) GROUP BY d0, d - d0",
                window,
            )
            weekly = s.rows(
                f"{active} SELECT (d0 + 3) / 7 AS w0, (d + 3) / 7 - (d0 + 3) / 7 AS k,"
                " count(DISTINCT user_id) AS users FROM active"
                " GROUP BY (d0 + 3) / 7, (d + 3) / 7 - (d0 + 3) / 7",
                window,
            )
            collections = self._by_collection(s, (tenant, *bounds))
            users = self._by_user(s, (tenant, *bounds))
        if last_day < first_day:
            daily, weekly = [], []
        return {
            "retention": _retention(daily, last_day),
            "cohorts": _cohorts(weekly, last_day),
            "by_collection": collections,
            "by_user": users,
        }

    def _by_collection(self, s: Any, window: tuple[Any, ...]) -> list[dict[str, Any]]:
        coll = self.collection_of
        found = s.rows(
            f"SELECT {coll} AS collection, count(*) AS events,"
            " sum(CASE WHEN kind = 'search' THEN 1 ELSE 0 END) AS searches,"
            " sum(CASE WHEN kind = 'search' AND result_count = 0 THEN 1 ELSE 0 END) AS zero,"
            " sum(CASE WHEN kind = 'chat' THEN 1 ELSE 0 END) AS chats,"
            " count(DISTINCT user_id) AS users FROM events"
            f" WHERE tenant = ? AND created_at >= ? AND created_at < ? AND {coll} IS NOT NULL"
            f" GROUP BY {coll} ORDER BY count(*) DESC, {coll}{self.bytewise} LIMIT ?",
            (*window, TOP_COLLECTIONS),
        )
        return [
            {
                "collection": r[0],
                "events": int(r[1]),
                "searches": int(r[2]),
                "zero_result_rate": int(r[3]) / int(r[2]) if r[2] else None,
                "chats": int(r[4]),
                "users": int(r[5]),
            }
            for r in found
        ]

    def _by_user(self, s: Any, window: tuple[Any, ...]) -> list[dict[str, Any]]:
        found = s.rows(
            "SELECT user_id, count(*) AS events,"
            " sum(CASE WHEN kind = 'search' THEN 1 ELSE 0 END) AS searches,"
            " sum(CASE WHEN kind = 'chat' THEN 1 ELSE 0 END) AS chats,"
            " min(created_at) AS first_at, max(created_at) AS last_at FROM events"
            " WHERE tenant = ? AND created_at >= ? AND created_at < ? AND user_id IS NOT NULL"
            f" GROUP BY user_id ORDER BY count(*) DESC, user_id{self.bytewise} LIMIT ?",
            (*window, TOP_USERS),
        )
        time = self.dialect.decoding.time
        return [
            {
                "user_id": r[0],
                "events": int(r[1]),
                "searches": int(r[2]),
                "chats": int(r[3]),
                "first_seen": time(r[4], False),
                "last_seen": time(r[5], False),
            }
            for r in found
        ]


def _retention(daily: list[tuple[Any, ...]], last_day: int) -> list[dict[str, Any]]:
    sizes: dict[int, int] = {}
    retained = dict.fromkeys(RETENTION_DAYS, 0)
    for d0, n, users in daily:
        if int(n) == 0:
            sizes[int(d0)] = int(users)
        else:
            retained[int(n)] += int(users)
    out = []
    for n in RETENTION_DAYS:
        eligible = sum(size for d0, size in sizes.items() if d0 + n <= last_day)
        out.append(
            {
                "day": n,
                "eligible": eligible,
                "retained": retained[n],
                "rate": retained[n] / eligible if eligible else None,
            }
        )
    return out


def _cohorts(weekly: list[tuple[Any, ...]], last_day: int) -> list[dict[str, Any]]:
    last_week = (last_day + 3) // 7
    active: dict[int, dict[int, int]] = {}
    for w0, k, users in weekly:
        active.setdefault(int(w0), {})[int(k)] = int(users)
    return [
        {
            "week": _day(w0 * 7 - 3),
            "users": counts.get(0, 0),
            "active": [counts.get(k, 0) for k in range(last_week - w0 + 1)],
        }
        for w0, counts in sorted(active.items())
    ]
