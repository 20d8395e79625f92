"""API schemas of conversations, messages, memories and users (families as in schemas.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas_base import RequestModel

Text = Field(min_length=1, max_length=10_000)
Id = Field(min_length=1, max_length=200)


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MemoryCreate(RequestModel):
    content: str = Text
    user_id: str = Id
    agent_id: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = None


class MemoryUpdate(RequestModel):
    content: str = Text
    metadata: dict[str, Any] | None = None


class MemoryPublic(_Public):
    id: str
    user_id: str
    agent_id: str | None
    content: str
    metadata: dict[str, Any]
    source: str
    model_id: str
    created_at: str
    updated_at: str
    deleted_at: str | None = None
    deduplicated: bool = False


class MemoryList(BaseModel):
    data: list[MemoryPublic]
    count: int
    next_cursor: str | None = None


class MemorySearch(RequestModel):
    query: str = Field(min_length=1, max_length=4096)
    user_id: str = Id
    agent_id: str | None = Field(None, max_length=200)
    k: int = Field(10, ge=1, le=100)


class MemoryHitPublic(MemoryPublic):
    score: float
    explain: dict[str, Any]


class MemoryHits(BaseModel):
    data: list[MemoryHitPublic]
    count: int


class MemoryEventPublic(_Public):
    id: int
    memory_id: str
    event: str
    old_content: str | None
    new_content: str | None
    created_at: str
    source: str | None = Field(
        None, description="who made the change: api, or conversation:<id>#<message ids>"
    )


class MemoryHistory(BaseModel):
    data: list[MemoryEventPublic]
    count: int


class ConversationCreate(RequestModel):
    user_id: str = Id
    title: str | None = Field(None, max_length=500)
    metadata: dict[str, Any] | None = None
    extract_memories: bool = Field(
        False,
        description="turn what the user says into memories, in a background job, when an LLM"
        " is configured (ENGRAM_LLM)",
    )
    agent_id: str | None = Field(
        None, min_length=1, max_length=200, description="whose memories extraction writes"
    )


class ConversationPublic(_Public):
    id: str
    user_id: str
    title: str | None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class ConversationList(BaseModel):
    data: list[ConversationPublic]
    count: int
    next_cursor: str | None = None


class MessageCreate(RequestModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Text
    metadata: dict[str, Any] | None = None
    speaker: str | None = Field(
        None, min_length=1, max_length=200, description="who said it, when the role is not enough"
    )
    created_at: str | None = Field(
        None,
        max_length=64,
        description="when it was said (ISO 8601; UTC without an offset), for imported history;"
        " by default the time of the append",
    )


class MessageBatch(RequestModel):
    messages: list[MessageCreate] = Field(min_length=1, max_length=1000)


class MessagePublic(_Public):
    id: int
    conversation_id: str
    role: str
    content: str
    metadata: dict[str, Any]
    created_at: str
    speaker: str | None = None


class RecallRequest(RequestModel):
    query: str = Field(min_length=1, max_length=10_000)
    user_id: str = Id
    k: int = Field(10, ge=1, le=1000)
    conversation_id: str | None = Field(None, min_length=1, max_length=200)
    role: Literal["system", "user", "assistant", "tool"] | None = None
    speaker: str | None = Field(None, min_length=1, max_length=200)
    since: str | None = Field(None, max_length=64, description="ISO 8601: messages from then on")
    until: str | None = Field(None, max_length=64, description="ISO 8601: messages before then")
    context: int = Field(1, ge=0, le=20, description="turns returned before and after each hit")
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid"


class RecallHitPublic(BaseModel):
    conversation_id: str
    message: MessagePublic
    score: float
    explain: dict[str, Any]
    context: list[MessagePublic]


class RecallResponse(BaseModel):
    data: list[RecallHitPublic]
    count: int


class MessageList(BaseModel):
    data: list[MessagePublic]
    count: int


class ErasurePublic(BaseModel):
    conversations: int
    messages: int
    memories: int
    memory_history: int
    state: int = Field(0, description="Agent state items under the user's namespace, user/<id>.")
