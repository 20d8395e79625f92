"""``POST /v1/search``: hybrid, keyword or vector search of one collection."""

from __future__ import annotations

from fastapi import APIRouter

from ...errors import InvalidInput
from ..deps import DB, Reader
from ..observability import observe_search
from ..pagination import decode_cursor, encode_cursor
from ..schemas import MAX_SEARCH_OFFSET, SearchHit, SearchRequest, SearchResponse
from . import error_responses

router = APIRouter(tags=["search"])


@router.post("/search", operation_id="search", responses=error_responses(404, 409, 413, 422, 503))
def search(body: SearchRequest, db: DB, principal: Reader) -> SearchResponse:
    """Search a collection: results best first, each with its document, version, character
    span, page, heading path, score, highlight and the rank and score in each leg
    (``explain``). Pass ``next_cursor`` back as ``cursor`` for the next page."""
    offset = body.offset
    if body.cursor is not None:
        if offset:
            raise InvalidInput("pass cursor or offset, not both")
        offset = decode_cursor(body.cursor)
        if offset > MAX_SEARCH_OFFSET:
            raise InvalidInput(f"the cursor points past the {MAX_SEARCH_OFFSET:,}th result")
    result = db.search(
        body.query,
        collection=body.collection,
        k=body.k,
        offset=offset,
        mode=body.mode,
        where=body.where,
        rerank=body.rerank,
        highlight=body.highlight,
        tenant=principal.tenant,
    )
    observe_search(principal, body.query, result)  # metrics and the analytics event
    hits = [SearchHit.of(r) for r in result.results]
    # No cursor past the deepest page we would serve.
    next_offset = result.next_offset
    if next_offset is not None and next_offset > MAX_SEARCH_OFFSET:
        next_offset = None
    return SearchResponse(
        data=hits,
        count=len(hits),
        next_cursor=encode_cursor(next_offset),
        mode=result.mode,
        timings_ms=result.timings_ms,
        expansions=result.expansions,
    )
