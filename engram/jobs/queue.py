"""The submitting side of the job queue: job kinds, their payloads, and queueing one."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .types import Job

if TYPE_CHECKING:  # the store imports engram.jobs.types: no import cycle at run time
    from ..store.contract import JobStore

# Ingest a batch of ``{"id", "text", "title"?, "metadata"?}`` records into ``collection``;
# payload ``{"documents": [...]}``, result the IngestReport as a dict.
INGEST_BATCH = "ingest.batch"
# Parse an uploaded file and ingest what it holds into ``collection`` (engram.jobs.files);
# payload ``{"file": {"data" (base64), "format", "key", "source"}, "key_id"}``: the raw bytes,
# so that the parser sees the file as uploaded (PDF pages, headings) and a failed job can be
# retried. Result the IngestReport as a dict, like a batch.
INGEST_FILE = "ingest.file"
# Extract memories from messages just appended (engram.memory.extract); payload
# ``{"conversation_id", "message_ids"}``, result the decisions and what each did.
EXTRACT_MEMORIES = "memory.extract"


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


def initial_progress(total: int) -> dict[str, int]:
    return {"documents_done": 0, "documents_total": total, "chunks_done": 0}


def enqueue_batch(
    store: JobStore, documents: Sequence[Mapping[str, Any]], *, collection: str, tenant: str
) -> Job:
    """Queue the ingestion of ``documents`` into ``collection``; a worker runs it."""
    return store.create_job(
        new_job_id(),
        tenant=tenant,
        kind=INGEST_BATCH,
        collection=collection,
        payload={"documents": [dict(d) for d in documents]},
        progress=initial_progress(len(documents)),
    )


def enqueue_file(
    store: JobStore,
    data: bytes,
    *,
    fmt: str,
    key: str,
    source: str,
    collection: str,
    tenant: str,
    key_id: str | None = None,
) -> Job:
    """Queue the parsing and ingestion of an uploaded file (its bytes, and ``fmt``, the
    extension that picks its parser); ``key_id`` is the API key that uploaded it (for the
    ``ingest`` event). The total of documents is only known once the file is parsed."""
    return store.create_job(
        new_job_id(),
        tenant=tenant,
        kind=INGEST_FILE,
        collection=collection,
        payload={
            "file": {
                "data": base64.b64encode(data).decode("ascii"),
                "format": fmt,
                "key": key,
                "source": source,
            },
            "key_id": key_id,
        },
        progress=initial_progress(0),
    )


def enqueue_extraction(
    store: JobStore, *, tenant: str, conversation_id: str, message_ids: Sequence[int]
) -> Job:
    """Queue the extraction of memories from these messages of a conversation."""
    return store.create_job(
        new_job_id(),
        tenant=tenant,
        kind=EXTRACT_MEMORIES,
        payload={"conversation_id": conversation_id, "message_ids": list(message_ids)},
        progress={},
    )
