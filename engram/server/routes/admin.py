"""Administration of the caller's tenant's analytics: ``GET /v1/admin/stats`` (usage,
retention, cohorts, breakdowns), the registry of custom event kinds
(``/v1/admin/event-kinds``), the export of events (``GET /v1/admin/events``), and the
import batches with their rollback (``/v1/admin/imports``, as ``engram import --batches`` /
``--rollback``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from ...analytics.export import MEDIA_TYPES
from ...analytics.kinds import BUILT_IN
from ..deps import DB, Admin
from ..schemas import error_responses
from ..schemas_ops import (
    EventKindCreate,
    EventKindList,
    EventKindPublic,
    ImportBatchList,
    RollbackPublic,
    StatsPublic,
)

router = APIRouter(tags=["admin"])

_TIME = r"^\d{4}(-\d{2}(-\d{2}([T ][0-9:.]+([+-]\d{2}:\d{2}|Z)?)?)?)?$"


@router.get("/admin/stats", operation_id="getStats", responses=error_responses(422))
def stats(
    request: Request,
    db: DB,
    principal: Admin,
    days: Annotated[int, Query(ge=1, le=366, description="Window: the last N days.")] = 30,
) -> StatsPublic:
    """Searches per day, search latency (p50, p95), zero-result rate, top queries, active
    users per day and month, event counts by kind, day-N retention, cohorts by first-seen
    week, and usage per collection and per user, over the last ``days`` days."""
    request.app.state.observability.flush()  # include events of requests just answered
    found = db.analytics.stats(tenant=principal.tenant, days=days)
    return StatsPublic.model_validate(found)


@router.get("/admin/event-kinds", operation_id="listEventKinds", responses=error_responses(422))
def list_event_kinds(db: DB, principal: Admin) -> EventKindList:
    """The tenant's custom event kinds with their JSON schemas, and the built-in kinds."""
    kinds = db.analytics.event_kinds(tenant=principal.tenant)
    data = [EventKindPublic(name=name, schema=schema) for name, schema in kinds.items()]
    return EventKindList(data=data, count=len(data), built_in=sorted(BUILT_IN))


@router.post(
    "/admin/event-kinds",
    operation_id="registerEventKind",
    status_code=201,
    responses=error_responses(422),
)
def register_event_kind(body: EventKindCreate, db: DB, principal: Admin) -> EventKindPublic:
    """Register a custom event kind (or replace its schema): ``POST /v1/events`` then
    accepts events of that kind whose ``properties`` match the schema."""
    db.analytics.register_kind(body.name, body.schema_, tenant=principal.tenant)
    return EventKindPublic(name=body.name, schema=body.schema_)


@router.delete(
    "/admin/event-kinds/{kind}",
    operation_id="deleteEventKind",
    status_code=204,
    responses=error_responses(404, 422),
)
def delete_event_kind(kind: str, db: DB, principal: Admin) -> Response:
    """Unregister a custom kind: new events of it are refused; recorded ones stay."""
    db.analytics.remove_kind(kind, tenant=principal.tenant)
    return Response(status_code=204)


@router.get(
    "/admin/events",
    operation_id="exportEvents",
    responses={
        **error_responses(422),
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
    },
    response_class=StreamingResponse,
)
def export_events(
    request: Request,
    db: DB,
    principal: Admin,
    format: Annotated[Literal["jsonl", "csv"], Query(description="jsonl or csv.")] = "jsonl",
    since: Annotated[
        str | None, Query(pattern=_TIME, description="From this ISO 8601 time (included).")
    ] = None,
    until: Annotated[
        str | None, Query(pattern=_TIME, description="Up to this ISO 8601 time (excluded).")
    ] = None,
) -> StreamingResponse:
    """The tenant's events, oldest first, streamed as JSON Lines or CSV (a header row, then
    one row an event with its properties as JSON)."""
    request.app.state.observability.flush()
    lines = db.analytics.export(tenant=principal.tenant, format=format, since=since, until=until)
    return StreamingResponse(
        lines,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="events.{format}"'},
    )


@router.get("/admin/imports", operation_id="listImports", responses=error_responses(422))
def list_imports(
    db: DB,
    principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most batches to list.")] = 100,
) -> ImportBatchList:
    """The tenant's imports (JSONL, Chroma, export archives), newest first, each with what it
    did and whether it can be rolled back."""
    batches = db.import_batches(tenant=principal.tenant, limit=limit)
    data = [b.to_dict() for b in batches]
    return ImportBatchList.model_validate({"data": data, "count": len(data)})


@router.post(
    "/admin/imports/{batch_id}:rollback",
    operation_id="rollbackImport",
    responses=error_responses(404, 409, 422),
)
def rollback_import(
    batch_id: str,
    db: DB,
    principal: Admin,
    force: Annotated[
        bool, Query(description="Roll back even if later writes changed what it wrote.")
    ] = False,
) -> RollbackPublic:
    """Undo an import: what it added is deleted, what it updated or deleted comes back as it
    was (no model call). Refused (409) if later writes touched the same records, unless
    ``force``; a batch is rolled back once."""
    report = db.rollback_import(batch_id, force=force, tenant=principal.tenant)
    return RollbackPublic.model_validate(report.to_dict())
