"""``client.memory``: conversations and long-term memories over HTTP, as ``db.memory``."""

from __future__ import annotations

import builtins
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
from .convert import from_json
from .http import Http, path


class MemoryClient:
    """The methods of :class:`engram.memory.MemoryService`, over HTTP. Records are the same
    dataclasses; their ``tenant`` is ``""`` (the API key's tenant, which the API does not
    repeat)."""

    def __init__(self, http: Http) -> None:
        self._http = http

    # -- memories ----------------------------------------------------------------------------
    def add(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MemoryRecord:
        """Remember ``content`` for ``user_id``; a near-identical memory is updated instead
        and returned with ``deduplicated=True``."""
        body = {"content": content, "user_id": user_id, "agent_id": agent_id, "metadata": metadata}
        return from_json(MemoryRecord, self._http.call("POST", path("memories"), json=body))

    def get(self, memory_id: str) -> MemoryRecord:
        """A live memory; raises MemoryNotFound."""
        return from_json(MemoryRecord, self._http.call("GET", path("memories", memory_id)))

    def update(
        self, memory_id: str, content: str, *, metadata: dict[str, Any] | None = None
    ) -> MemoryRecord:
        """Replace a memory's content (and its metadata, when given)."""
        body = {"content": content, "metadata": metadata}
        return from_json(
            MemoryRecord, self._http.call("PATCH", path("memories", memory_id), json=body)
        )

    def delete(self, memory_id: str) -> None:
        """Forget a memory; its history stays readable."""
        self._http.call("DELETE", path("memories", memory_id))

    def history(self, memory_id: str) -> builtins.list[MemoryEvent]:
        """Every change of a memory, oldest first (also for a deleted memory)."""
        body = self._http.call("GET", path("memories", memory_id, "history"))
        return [from_json(MemoryEvent, e) for e in body["data"]]

    def list(
        self, user_id: str, *, agent_id: str | None = None, limit: int | None = 100
    ) -> builtins.list[MemoryRecord]:
        """The user's memories, most recently updated first: at most ``limit`` (None: all),
        fetched a page at a time."""
        params = {"user_id": user_id, "agent_id": agent_id}
        pages = self._http.pages(path("memories"), params, limit)
        return [from_json(MemoryRecord, m) for m in pages]

    def search(
        self, query: str, *, user_id: str, agent_id: str | None = None, k: int = 10
    ) -> builtins.list[MemoryHit]:
        """The user's memories best matching ``query``, best first."""
        body = {"query": query, "user_id": user_id, "agent_id": agent_id, "k": k}
        found = self._http.call("POST", path("memories", "search"), json=body)
        return [from_json(MemoryHit, h) for h in found["data"]]

    # -- conversations -----------------------------------------------------------------------
    def create_conversation(
        self,
        user_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        extract_memories: bool = False,
        agent_id: str | None = None,
    ) -> Conversation:
        """Start a conversation of ``user_id`` (``extract_memories``: see
        :meth:`engram.memory.MemoryService.create_conversation`)."""
        body = {
            "user_id": user_id,
            "title": title,
            "metadata": metadata,
            "extract_memories": extract_memories,
            "agent_id": agent_id,
        }
        return from_json(Conversation, self._http.call("POST", path("conversations"), json=body))

    def conversation(self, conversation_id: str) -> Conversation:
        """One conversation; raises ConversationNotFound."""
        url = path("conversations", conversation_id)
        return from_json(Conversation, self._http.call("GET", url))

    def conversations(
        self, user_id: str, *, limit: int | None = 100
    ) -> builtins.list[Conversation]:
        """The user's conversations, most recently active first (at most ``limit``)."""
        pages = self._http.pages(path("conversations"), {"user_id": user_id}, limit)
        return [from_json(Conversation, c) for c in pages]

    def append(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        speaker: str | None = None,
        created_at: str | None = None,
    ) -> Message:
        """Append a message; ``role`` is one of system, user, assistant, tool; ``speaker``
        and ``created_at`` (ISO 8601) as in :meth:`engram.memory.MemoryService.append`."""
        body = {"role": role, "content": content, "metadata": metadata, "speaker": speaker}
        if created_at is not None:
            body["created_at"] = created_at
        url = path("conversations", conversation_id, "messages")
        return from_json(Message, self._http.call("POST", url, json=body))

    def append_many(
        self, conversation_id: str, messages: builtins.list[dict[str, Any]]
    ) -> builtins.list[Message]:
        """Append up to 1,000 messages (``{"role", "content", "metadata"?, "speaker"?,
        "created_at"?}``) in one transaction."""
        url = path("conversations", conversation_id, "messages:batch")
        found = self._http.call("POST", url, json={"messages": messages})
        return [from_json(Message, m) for m in found["data"]]

    def recall(
        self,
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
    ) -> builtins.list[RecallHit]:
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
        found = self._http.call("POST", path("recall"), json=body)
        return [from_json(RecallHit, h) for h in found["data"]]

    def messages(self, conversation_id: str, *, last: int | None = None) -> builtins.list[Message]:
        """The conversation's messages, oldest first; ``last=N``: only the N most recent."""
        url = path("conversations", conversation_id, "messages")
        params = {} if last is None else {"last": last}
        return [from_json(Message, m) for m in self._http.call("GET", url, params=params)["data"]]

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation and its messages."""
        self._http.call("DELETE", path("conversations", conversation_id))

    # -- whole users (admin scope) -----------------------------------------------------------
    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about the user, as a JSON-able dict."""
        exported: dict[str, Any] = self._http.call("GET", path("users", user_id, "export"))
        return exported

    def erase_user(self, user_id: str) -> ErasureReport:
        """Delete everything the user owns, at once and for good; how many rows of each kind
        went."""
        return ErasureReport(**self._http.call("DELETE", path("users", user_id)))
