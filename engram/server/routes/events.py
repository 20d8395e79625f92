"""``POST /v1/events``: feedback from clients (clicks on results, ratings of answers) and
events of the custom kinds their tenant registered (``POST /v1/admin/event-kinds``)."""

from __future__ import annotations

from fastapi import APIRouter

from ...analytics.kinds import FEEDBACK_KINDS
from ..deps import DB, Reader
from ..observability import record_event
from ..ownership import acting_user
from ..schemas import error_responses
from ..schemas_ops import EventAccepted, EventCreate

router = APIRouter(tags=["analytics"])


@router.post("/events", operation_id="recordEvent", status_code=202, responses=error_responses(422))
def create_event(body: EventCreate, db: DB, principal: Reader) -> EventAccepted:
    """Record that a result was clicked or an answer rated, or an event of a registered
    custom kind (its ``properties`` checked against the kind's schema; an unknown kind is a
    422 naming the kinds the tenant may post). Accepted at once and written in the
    background."""
    user_id = acting_user(principal, body.user_id) if body.user_id else principal.user_id
    if body.kind not in FEEDBACK_KINDS:
        db.analytics.kinds.validate(principal.tenant, body.kind, body.properties)
    record_event(
        principal,
        body.kind,
        user_id=user_id,
        query=body.query,
        properties=body.properties,
        document=body.document,
        chunk_id=body.chunk_id,
        rating=body.rating,
    )
    return EventAccepted()
