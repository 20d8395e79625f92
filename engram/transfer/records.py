"""Records of the export format <-> the store's dump types (one JSON object per line).

``*_line`` give the JSON object of a record (sorted-key encoding is :func:`format.dumps`);
``*_from`` parse one back, with errors that name the file and line.
"""

from __future__ import annotations

from typing import Any, cast

from ..errors import InvalidInput
from ..memory.types import (
    ROLES,
    Conversation,
    HistoryEvent,
    MemoryEvent,
    MemoryRecord,
    Message,
    Role,
)
from ..store.records import (
    ChunkWrite,
    ConversationDump,
    DocumentDump,
    DocumentVersion,
    EventWrite,
    MemoryDump,
    StoredVersion,
    VersionChunk,
)
from .format import Line, vector_b64, vector_from_b64


def document_line(doc: DocumentDump) -> dict[str, Any]:
    return {
        "key": doc.key,
        "title": doc.title,
        "version": doc.version,
        "content_hash": doc.content_hash,
        "metadata": doc.metadata,
        "source": doc.source,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
        "versions": [_version_line(doc, v) for v in doc.versions],
    }


def _version_line(doc: DocumentDump, v: DocumentVersion) -> dict[str, Any]:
    """One entry of a document's history, with the content kept of that version (its text,
    null when only its chunks hold it, title, metadata, source and chunk spans)."""
    line: dict[str, Any] = {
        "version": v.version,
        "content_hash": v.content_hash,
        "chunk_count": v.chunk_count,
        "created_at": v.created_at,
    }
    kept = doc.kept.get(v.version)
    if kept is not None:
        line["kept"] = {
            "title": kept.title,
            "metadata": kept.metadata,
            "source": kept.source,
            "text": kept.text,
            "restored_from": kept.restored_from,
            "chunks": [
                {
                    "ordinal": c.ordinal,
                    "start": c.start,
                    "end": c.end,
                    "page": c.page,
                    "heading_path": list(c.heading_path),
                    "text_hash": c.text_hash,
                }
                for c in kept.chunks
            ],
        }
    return line


def chunk_line(doc: DocumentDump, chunk: ChunkWrite) -> dict[str, Any]:
    return {
        "document": doc.key,
        "version": doc.version,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "page": chunk.page,
        "heading_path": list(chunk.heading_path),
        "text_hash": chunk.text_hash,
        "terms": chunk.terms,
    }


def conversation_line(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "user_id": c.user_id,
        "title": c.title,
        "metadata": c.metadata,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def message_line(m: Message) -> dict[str, Any]:
    return {
        "conversation_id": m.conversation_id,
        "role": m.role,
        "content": m.content,
        "metadata": m.metadata,
        "created_at": m.created_at,
    }


def memory_line(d: MemoryDump) -> dict[str, Any]:
    m = d.record
    return {
        "id": m.id,
        "user_id": m.user_id,
        "agent_id": m.agent_id,
        "content": m.content,
        "content_hash": d.content_hash,
        "metadata": m.metadata,
        "source": m.source,
        "model_id": m.model_id,
        "embedding": vector_b64(d.embedding),
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "deleted_at": m.deleted_at,
    }


def history_line(h: MemoryEvent) -> dict[str, Any]:
    return {
        "memory_id": h.memory_id,
        "event": h.event,
        "old_content": h.old_content,
        "new_content": h.new_content,
        "created_at": h.created_at,
        "source": h.source,
    }


def event_line(e: EventWrite) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "user_id": e.user_id,
        "key_id": e.key_id,
        "query": e.query,
        "result_count": e.result_count,
        "latency_ms": e.latency_ms,
        "data": e.data,
        "created_at": e.created_at,
    }


def document_from(line: Line, chunks: list[Line]) -> DocumentDump:
    versions = []
    kept: dict[int, StoredVersion] = {}
    for v in line.array("versions"):
        item = Line(line.where, v if isinstance(v, dict) else {})
        content = item.value.get("kept")
        version = item.integer("version")
        if isinstance(content, dict):
            kept[version] = _kept_from(Line(line.where, content), line.text("key"), version, item)
        versions.append(
            DocumentVersion(
                version,
                item.text("content_hash"),
                item.integer("chunk_count"),
                item.text("created_at"),
                kept=version in kept,
                restored_from=kept[version].restored_from if version in kept else None,
            )
        )
    doc = DocumentDump(
        key=line.text("key"),
        title=line.text("title"),
        version=line.integer("version"),
        content_hash=line.text("content_hash"),
        metadata=line.mapping("metadata"),
        source=line.text("source"),
        created_at=line.text("created_at"),
        updated_at=line.text("updated_at"),
        versions=versions,
        chunks=[],
        kept=kept,
    )
    for c in chunks:
        if c.integer("version") != doc.version:
            raise InvalidInput(
                f"{c.where}: chunk of version {c.integer('version')}, but document {doc.key!r}"
                f" is at version {doc.version}"
            )
        heading = c.array("heading_path")
        if not all(isinstance(h, str) for h in heading):
            raise InvalidInput(f"{c.where}: heading_path must be a list of strings")
        doc.chunks.append(
            ChunkWrite(
                ordinal=c.integer("ordinal"),
                text=c.text("text"),
                start=c.integer("start"),
                end=c.integer("end"),
                text_hash=c.text("text_hash"),
                terms=c.text("terms"),
                page=c.opt_integer("page"),
                heading_path=tuple(heading),
            )
        )
    return doc


def _kept_from(content: Line, key: str, version: int, item: Line) -> StoredVersion:
    chunks = []
    for c in content.array("chunks"):
        chunk = Line(content.where, c if isinstance(c, dict) else {})
        heading = chunk.array("heading_path")
        if not all(isinstance(h, str) for h in heading):
            raise InvalidInput(f"{content.where}: heading_path must be a list of strings")
        chunks.append(
            VersionChunk(
                ordinal=chunk.integer("ordinal"),
                start=chunk.integer("start"),
                end=chunk.integer("end"),
                text_hash=chunk.text("text_hash"),
                page=chunk.opt_integer("page"),
                heading_path=tuple(heading),
            )
        )
    return StoredVersion(
        key=key,
        version=version,
        current=False,
        content_hash=item.text("content_hash"),
        created_at=item.text("created_at"),
        title=content.text("title"),
        metadata=content.mapping("metadata"),
        source=content.text("source"),
        text=content.opt_text("text"),
        chunks=chunks,
        restored_from=content.opt_integer("restored_from"),
    )


def conversation_from(tenant: str, line: Line, messages: list[Line]) -> ConversationDump:
    conversation = Conversation(
        id=line.text("id"),
        tenant=tenant,
        user_id=line.text("user_id"),
        title=line.opt_text("title"),
        metadata=line.mapping("metadata"),
        created_at=line.text("created_at"),
        updated_at=line.text("updated_at"),
    )
    items = []
    for m in messages:
        role = m.text("role")
        if role not in ROLES:
            raise InvalidInput(f"{m.where}: unknown message role {role!r}")
        items.append(
            Message(
                0,
                conversation.id,
                cast(Role, role),
                m.text("content"),
                m.mapping("metadata"),
                m.text("created_at"),
                m.opt_text("speaker"),
            )
        )
    return ConversationDump(conversation, items)


def memory_from(tenant: str, line: Line, history: list[Line]) -> MemoryDump:
    record = MemoryRecord(
        id=line.text("id"),
        tenant=tenant,
        user_id=line.text("user_id"),
        agent_id=line.opt_text("agent_id"),
        content=line.text("content"),
        metadata=line.mapping("metadata"),
        source=line.text("source"),
        model_id=line.text("model_id"),
        created_at=line.text("created_at"),
        updated_at=line.text("updated_at"),
        deleted_at=line.opt_text("deleted_at"),
    )
    vector = vector_from_b64(line.value.get("embedding"), None, line.where)
    events = []
    for h in history:
        event = h.text("event")
        if event not in ("add", "update", "delete", "merge"):
            raise InvalidInput(f"{h.where}: unknown memory history event {event!r}")
        events.append(
            MemoryEvent(
                0,
                record.id,
                cast(HistoryEvent, event),
                h.opt_text("old_content"),
                h.opt_text("new_content"),
                h.text("created_at"),
                h.opt_text("source"),
            )
        )
    return MemoryDump(record, line.text("content_hash"), vector.tobytes(), events)


def event_from(tenant: str, line: Line) -> EventWrite:
    return EventWrite(
        tenant,
        line.text("kind"),
        user_id=line.opt_text("user_id"),
        key_id=line.opt_text("key_id"),
        query=line.opt_text("query"),
        result_count=line.opt_integer("result_count"),
        latency_ms=line.opt_float("latency_ms"),
        data=line.mapping("data"),
        created_at=line.text("created_at"),
    )
