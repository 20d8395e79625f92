"""The library's dataclasses, built from the JSON bodies of the HTTP API.

The API does not expose row ids or the tenant (a key's tenant is implied): those fields are
filled with :data:`NO_ID` and :data:`NO_TENANT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from ..memory.types import Conversation, MemoryEvent, MemoryHit, MemoryRecord, Message
from ..store.records import DocumentVersion
from ..types import Collection, DocumentInfo, IngestReport, SearchResult

NO_ID = 0
NO_TENANT = ""

Json = Mapping[str, Any]


def collection(body: Json) -> Collection:
    """A :class:`Collection` from a ``CollectionPublic`` body."""
    return Collection(
        id=NO_ID,
        name=body["name"],
        model_id=body["model_id"],
        dimension=body["dimension"],
        language=body["language"],
        settings=dict(body.get("settings") or {}),
        created_at=body["created_at"],
        document_count=body.get("document_count", 0),
        chunk_count=body.get("chunk_count", 0),
        tenant=NO_TENANT,
    )


def document(body: Json) -> DocumentInfo:
    """A :class:`DocumentInfo` from a ``DocumentPublic`` body."""
    return DocumentInfo(
        id=NO_ID,
        collection=body["collection"],
        key=body["key"],
        title=body["title"],
        version=body["version"],
        content_hash=body["content_hash"],
        metadata=dict(body.get("metadata") or {}),
        source=body.get("source", ""),
        chunk_count=body.get("chunk_count", 0),
        created_at=body["created_at"],
        updated_at=body["updated_at"],
    )


def version(body: Json) -> DocumentVersion:
    """A :class:`DocumentVersion` from a ``DocumentVersionPublic`` body."""
    return DocumentVersion(
        version=body["version"],
        content_hash=body["content_hash"],
        chunk_count=body["chunk_count"],
        created_at=body["created_at"],
    )


def report(body: Json) -> IngestReport:
    """An :class:`IngestReport` from an ``IngestReportPublic`` body."""
    return IngestReport(
        added=body["added"],
        updated=body["updated"],
        unchanged=body["unchanged"],
        deleted=body["deleted"],
        failed=body["failed"],
        chunks_embedded=body["chunks_embedded"],
        chunks_reused=body["chunks_reused"],
        errors=[(e["source"], e["reason"]) for e in body.get("errors", [])],
        seconds=body.get("seconds", 0.0),
        model_seconds=body.get("model_seconds", 0.0),
    )


def merge(total: IngestReport, part: IngestReport) -> None:
    """Add the counts and errors of ``part`` to ``total`` (``seconds`` is the caller's)."""
    total.added += part.added
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.deleted += part.deleted
    total.failed += part.failed
    total.chunks_embedded += part.chunks_embedded
    total.chunks_reused += part.chunks_reused
    total.errors.extend(part.errors)
    total.model_seconds += part.model_seconds


def search_result(body: Json) -> SearchResult:
    """A :class:`SearchResult` from a ``SearchHit`` body."""
    start, end = body["span"]
    explain = dict(body.get("explain") or {})
    # The library's explain always has both legs, and fused/rerank only when they apply.
    for key in ("fused", "rerank"):
        if explain.get(key) is None:
            explain.pop(key, None)
    return SearchResult(
        chunk_id=body["chunk_id"],
        document_key=body["document"],
        document_id=body["document_id"],
        version=body["version"],
        title=body["title"],
        text=body["text"],
        start=start,
        end=end,
        score=body["score"],
        heading_path=tuple(body.get("heading_path") or ()),
        page=body.get("page"),
        metadata=dict(body.get("metadata") or {}),
        highlight=body.get("highlight", ""),
        explain=explain,
    )


def memory(body: Json) -> MemoryRecord:
    """A :class:`MemoryRecord` from a ``MemoryPublic`` body."""
    return MemoryRecord(
        id=body["id"],
        tenant=NO_TENANT,
        user_id=body["user_id"],
        agent_id=body.get("agent_id"),
        content=body["content"],
        metadata=dict(body.get("metadata") or {}),
        source=body["source"],
        model_id=body["model_id"],
        created_at=body["created_at"],
        updated_at=body["updated_at"],
        deleted_at=body.get("deleted_at"),
        deduplicated=bool(body.get("deduplicated", False)),
    )


def memory_hit(body: Json) -> MemoryHit:
    """A :class:`MemoryHit` from a ``MemoryHitPublic`` body."""
    return MemoryHit(memory(body), body["score"], dict(body.get("explain") or {}))


def memory_event(body: Json) -> MemoryEvent:
    """A :class:`MemoryEvent` from a ``MemoryEventPublic`` body."""
    return MemoryEvent(
        id=body["id"],
        memory_id=body["memory_id"],
        event=body["event"],
        old_content=body.get("old_content"),
        new_content=body.get("new_content"),
        created_at=body["created_at"],
    )


def conversation(body: Json) -> Conversation:
    """A :class:`Conversation` from a ``ConversationPublic`` body."""
    return Conversation(
        id=body["id"],
        tenant=NO_TENANT,
        user_id=body["user_id"],
        title=body.get("title"),
        metadata=dict(body.get("metadata") or {}),
        created_at=body["created_at"],
        updated_at=body["updated_at"],
    )


def message(body: Json) -> Message:
    """A :class:`Message` from a ``MessagePublic`` body."""
    return Message(
        id=body["id"],
        conversation_id=body["conversation_id"],
        role=cast(Any, body["role"]),
        content=body["content"],
        metadata=dict(body.get("metadata") or {}),
        created_at=body["created_at"],
    )
