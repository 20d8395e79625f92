"""``GET /v1/admin/stats``: usage statistics of the caller's tenant, from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ..deps import DB, Admin
from ..schemas import error_responses
from ..schemas_ops import StatsPublic

router = APIRouter(tags=["admin"])


@router.get("/admin/stats", operation_id="getStats", responses=error_responses(422))
def stats(
    request: Request,
    db: DB,
    principal: Admin,
    days: Annotated[int, Query(ge=1, le=366, description="Window: the last N days.")] = 30,
) -> StatsPublic:
    """Searches per day, search latency (p50, p95), zero-result rate, top queries, active
    users per day and month, and event counts by kind, over the last ``days`` days."""
    request.app.state.observability.flush()  # include events of requests just answered
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    window = (since.isoformat(timespec="microseconds"), until.isoformat(timespec="microseconds"))
    found = db.store.event_stats(principal.tenant, *window)
    return StatsPublic.model_validate(
        {"days": days, "since": window[0], "until": window[1], **found}
    )
