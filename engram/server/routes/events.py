"""``POST /v1/events``: feedback from clients (clicks on results, ratings of answers)."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Reader
from ..observability import record_event
from ..ownership import acting_user
from ..schemas import error_responses
from ..schemas_ops import EventAccepted, EventCreate

router = APIRouter(tags=["analytics"])


@router.post("/events", operation_id="recordEvent", status_code=202, responses=error_responses(422))
def create_event(body: EventCreate, principal: Reader) -> EventAccepted:
    """Record that a result was clicked or an answer rated, for ``GET /v1/admin/stats``.
    Accepted at once and written in the background."""
    record_event(
        principal,
        body.kind,
        user_id=acting_user(principal, body.user_id) if body.user_id else principal.user_id,
        query=body.query,
        document=body.document,
        chunk_id=body.chunk_id,
        rating=body.rating,
    )
    return EventAccepted()
