"""What the two backends share around their SQL: rows to records, values to columns, and
the checks and assembly that do not depend on the dialect.

A backend reads a row as a sequence of values in the order of the column lists below
(:data:`MEMORY_COLS`, …) and decodes it through its :class:`Decoding`: SQLite hands over
JSON as text and timestamps as ISO text, PostgreSQL hands over jsonb values and datetimes.
Everything else here is written once, so that both backends return the same records, refuse
the same input with the same errors and order rows the same way.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..errors import InvalidInput, ModelMismatch
from ..jobs.types import Job
from ..keys import ApiKey
from ..memory.types import Conversation, MemoryEvent, MemoryRecord, MemoryScope, MemoryWrite
from ..memory.types import Message as MessageRecord
from ..types import Collection, DocumentInfo
from .records import ChunkRecord, EventWrite, normalise_query

CONVERSATION_COLS = "id, tenant, user_id, title, metadata, created_at, updated_at"
MESSAGE_COLS = "id, conversation_id, role, content, metadata, created_at, speaker"
MEMORY_COLS = (
    "id, tenant, user_id, agent_id, content, metadata, source, model_id,"
    " created_at, updated_at, deleted_at"
)
HISTORY_COLS = "id, memory_id, event, old_content, new_content, created_at, source"
# Every tenant's embedding models (Store.embedding_models; PostgreSQL: as the system tenant).
EMBEDDING_MODELS_SQL = "SELECT DISTINCT model_id FROM collections ORDER BY model_id"

JOB_COLS = (
    "id, tenant, kind, collection, status, progress, result, error, attempts,"
    " created_at, updated_at, started_at, finished_at"
)
KEY_COLS = "id, tenant, name, scopes, created_at, revoked_at, last_used_at, user_id"
# The most ids one ``IN (…)`` list carries (SQLite's default bound on parameters is 999).
ID_BATCH = 500


@dataclass(frozen=True)
class Decoding:
    """How a backend's driver hands over JSON columns and timestamps."""

    json: Callable[[Any], Any]
    # A timestamp column as ISO 8601 text (None stays None); ``seconds`` for the columns
    # the contract reports to the second (collections, documents, API keys).
    time: Callable[[Any, bool], str | None]


def required(text: str | None) -> str:
    assert text is not None  # NOT NULL columns
    return text


def required_row(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    assert row is not None  # INSERT/UPDATE … RETURNING of a row known to exist
    return row


def conversation(r: Sequence[Any], d: Decoding) -> Conversation:
    return Conversation(
        r[0],
        r[1],
        r[2],
        r[3],
        d.json(r[4]),
        required(d.time(r[5], False)),
        required(d.time(r[6], False)),
    )


def message(r: Sequence[Any], d: Decoding) -> MessageRecord:
    return MessageRecord(r[0], r[1], r[2], r[3], d.json(r[4]), required(d.time(r[5], False)), r[6])


def memory(r: Sequence[Any], d: Decoding) -> MemoryRecord:
    return MemoryRecord(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        d.json(r[5]),
        r[6],
        r[7],
        required(d.time(r[8], False)),
        required(d.time(r[9], False)),
        d.time(r[10], False),
    )


def memory_event(r: Sequence[Any], d: Decoding) -> MemoryEvent:
    return MemoryEvent(r[0], r[1], r[2], r[3], r[4], required(d.time(r[5], False)), r[6])


def job(r: Sequence[Any], d: Decoding, payload: Any = None) -> Job:
    """A job from a row of :data:`JOB_COLS`; ``payload`` (the raw column) when claimed."""
    return Job(
        id=r[0],
        tenant=r[1],
        kind=r[2],
        collection=r[3],
        status=r[4],
        progress=d.json(r[5]),
        result=d.json(r[6]) if r[6] is not None else None,
        error=r[7],
        attempts=r[8],
        created_at=required(d.time(r[9], False)),
        updated_at=required(d.time(r[10], False)),
        started_at=d.time(r[11], False),
        finished_at=d.time(r[12], False),
        payload=d.json(payload) if payload is not None else None,
    )


def api_key(r: Sequence[Any], d: Decoding) -> ApiKey:
    return ApiKey(
        r[0],
        r[1],
        r[2],
        tuple(d.json(r[3])),
        required(d.time(r[4], True)),
        d.time(r[5], True),
        d.time(r[6], True),
        r[7],
    )


def collection(r: Sequence[Any], d: Decoding) -> Collection:
    """A collection from (id, tenant, name, model_id, dimension, language, settings,
    created_at, document_count, chunk_count)."""
    return Collection(
        id=r[0],
        tenant=r[1],
        name=r[2],
        model_id=r[3],
        dimension=r[4],
        language=r[5],
        settings=d.json(r[6]),
        created_at=required(d.time(r[7], True)),
        document_count=r[8],
        chunk_count=r[9],
    )


def document(coll: Collection, r: Sequence[Any], d: Decoding) -> DocumentInfo:
    """A document from (id, key, title, version, content_hash, metadata, source,
    chunk_count, created_at, updated_at)."""
    return DocumentInfo(
        id=r[0],
        collection=coll.name,
        key=r[1],
        title=r[2],
        version=r[3],
        content_hash=r[4],
        metadata=d.json(r[5]),
        source=r[6],
        chunk_count=r[7],
        created_at=required(d.time(r[8], True)),
        updated_at=required(d.time(r[9], True)),
    )


def chunk(r: Sequence[Any], d: Decoding) -> ChunkRecord:
    """A chunk from (id, document_id, key, version, title, text, start_char, end_char, page,
    heading_path, metadata), the last two from JSON columns."""
    return ChunkRecord(
        id=r[0],
        document_id=r[1],
        document_key=r[2],
        version=r[3],
        title=r[4],
        text=r[5],
        start=r[6],
        end=r[7],
        page=r[8],
        heading_path=tuple(d.json(r[9])),
        metadata=d.json(r[10]),
    )


# -- values to columns --------------------------------------------------------------------------
_clock_lock = threading.Lock()
_last_time = datetime.min.replace(tzinfo=UTC)


def monotonic_now() -> datetime:
    """The current UTC time, strictly increasing (by at least 1 µs) within this process:
    conversations and memories are ordered by these timestamps, and two calls within one
    tick of a coarse system clock must not tie."""
    global _last_time
    with _clock_lock:
        _last_time = max(datetime.now(UTC), _last_time + timedelta(microseconds=1))
        return _last_time


def metadata_json(metadata: dict[str, Any] | None) -> str:
    """Metadata as JSON text with sorted keys; refused when it is not JSON (NaN included,
    which PostgreSQL's jsonb cannot hold)."""
    try:
        return json.dumps(metadata or {}, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata is not JSON-serialisable: {exc}") from exc


def event_values(e: EventWrite, created_at: Any) -> tuple[Any, ...]:
    """The columns of an ``events`` row: (tenant, kind, user_id, key_id, query,
    result_count, latency_ms, data, created_at), the query normalised for counting."""
    data = json.dumps(e.data, ensure_ascii=False, sort_keys=True, default=str)
    return (
        e.tenant,
        e.kind,
        e.user_id,
        e.key_id,
        normalise_query(e.query),
        e.result_count,
        e.latency_ms,
        data,
        created_at,
    )


def outbox_values(e: EventWrite, created_at: Any, timestamp: str) -> tuple[Any, ...]:
    """The columns of an ``event_outbox`` row (tenant, user_id, payload, created_at): the
    event as it will be forwarded, under a uuid of its own that the endpoint deduplicates on."""
    payload = {
        "uuid": str(uuid.uuid4()),
        "kind": e.kind,
        "user_id": e.user_id,
        "key_id": e.key_id,
        "query": normalise_query(e.query),
        "result_count": e.result_count,
        "latency_ms": e.latency_ms,
        "data": e.data,
        "timestamp": timestamp,
    }
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    return (e.tenant, e.user_id, text, created_at)


def job_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"job data is not JSON-serialisable: {exc}") from exc


def memory_embedding(write: MemoryWrite) -> np.ndarray:
    """The memory's vector as float32, refused unless it is one vector of finite numbers."""
    vec = np.asarray(write.embedding, dtype=np.float32)
    if vec.ndim != 1 or not len(vec):
        raise InvalidInput(f"a memory's embedding must be one vector, not shape {vec.shape}")
    if not np.all(np.isfinite(vec)):
        raise InvalidInput("a memory's embedding must contain finite numbers only")
    return vec


def scope_condition(scope: MemoryScope, mark: str) -> tuple[str, list[Any]]:
    """WHERE condition (over ``memories``) selecting the memories of ``scope``; ``mark`` is
    the driver's placeholder (``?`` or ``%s``)."""
    cond, params = f"tenant = {mark} AND user_id = {mark}", [scope.tenant, scope.user_id]
    if scope.agent_id is not None:
        cond += f" AND agent_id = {mark}"
        params.append(scope.agent_id)
    elif scope.exact_agent:
        cond += " AND agent_id IS NULL"
    return cond, params


def refuse_other_models(scope: MemoryScope, found: Sequence[str], model_id: str) -> None:
    """ModelMismatch when a user's memories were embedded with another model than the
    configured one: their vectors and the query's are not comparable."""
    others = sorted({m for m in found if m != model_id})
    if others:
        raise ModelMismatch(
            f"memories of user {scope.user_id!r} were embedded with {others[0]!r};"
            f" the configured embedding model is {model_id!r}",
            hint=f"open engram with embedding_model={others[0]!r} (ENGRAM_EMBEDDING_MODEL)",
        )


def user_export(
    tenant: str,
    user_id: str,
    exported_at: str,
    conversations: Sequence[Conversation],
    messages: Sequence[MessageRecord],
    memories: Sequence[MemoryRecord],
    history: Sequence[MemoryEvent],
) -> dict[str, Any]:
    """Everything a user owns as one JSON-able dict (``export_user``)."""
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_conversation.setdefault(m.conversation_id, []).append(m.to_dict())
    by_memory: dict[str, list[dict[str, Any]]] = {}
    for e in history:
        by_memory.setdefault(e.memory_id, []).append(e.to_dict())
    return {
        "tenant": tenant,
        "user_id": user_id,
        "exported_at": exported_at,
        "conversations": [
            {**c.to_dict(), "messages": by_conversation.get(c.id, [])} for c in conversations
        ],
        "memories": [
            {
                **{k: v for k, v in m.to_dict().items() if k != "deduplicated"},
                "history": by_memory.get(m.id, []),
            }
            for m in memories
        ],
    }


def feedback_counts(ratings: Sequence[tuple[Any, Any]]) -> dict[str, int]:
    """{"up", "down"} from (rating property, count) rows of ``feedback`` events (thumbs on
    answers); other ratings are not counted."""
    counts = {"up": 0, "down": 0}
    for rating, n in ratings:
        if rating in counts:
            counts[rating] += int(n)
    return counts
