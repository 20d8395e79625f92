"""The Dashboard (``/dashboard``, admin scope): how the tenant's search and chat are used over
the last 7, 30 or 90 days — active users, searches per day, latency, zero-result searches,
the most frequent queries (found and not found) and the thumbs up and down on answers.

The numbers are those of ``GET /v1/admin/stats`` and ``engram stats``: the store's
``event_stats`` (indexed, aggregate-only queries over the tenant's events in the window),
without the retention and cohort queries the page does not show. Days without searches are
filled in here, so a chart's x axis is the whole period.

Those aggregates read every event of the window (about 0.25 s for 10,000 events on SQLite on
a busy 2-core machine), far over a page's budget: each process keeps a tenant's figures for
:data:`CACHE_SECONDS`, so only the first view of a period in that time pays for them, and
the page says when they were computed.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ...analytics.service import window
from ...engine import Engram
from ...errors import InvalidInput
from ...server.deps import DB
from ..auth import Caller, WebCaller, require
from ..charts import bar_chart, line_chart
from ..render import WebRoute, number, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PERIODS = (7, 30, 90)
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256

_Cache = dict[tuple[str, int], tuple[float, str, str, dict[str, Any]]]
_create_lock = threading.Lock()


def _cache_of(request: Request) -> tuple[_Cache, threading.Lock]:
    """The application's cache of figures: (tenant, days) → (when computed, monotonic;
    since; until; event_stats), and its lock. One per application, as its data."""
    state = request.app.state
    with _create_lock:
        if not hasattr(state, "web_dashboard_cache"):
            state.web_dashboard_cache = ({}, threading.Lock())
    cache: tuple[_Cache, threading.Lock] = state.web_dashboard_cache
    return cache


def usage(request: Request, db: Engram, tenant: str, days: int) -> tuple[str, str, dict[str, Any]]:
    """(since, until, event_stats) of the tenant's last ``days`` days: computed at most once
    per :data:`CACHE_SECONDS` per process."""
    key = (tenant, days)
    now = time.monotonic()
    cache, lock = _cache_of(request)
    with lock:
        found = cache.get(key)
    if found is not None and now - found[0] < CACHE_SECONDS:
        return found[1], found[2], found[3]
    observability = getattr(request.app.state, "observability", None)
    if observability is not None:  # include events of requests just answered, as the API
        observability.flush()
    since, until = window(days)
    stats = db.store.event_stats(tenant, since, until)
    with lock:
        if len(cache) >= CACHE_ENTRIES:
            cache.pop(min(cache, key=lambda k: cache[k][0]))
        cache[key] = (now, since, until, stats)
    return since, until, stats


def _days(since: str, until: str) -> list[str]:
    """Every UTC day from ``since`` to ``until``, as ISO dates."""
    first = datetime.fromisoformat(since).date()
    last = datetime.fromisoformat(until).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _series(rows: list[dict[str, Any]], days: list[str]) -> list[tuple[str, float]]:
    counts = {r["date"]: r["count"] for r in rows}
    return [(d, float(counts.get(d, 0))) for d in days]


def overview(stats: dict[str, Any], days: int, until: str) -> dict[str, Any]:
    """The headline numbers of ``stats`` (an ``event_stats`` result)."""
    users = stats["active_users"]
    daily = [r["count"] for r in users["daily"]]
    month = date.fromisoformat(until[:10]).strftime("%Y-%m")
    monthly = {r["month"]: r["count"] for r in users["monthly"]}
    searches = sum(r["count"] for r in stats["queries_per_day"])
    feedback = stats.get("feedback") or {"up": 0, "down": 0}
    rated = feedback["up"] + feedback["down"]
    return {
        "searches": searches,
        "searches_per_day": searches / days,
        "dau": sum(daily) / days,
        "mau": monthly.get(month, 0),
        "users": users["total"],
        "p50": stats["search_latency_ms"]["p50"],
        "p95": stats["search_latency_ms"]["p95"],
        "zero_rate": stats["zero_result_rate"],
        "up": feedback["up"],
        "down": feedback["down"],
        "satisfaction": feedback["up"] / rated if rated else None,
        "chats": stats["counts"].get("chat", 0),
    }


def charts(stats: dict[str, Any], caller: WebCaller, since: str, until: str) -> dict[str, Any]:
    t, lang = caller.t, caller.lang
    days = _days(since, until)

    def fmt(value: float) -> str:
        return number(value, lang, 0 if value.is_integer() else 1)

    feedback = stats.get("feedback") or {"up": 0, "down": 0}
    return {
        "searches": line_chart(
            _series(stats["queries_per_day"], days),
            title=t("dashboard.searches_chart"),
            head=(t("dashboard.day"), t("dashboard.searches")),
            empty=t("dashboard.no_data"),
            fmt=fmt,
        ),
        "users": line_chart(
            _series(stats["active_users"]["daily"], days),
            title=t("dashboard.users_chart"),
            head=(t("dashboard.day"), t("dashboard.users")),
            empty=t("dashboard.no_data"),
            fmt=fmt,
        ),
        "top": bar_chart(
            [(q["query"], float(q["count"])) for q in stats["top_queries"]],
            title=t("dashboard.top_queries"),
            head=(t("dashboard.query"), t("dashboard.searches")),
            empty=t("dashboard.no_queries"),
            fmt=fmt,
        ),
        "zero": bar_chart(
            [(q["query"], float(q["count"])) for q in stats.get("top_zero_result_queries", [])],
            title=t("dashboard.top_zero"),
            head=(t("dashboard.query"), t("dashboard.searches")),
            empty=t("dashboard.no_zero"),
            fmt=fmt,
        ),
        "feedback": bar_chart(
            [
                (t("dashboard.up"), float(feedback["up"])),
                (t("dashboard.down"), float(feedback["down"])),
            ]
            if feedback["up"] or feedback["down"]
            else [],
            title=t("dashboard.feedback_chart"),
            head=(t("dashboard.rating"), t("dashboard.answers")),
            empty=t("dashboard.no_feedback"),
            fmt=fmt,
        ),
    }


@router.get("/dashboard")
async def dashboard(
    request: Request,
    caller: Caller,
    db: DB,
    days: Annotated[int, Query()] = 30,
) -> Response:
    require(caller, "admin")
    if days not in PERIODS:
        raise InvalidInput(
            f"the period is 7, 30 or 90 days, not {days}", hint="choose one of the links above"
        )
    since, until, stats = await run_in_threadpool(usage, request, db, caller.principal.tenant, days)
    return page(
        request,
        caller,
        "dashboard/dashboard.html",
        title=caller.t("dashboard.title"),
        days=days,
        periods=PERIODS,
        since=since,
        until=until,
        o=overview(stats, days, until),
        charts=charts(stats, caller, since, until),
    )
