"""``client.memory``: conversations and long-term memories over HTTP, as ``db.memory``, as
specs (see :mod:`.flow`) of the sync and the async client's methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..memory.types import (
    Conversation,
    ErasureReport,
    MemoryEvent,
    MemoryHit,
    MemoryRecord,
    Message,
    RecallHit,
)
from .convert import D, from_json
from .flow import Flow, Pages, collect, fetch
from .http import path


# -- memories ----------------------------------------------------------------------------------
def add(
    content: str,
    *,
    user_id: str,
    agent_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Flow[MemoryRecord]:
    """Remember ``content`` for ``user_id``; a near-identical memory is updated instead
    and returned with ``deduplicated=True``."""
    body = {"content": content, "user_id": user_id, "agent_id": agent_id, "metadata": metadata}
    return fetch("POST", path("memories"), _record, json=body)


def get(memory_id: str) -> Flow[MemoryRecord]:
    """A live memory; raises MemoryNotFound."""
    return fetch("GET", path("memories", memory_id), _record)


def update(
    memory_id: str, content: str, *, metadata: dict[str, Any] | None = None
) -> Flow[MemoryRecord]:
    """Replace a memory's content (and its metadata, when given)."""
    body = {"content": content, "metadata": metadata}
    return fetch("PATCH", path("memories", memory_id), _record, json=body)


def delete(memory_id: str) -> Flow[None]:
    """Forget a memory; its history stays readable."""
    return fetch("DELETE", path("memories", memory_id), _nothing)


def history(memory_id: str) -> Flow[list[MemoryEvent]]:
    """Every change of a memory, oldest first (also for a deleted memory)."""
    return fetch("GET", path("memories", memory_id, "history"), _data(MemoryEvent))


def list_memories(
    user_id: str, *, agent_id: str | None = None, limit: int | None = 100
) -> Flow[list[MemoryRecord]]:
    """The user's memories, most recently updated first: at most ``limit`` (None: all),
    fetched a page at a time."""
    params = {"user_id": user_id, "agent_id": agent_id}
    return collect(Pages(path("memories"), params, limit, _record))


def search(
    query: str, *, user_id: str, agent_id: str | None = None, k: int = 10
) -> Flow[list[MemoryHit]]:
    """The user's memories best matching ``query``, best first."""
    body = {"query": query, "user_id": user_id, "agent_id": agent_id, "k": k}
    return fetch("POST", path("memories", "search"), _data(MemoryHit), json=body)


# -- conversations -----------------------------------------------------------------------------
def create_conversation(
    user_id: str,
    *,
    title: str | None = None,
    metadata: dict[str, Any] | None = None,
    extract_memories: bool = False,
    agent_id: str | None = None,
) -> Flow[Conversation]:
    """Start a conversation of ``user_id`` (``extract_memories``: see
    :meth:`engram.memory.MemoryService.create_conversation`)."""
    body = {
        "user_id": user_id,
        "title": title,
        "metadata": metadata,
        "extract_memories": extract_memories,
        "agent_id": agent_id,
    }
    return fetch("POST", path("conversations"), _conversation, json=body)


def conversation(conversation_id: str) -> Flow[Conversation]:
    """One conversation; raises ConversationNotFound."""
    return fetch("GET", path("conversations", conversation_id), _conversation)


def conversations(user_id: str, *, limit: int | None = 100) -> Flow[list[Conversation]]:
    """The user's conversations, most recently active first (at most ``limit``)."""
    return collect(Pages(path("conversations"), {"user_id": user_id}, limit, _conversation))


def append(
    conversation_id: str,
    role: str,
    content: str,
    *,
    metadata: dict[str, Any] | None = None,
    speaker: str | None = None,
    created_at: str | None = None,
) -> Flow[Message]:
    """Append a message; ``role`` is one of system, user, assistant, tool; ``speaker``
    and ``created_at`` (ISO 8601) as in :meth:`engram.memory.MemoryService.append`."""
    body = {"role": role, "content": content, "metadata": metadata, "speaker": speaker}
    if created_at is not None:
        body["created_at"] = created_at
    url = path("conversations", conversation_id, "messages")
    return fetch("POST", url, lambda m: from_json(Message, m), json=body)


def append_many(conversation_id: str, messages: list[dict[str, Any]]) -> Flow[list[Message]]:
    """Append up to 1,000 messages (``{"role", "content", "metadata"?, "speaker"?,
    "created_at"?}``) in one transaction."""
    url = path("conversations", conversation_id, "messages:batch")
    return fetch("POST", url, _data(Message), json={"messages": messages})


def recall(
    query: str,
    *,
    user_id: str,
    k: int = 10,
    conversation_id: str | None = None,
    role: str | None = None,
    speaker: str | None = None,
    since: str | None = None,
    until: str | None = None,
    context: int = 1,
    mode: str = "hybrid",
) -> Flow[list[RecallHit]]:
    """The user's past messages best matching ``query``, best first, each with
    ``context`` turns around it (see :meth:`engram.memory.MemoryService.recall`)."""
    body = {
        "query": query,
        "user_id": user_id,
        "k": k,
        "conversation_id": conversation_id,
        "role": role,
        "speaker": speaker,
        "since": since,
        "until": until,
        "context": context,
        "mode": mode,
    }
    return fetch("POST", path("recall"), _data(RecallHit), json=body)


def messages(conversation_id: str, *, last: int | None = None) -> Flow[list[Message]]:
    """The conversation's messages, oldest first; ``last=N``: only the N most recent."""
    url = path("conversations", conversation_id, "messages")
    params = {} if last is None else {"last": last}
    return fetch("GET", url, _data(Message), params=params)


def delete_conversation(conversation_id: str) -> Flow[None]:
    """Delete a conversation and its messages."""
    return fetch("DELETE", path("conversations", conversation_id), _nothing)


# -- whole users (admin scope) -----------------------------------------------------------------
def export_user(user_id: str) -> Flow[dict[str, Any]]:
    """Everything stored about the user, as a JSON-able dict."""
    return fetch("GET", path("users", user_id, "export"), dict)


def erase_user(user_id: str) -> Flow[ErasureReport]:
    """Delete everything the user owns, at once and for good; how many rows of each kind
    went."""
    return fetch("DELETE", path("users", user_id), lambda body: ErasureReport(**body))


def _record(body: Any) -> MemoryRecord:
    return from_json(MemoryRecord, body)


def _conversation(body: Any) -> Conversation:
    return from_json(Conversation, body)


def _data(cls: type[D]) -> Callable[[Any], list[D]]:
    """The converter of a ``{"data": [...]}`` body into a list of ``cls``."""
    return lambda body: [from_json(cls, item) for item in body["data"]]


def _nothing(body: Any) -> None:
    return None
