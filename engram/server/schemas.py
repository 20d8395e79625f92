"""Request and response bodies of the HTTP API, in families per resource.

``XCreate`` is what a client sends, ``XPublic`` what it gets back; lists are
``{data, count, next_cursor}`` where ``count`` is the length of ``data`` and ``next_cursor``
(opaque) fetches the next page, or is ``null`` on the last one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..jobs.types import Job, JobStatus
from ..search.multi import MAX_COLLECTIONS
from ..search.searcher import MAX_K
from ..types import IngestReport, SearchResult
from .schemas_base import RequestModel

MAX_BATCH = 1000
MAX_QUERY_CHARS = 4096
MAX_SEARCH_OFFSET = 10_000  # deeper pages cost a search this many candidates deep
Weight = Annotated[float, Field(ge=0.0, le=1.0)]  # a leg weight


_Request = RequestModel  # refuses unknown fields and text that is not valid Unicode


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- errors ----------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable name, e.g. collection_not_found.")
    message: str = Field(description="What went wrong, for a human.")
    hint: str | None = Field(None, description="How to fix it, when known.")
    details: dict[str, Any] | None = Field(None, description="Structured context.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error responses: all of them have the one error shape. It stands
    by the shape rather than in engram.server.routes, which imports the route modules that
    use it."""
    return {status: {"model": ErrorResponse} for status in statuses}


# -- collections -----------------------------------------------------------------------------
class CollectionPublic(_Public):
    name: str
    model_id: str = Field(description="Embedding model the collection's vectors come from.")
    dimension: int
    language: str = Field(description="Keyword-analysis language (stemming, stopwords).")
    settings: dict[str, Any]
    created_at: str
    document_count: int
    chunk_count: int


class CollectionCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/]+$")
    language: Literal["en", "fr", "none"] | None = Field(
        None, description="Keyword analysis; default ENGRAM_LANGUAGE (needed when that is auto)."
    )
    model: str | None = Field(
        None,
        max_length=200,
        description="Embedding model of its vectors: a known model (bge-small-en-v1.5, "
        "multilingual-e5-small) or one the server is configured with; default the language's "
        "(ENGRAM_MULTILINGUAL_MODEL for fr, ENGRAM_EMBEDDING_MODEL for en and none).",
    )
    fusion: Literal["dbsf", "minmax", "rrf"] | None = Field(
        None, description="Hybrid fusion of this collection; default ENGRAM_FUSION."
    )
    fusion_alpha: Weight | Literal["auto"] | None = Field(
        None,
        description="Vector leg weight of this collection's hybrid fusion (0 to 1), or "
        "'auto' (by each query's length and language); default ENGRAM_FUSION_ALPHA.",
    )
    keep_versions: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="Versions of each document to keep (0: all); default ENGRAM_KEEP_VERSIONS.",
    )


class CollectionList(BaseModel):
    data: list[CollectionPublic]
    count: int
    next_cursor: str | None = None


# -- documents -------------------------------------------------------------------------------
class DocumentCreate(_Request):
    id: str = Field(min_length=1, max_length=1024, description="Key, unique in the collection.")
    text: str = Field(min_length=1)
    title: str | None = None
    metadata: dict[str, Any] | None = Field(None, description="Filterable with `where`.")

    def to_record(self) -> dict[str, Any]:
        """The record ``Engram.add`` takes."""
        return self.model_dump(exclude_none=True)


class DocumentBatchCreate(_Request):
    documents: list[DocumentCreate] = Field(min_length=1, max_length=MAX_BATCH)


class DocumentPublic(_Public):
    key: str
    collection: str
    title: str
    version: int = Field(description="1 for the first ingest, +1 at each content change.")
    content_hash: str
    metadata: dict[str, Any]
    source: str
    chunk_count: int
    created_at: str
    updated_at: str


class DocumentVersionPublic(_Public):
    version: int
    content_hash: str
    chunk_count: int
    created_at: str
    kept: bool = Field(
        description="Its content is kept: readable (…/versions/{version}), comparable and "
        "restorable. False for versions written before engram kept texts."
    )
    restored_from: int | None = Field(None, description="The version this one restored.")


class DocumentDetail(DocumentPublic):
    versions: list[DocumentVersionPublic] = Field(
        description="The versions kept (ENGRAM_KEEP_VERSIONS, the collection's keep_versions"
        " and purges drop old ones), oldest first."
    )


class DocumentList(BaseModel):
    data: list[DocumentPublic]
    count: int
    next_cursor: str | None


class IngestErrorPublic(BaseModel):
    source: str
    reason: str


class IngestReportPublic(BaseModel):
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    chunks_embedded: int
    chunks_reused: int
    errors: list[IngestErrorPublic]
    seconds: float
    model_seconds: float

    @classmethod
    def of(cls, report: IngestReport) -> IngestReportPublic:
        """The public form of an engine report."""
        return cls.model_validate(report.to_dict())


# -- jobs ------------------------------------------------------------------------------------
class JobProgress(BaseModel):
    documents_done: int = Field(description="Documents written or found unchanged so far.")
    documents_total: int
    chunks_done: int = Field(description="Chunks written so far.")


class JobPublic(BaseModel):
    """A background job: a large batch or an uploaded file being ingested. Poll it until its status is
    ``succeeded`` (``result`` holds the ingestion report) or ``failed`` (see ``error``)."""

    job_id: str
    kind: str = Field(
        description="What the job does: ingest.batch, ingest.file (an uploaded file parsed"
        " and ingested), memory.extract."
    )
    collection: str | None
    status: JobStatus
    progress: JobProgress
    attempts: int = Field(description="Runs started so far; failed runs are retried.")
    error: str | None = Field(
        description="Why the job failed, or why the last run failed while it is retried."
    )
    errors: list[IngestErrorPublic] = Field(
        description="Documents that could not be ingested (the job itself still succeeds)."
    )
    result: IngestReportPublic | None = Field(description="The report, once succeeded.")
    created_at: str
    updated_at: str = Field(description="Last change; refreshed while the job runs.")
    started_at: str | None = Field(description="When the first run started.")
    finished_at: str | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        """The public form of a stored job."""
        result = IngestReportPublic.model_validate(job.result) if job.result else None
        return cls(
            job_id=job.id,
            kind=job.kind,
            collection=job.collection,
            status=job.status,
            progress=JobProgress.model_validate(
                {"documents_done": 0, "documents_total": 0, "chunks_done": 0, **job.progress}
            ),
            attempts=job.attempts,
            error=job.error,
            errors=result.errors if result else [],
            result=result,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobList(BaseModel):
    data: list[JobPublic]
    count: int
    next_cursor: str | None


# -- search ----------------------------------------------------------------------------------
# A collection, several (one ranking across them), or "*": every collection of the tenant.
CollectionNames = (
    Annotated[str, Field(min_length=1, max_length=200)]
    | Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]],
        Field(min_length=1, max_length=MAX_COLLECTIONS),
    ]
)
COLLECTIONS_HELP = (
    'A collection, a list of them (one ranking across them: each hit names its collection) or "*" '
    "for every collection of the caller's tenant."
)


class SearchRequest(_Request):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    collection: CollectionNames = Field(
        "default", description=COLLECTIONS_HELP, examples=["kb", ["kb", "faq"], "*"]
    )
    k: int = Field(10, ge=1, le=MAX_K, description="Results per page.")
    offset: int = Field(0, ge=0, le=MAX_SEARCH_OFFSET, description="Results to skip.")
    cursor: str | None = Field(
        None, description="next_cursor of a previous response: the next page (replaces offset)."
    )
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid"
    where: dict[str, Any] | None = Field(
        None,
        description='Metadata filter, e.g. {"year": {"$gte": 2020}, "lang": {"$in": ["en"]}}.',
        examples=[{"team": "hr"}],
    )
    rerank: bool = Field(False, description="Rescore the top results with the cross-encoder.")
    rerank_weight: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="With rerank: the cross-encoder's share of the order, 0 (fused order) to 1 "
        "(the model alone); default ENGRAM_RERANK_WEIGHT.",
    )
    highlight: bool = Field(True, description="Mark query terms in each result's highlight.")
    fusion: Literal["dbsf", "minmax", "rrf"] | None = Field(
        None,
        description="How the keyword and vector legs are fused for this (hybrid) search; "
        "default: the collection's (ENGRAM_FUSION unless the collection was created with one).",
    )
    alpha: Weight | Literal["auto"] | None = Field(
        None,
        description="The vector leg's weight in the fusion, 0 (keyword only) to 1 (vector "
        "only), or 'auto' (chosen by the query's length and language); default: the collection's "
        "(ENGRAM_FUSION_ALPHA unless set at creation).",
    )
    group_by: Literal["document"] | None = Field(
        None,
        description='"document": one hit per document, its best chunk, with more_chunks '
        "counting its other ranked chunks; k and offset count documents.",
    )


class LegScore(BaseModel):
    rank: int = Field(description="1-based rank in this leg.")
    score: float


class FusedScore(BaseModel):
    method: str
    alpha: float = Field(description="The vector leg's weight (0: keyword only, 1: vector only).")
    alpha_from: str = Field(
        "fixed", description="'fixed' (set), or 'auto: N query words' (chosen by the rule)."
    )
    score: float


class RerankScore(BaseModel):
    model_score: float = Field(description="The cross-encoder's raw score (higher: more relevant).")
    model_rank: int = Field(description="1-based rank among the rescored candidates, by the model.")
    fused_rank: int = Field(description="1-based rank before reranking.")
    weight: float = Field(description="The model's share w of the blend.")
    score: float = Field(
        description="w × model score + (1 - w) × fused score, each min-max normalised over the "
        "rescored candidates: the order, and the hit's score."
    )


class Explain(BaseModel):
    keyword: LegScore | None = None
    vector: LegScore | None = None
    fused: FusedScore | None = None
    rerank: RerankScore | None = None


class SearchHit(BaseModel):
    chunk_id: int
    collection: str = Field(description="The collection the chunk is in.")
    document: str = Field(description="Key of the document the chunk belongs to.")
    document_id: int
    version: int
    title: str
    text: str
    span: tuple[int, int] = Field(description="[start, end) character offsets in the document.")
    page: int | None
    heading_path: list[str]
    score: float
    metadata: dict[str, Any]
    highlight: str
    explain: Explain
    more_chunks: int | None = Field(
        None, description='group_by "document": how many more of its chunks ranked.'
    )

    @classmethod
    def of(cls, result: SearchResult) -> SearchHit:
        """The public form of an engine result."""
        return cls.model_validate(result.to_dict())


class SearchResponse(BaseModel):
    data: list[SearchHit]
    count: int
    next_cursor: str | None
    mode: Literal["hybrid", "keyword", "vector"]
    timings_ms: dict[str, float]
    expansions: dict[str, list[str]] = Field(
        description="Query words absent from the index and the close spellings searched instead."
    )


class SuggestionPublic(BaseModel):
    text: str = Field(description="The completed text, as it would be searched.")
    source: Literal["query", "title", "term"] = Field(
        description="query: a past search of the collection that returned results; title: a"
        " document title; term: the last word completed from the collection's words."
    )
    count: int = Field(
        description="The source's frequency: times asked, documents with the title, or chunks"
        " holding the word."
    )


class SuggestResponse(BaseModel):
    data: list[SuggestionPublic]
    count: int


# -- health ----------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    status: Literal["ok", "warning", "error", "not_configured"] = Field(
        description="warning: works, but needs attention (see hint)."
    )
    latency_ms: float
    error: str | None = None
    hint: str | None = Field(default=None, description="How to fix an error or a warning.")
    details: dict[str, Any] | None = Field(
        default=None, description="What the check found (PostgreSQL: versions, role, pool usage)."
    )


class Readiness(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        "ok",
        description="degraded: an optional dependency (reranker, LLM, Redis) failed, or a"
        " check warns (e.g. row-level security does not apply to the database role).",
    )
    checks: dict[str, CheckResult]


# -- answers ---------------------------------------------------------------------------------
class CitationPublic(BaseModel):
    n: int
    kind: Literal["document", "conversation", "memory"] = Field(
        "document",
        description="document: a passage of the collection (document = its key); "
        "conversation: a turn of the user's earlier conversations (document = the "
        "conversation id, message_id = the turn); memory: a memory of the user (document = "
        "the memory id)",
    )
    document: str
    version: int
    span: list[int]
    title: str
    page: int | None = None
    message_id: int | None = None
    collection: str | None = Field(
        None, description="document: the collection the passage is in (else null)."
    )
