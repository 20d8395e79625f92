"""``POST /v1/chat``: an answer from a collection, with citations, whole or streamed (SSE).

A follow-up question is first made standalone from the conversation (by the model, or by
the heuristic of :mod:`engram.memory.rewrite`). It is searched in the collection, in the
user's earlier conversations (recall) and in the user's memories; the passages of all three,
numbered, and the last messages of the conversation go into the prompt of the configured
model chain (``ENGRAM_LLM``), or into an extractive answer when no model is configured.
Each citation says which kind of source it is. With a ``conversation_id`` the question and
the answer are appended to the conversation. The retrieval is shared with the
OpenAI-compatible ``POST /v1/chat/completions`` (:mod:`engram.server.grounding`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...answers import AnswerEvent, answer, sse_format, stream_answer
from ...answers.grounding import MAX_PASSAGES, PASSAGES_HELP
from ...answers.turns import history_of, remember, remembering
from ...engine import Engram
from ...errors import ConversationNotFound
from ...providers.llms import ChatMessage
from ..deps import DB, Writer
from ..grounding import ground
from ..ownership import acting_user, owns
from ..schemas import (
    COLLECTIONS_HELP,
    CitationPublic,
    CollectionNames,
    error_responses,
)
from ..schemas_base import RequestModel
from ..streaming import ClosingStreamingResponse

router = APIRouter(tags=["chat"])


class ChatRequest(RequestModel):
    question: str = Field(min_length=1, max_length=4096)
    collection: CollectionNames = Field("default", description=COLLECTIONS_HELP)
    conversation_id: str | None = None
    user_id: str | None = Field(None, description="Whose long-term memories to use.")
    k: int | None = Field(None, ge=1, le=MAX_PASSAGES, description=PASSAGES_HELP)
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid"
    where: dict[str, Any] | None = None
    rerank: bool = False
    stream: bool = False


class ChatResponse(BaseModel):
    text: str
    citations: list[CitationPublic]
    model: str | None
    extractive: bool
    query: str = Field(
        description="What was searched: the question, made standalone when it follows up on "
        "the conversation (ENGRAM_CHAT_REWRITE)"
    )


@router.post(
    "/chat",
    operation_id="chat",
    responses={
        **error_responses(404, 409, 422, 502, 503),
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream"},
    },
)
def chat(body: ChatRequest, request: Request, db: DB, principal: Writer) -> Any:
    """Answer a question from a collection (plus conversation history and user memories)."""
    settings = db.settings
    tenant = principal.tenant
    llm = request.app.state.llm
    # A caller bound to one user answers from that user's conversations and memories only.
    user_id = acting_user(principal, body.user_id) if body.user_id else principal.user_id
    if body.conversation_id:
        conversation = db.memory.conversation(body.conversation_id, tenant=tenant)
        if not owns(principal, conversation.user_id):
            raise ConversationNotFound(f"no conversation {body.conversation_id!r}")
        user_id = user_id or conversation.user_id
    history: list[ChatMessage] = []
    if body.conversation_id:
        history = history_of(
            db.memory, body.conversation_id, last=settings.chat_history_messages, tenant=tenant
        )
    grounding = ground(
        db,
        llm,
        principal,
        body.question,
        history,
        collection=body.collection,
        user_id=user_id,
        k=body.k,
        mode=body.mode,
        where=body.where,
        rerank=body.rerank,
        exclude_conversation=body.conversation_id,
    )
    query, passages, options = grounding.query, grounding.passages, grounding.options
    if not body.stream:
        result = answer(body.question, passages, llm, **options)
        _remember(db, body, result.text, tenant, result.to_dict())
        return ChatResponse.model_validate({**result.to_dict(), "query": query})
    # Validation errors raise here, before the first byte, so they still get a 4xx.
    events = stream_answer(body.question, passages, llm, **options)

    if body.conversation_id:  # the turn is kept once its answer is fully sent
        events = remembering(events, db.memory, body.conversation_id, body.question, tenant=tenant)

    def frames() -> Generator[bytes, None, None]:
        try:
            for event in events:
                if event.type == "done":
                    event = AnswerEvent("done", {**event.data, "query": query})
                yield sse_format(event)
        finally:
            events.close()

    return ClosingStreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _remember(db: Engram, body: ChatRequest, reply: str, tenant: str, said: dict[str, Any]) -> None:
    """Append the turn to the conversation, if the request names one."""
    if body.conversation_id:
        remember(db.memory, body.conversation_id, body.question, reply, said, tenant=tenant)
