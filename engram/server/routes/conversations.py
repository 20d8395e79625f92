"""``/v1/conversations`` and ``/v1/users/{user_id}``: conversations, their messages, and the
export / erasure of everything a user owns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...errors import ConversationNotFound
from ...memory.types import Conversation
from ..deps import DB, Admin, Reader, Writer
from ..observability import record_event
from ..ownership import acting_user, owns
from ..pagination import fetch_page
from ..principal import Principal
from ..schemas import error_responses
from ..schemas_memory import (
    ConversationCreate,
    ConversationList,
    ConversationPublic,
    ErasurePublic,
    MessageBatch,
    MessageCreate,
    MessageList,
    MessagePublic,
    RecallHitPublic,
    RecallRequest,
    RecallResponse,
)

router = APIRouter(tags=["conversations"])


@router.post(
    "/conversations",
    operation_id="createConversation",
    status_code=201,
    responses=error_responses(422),
)
def create_conversation(body: ConversationCreate, db: DB, principal: Writer) -> ConversationPublic:
    conversation = db.memory.create_conversation(
        acting_user(principal, body.user_id),
        title=body.title,
        metadata=body.metadata,
        extract_memories=body.extract_memories,
        agent_id=body.agent_id,
        tenant=principal.tenant,
    )
    return ConversationPublic.model_validate(conversation)


@router.get("/conversations", operation_id="listConversations", responses=error_responses(422))
def list_conversations(
    db: DB,
    principal: Reader,
    user_id: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> ConversationList:
    page, next_cursor = fetch_page(
        lambda n, offset: db.memory.conversations(
            acting_user(principal, user_id), limit=n, offset=offset, tenant=principal.tenant
        ),
        cursor,
        limit,
    )
    data = [ConversationPublic.model_validate(c) for c in page]
    return ConversationList(data=data, count=len(data), next_cursor=next_cursor)


@router.get(
    "/conversations/{conversation_id}",
    operation_id="getConversation",
    responses=error_responses(404, 422),
)
def get_conversation(conversation_id: str, db: DB, principal: Reader) -> ConversationPublic:
    return ConversationPublic.model_validate(_own(db, principal, conversation_id))


@router.delete(
    "/conversations/{conversation_id}",
    operation_id="deleteConversation",
    status_code=204,
    responses=error_responses(404, 422),
)
def delete_conversation(conversation_id: str, db: DB, principal: Writer) -> None:
    _check_own(db, principal, conversation_id)
    db.memory.delete_conversation(conversation_id, tenant=principal.tenant)


@router.post(
    "/conversations/{conversation_id}/messages",
    operation_id="appendMessage",
    status_code=201,
    responses=error_responses(404, 422),
)
def append_message(
    conversation_id: str, body: MessageCreate, db: DB, principal: Writer
) -> MessagePublic:
    owner = _own(db, principal, conversation_id).user_id
    message = db.memory.append_many(
        conversation_id, [body.model_dump(exclude_none=True)], tenant=principal.tenant
    )[0]
    record_event(principal, "message", user_id=owner, role=body.role)
    return MessagePublic.model_validate(message)


@router.post(
    "/conversations/{conversation_id}/messages:batch",
    operation_id="appendMessages",
    status_code=201,
    responses=error_responses(404, 422),
)
def append_messages(
    conversation_id: str, body: MessageBatch, db: DB, principal: Writer
) -> MessageList:
    """Append up to 1,000 messages in one transaction (all or none), e.g. to import a
    conversation's history with the times its messages were said."""
    owner = _own(db, principal, conversation_id).user_id
    written = db.memory.append_many(
        conversation_id,
        [m.model_dump(exclude_none=True) for m in body.messages],
        tenant=principal.tenant,
    )
    for m in written:
        record_event(principal, "message", user_id=owner, role=m.role)
    data = [MessagePublic.model_validate(m) for m in written]
    return MessageList(data=data, count=len(data))


@router.post("/recall", operation_id="recall", responses=error_responses(403, 422))
def recall(body: RecallRequest, db: DB, principal: Reader) -> RecallResponse:
    """Search the user's past conversations: hybrid search over every message, narrowed by
    conversation, role, speaker and time (``since`` ≤ time < ``until``); each hit comes with
    ``context`` turns before and after it and ``explain`` (its rank and score in each leg)."""
    hits = db.memory.recall(
        body.query,
        user_id=acting_user(principal, body.user_id),
        k=body.k,
        conversation_id=body.conversation_id,
        role=body.role,
        speaker=body.speaker,
        since=body.since,
        until=body.until,
        context=body.context,
        mode=body.mode,
        tenant=principal.tenant,
    )
    data = [RecallHitPublic.model_validate(h.to_dict()) for h in hits]
    return RecallResponse(data=data, count=len(data))


@router.get(
    "/conversations/{conversation_id}/messages",
    operation_id="listMessages",
    responses=error_responses(404, 422),
)
def list_messages(
    conversation_id: str,
    db: DB,
    principal: Reader,
    last: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> MessageList:
    """Messages oldest first; ``last=N`` keeps the N most recent."""
    _check_own(db, principal, conversation_id)
    items = db.memory.messages(conversation_id, last=last, tenant=principal.tenant)
    data = [MessagePublic.model_validate(m) for m in items]
    return MessageList(data=data, count=len(data))


@router.get("/users/{user_id}/export", operation_id="exportUser", responses=error_responses(422))
def export_user(user_id: str, db: DB, principal: Admin) -> dict[str, Any]:
    """Everything the user owns: conversations with messages, memories with history."""
    return db.memory.export_user(user_id, tenant=principal.tenant)


@router.delete("/users/{user_id}", operation_id="eraseUser", responses=error_responses(422))
def erase_user(user_id: str, db: DB, principal: Admin) -> ErasurePublic:
    """Erase everything the user owns (GDPR-style), returning what was deleted."""
    return ErasurePublic.model_validate(
        db.memory.erase_user(user_id, tenant=principal.tenant).to_dict()
    )


def _own(db: DB, principal: Principal, conversation_id: str) -> Conversation:
    """The conversation, if the caller may reach it; ConversationNotFound otherwise (another
    user's conversation looks missing, as another tenant's does)."""
    conversation = db.memory.conversation(conversation_id, tenant=principal.tenant)
    if not owns(principal, conversation.user_id):
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    return conversation


def _check_own(db: DB, principal: Principal, conversation_id: str) -> None:
    """Refuse another user's conversation to a caller bound to one user; a tenant-wide
    caller needs no read here (the operation itself raises ConversationNotFound)."""
    if principal.user_id is not None:
        _own(db, principal, conversation_id)
