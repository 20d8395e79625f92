"""``/v1/memories``: a user's long-term memories (add with deduplication, search, update,
forget, history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..deps import DB, Reader, Writer
from ..observability import record_event
from ..ownership import acting_user, check_memory, reachable_memory
from ..pagination import fetch_page
from ..schemas import error_responses
from ..schemas_memory import (
    MemoryCreate,
    MemoryEventPublic,
    MemoryHistory,
    MemoryHitPublic,
    MemoryHits,
    MemoryList,
    MemoryPublic,
    MemorySearch,
    MemoryUpdate,
)

router = APIRouter(tags=["memories"])


@router.post(
    "/memories", operation_id="addMemory", status_code=201, responses=error_responses(409, 422)
)
def add_memory(body: MemoryCreate, db: DB, principal: Writer, response: Response) -> MemoryPublic:
    """Add a memory; a near-identical memory of the same user and agent is updated instead
    (``deduplicated: true``, status 200)."""
    record = db.memory.add(
        body.content,
        user_id=acting_user(principal, body.user_id),
        agent_id=body.agent_id,
        metadata=body.metadata,
        tenant=principal.tenant,
    )
    record_event(principal, "memory", user_id=body.user_id, action="add")
    if record.deduplicated:
        response.status_code = 200
    return MemoryPublic.model_validate(record)


@router.get("/memories", operation_id="listMemories", responses=error_responses(422))
def list_memories(
    db: DB,
    principal: Reader,
    user_id: Annotated[str, Query(min_length=1, max_length=200)],
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> MemoryList:
    """A user's live memories, newest first."""
    page, next_cursor = fetch_page(
        lambda n, offset: db.memory.list(
            acting_user(principal, user_id),
            agent_id=agent_id,
            limit=n,
            offset=offset,
            tenant=principal.tenant,
        ),
        cursor,
        limit,
    )
    data = [MemoryPublic.model_validate(m) for m in page]
    return MemoryList(data=data, count=len(data), next_cursor=next_cursor)


@router.post("/memories/search", operation_id="searchMemories", responses=error_responses(409, 422))
def search_memories(body: MemorySearch, db: DB, principal: Reader) -> MemoryHits:
    """Hybrid (keyword + vector) search over one user's memories."""
    hits = db.memory.search(
        body.query,
        user_id=acting_user(principal, body.user_id),
        agent_id=body.agent_id,
        k=body.k,
        tenant=principal.tenant,
    )
    record_event(principal, "memory", user_id=body.user_id, action="search", result_count=len(hits))
    data = [MemoryHitPublic.model_validate(h.to_dict()) for h in hits]
    return MemoryHits(data=data, count=len(data))


@router.get("/memories/{memory_id}", operation_id="getMemory", responses=error_responses(404, 422))
def get_memory(memory_id: str, db: DB, principal: Reader) -> MemoryPublic:
    return MemoryPublic.model_validate(reachable_memory(db, principal, memory_id))


@router.patch(
    "/memories/{memory_id}", operation_id="updateMemory", responses=error_responses(404, 422)
)
def update_memory(memory_id: str, body: MemoryUpdate, db: DB, principal: Writer) -> MemoryPublic:
    check_memory(db, principal, memory_id)
    record = db.memory.update(
        memory_id, body.content, metadata=body.metadata, tenant=principal.tenant
    )
    return MemoryPublic.model_validate(record)


@router.delete(
    "/memories/{memory_id}",
    operation_id="deleteMemory",
    status_code=204,
    responses=error_responses(404, 422),
)
def delete_memory(memory_id: str, db: DB, principal: Writer) -> None:
    check_memory(db, principal, memory_id)
    db.memory.delete(memory_id, tenant=principal.tenant)


@router.get(
    "/memories/{memory_id}/history",
    operation_id="memoryHistory",
    responses=error_responses(404, 422),
)
def memory_history(memory_id: str, db: DB, principal: Reader) -> MemoryHistory:
    check_memory(db, principal, memory_id, include_deleted=True)
    events = [
        MemoryEventPublic.model_validate(e)
        for e in db.memory.history(memory_id, tenant=principal.tenant)
    ]
    return MemoryHistory(data=events, count=len(events))
