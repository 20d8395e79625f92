"""``/v1/collections/{name}/documents``: add, list, read and delete documents.

A batch of more than :data:`ASYNC_THRESHOLD` documents (or any batch with ``?async=true``) is
not ingested during the request: it is queued as a background job (:mod:`engram.jobs`) and
the answer is 202 with the job and a ``Location: /v1/jobs/{id}`` to poll. ``?async=false``
keeps even a large batch synchronous.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from ...engine import Engram
from ...errors import DocumentNotFound, InvalidInput
from ...jobs import enqueue_batch
from ...types import IngestReport
from ..deps import DB, Reader, Writer
from ..observability import observe_ingest
from ..pagination import fetch_page
from ..schemas import (
    DocumentBatchCreate,
    DocumentCreate,
    DocumentDetail,
    DocumentList,
    DocumentPublic,
    DocumentVersionPublic,
    IngestReportPublic,
    JobPublic,
    error_responses,
)

router = APIRouter(tags=["documents"])

# A document key may contain slashes (``guides/setup.md``): the route takes the rest of the path.
Key = Annotated[str, Path(description="The document key; slashes are allowed.")]

ADDED_OR_NOT = {
    200: {"model": IngestReportPublic, "description": "Nothing new: updated or unchanged."},
    **error_responses(409, 413, 422),
}

# Batches larger than this run as a background job (202 + a job to poll) unless the caller
# passes async=false: ingesting them can take longer than clients and proxies wait for.
ASYNC_THRESHOLD = 100


def ingest(
    db: Engram, records: list[Any], *, collection: str, tenant: str, response: Response
) -> IngestReportPublic:
    """Add records (dicts or loaded documents) and report; 201 when a document was added."""
    report: IngestReport = db.add(records, collection=collection, tenant=tenant)
    observe_ingest(report, tenant=tenant, collection=collection)
    response.status_code = 201 if report.added else 200
    return IngestReportPublic.of(report)


@router.post(
    "/collections/{name}/documents",
    operation_id="createDocument",
    status_code=201,
    responses=ADDED_OR_NOT,
)
def create_document(
    name: str, body: DocumentCreate, db: DB, principal: Writer, response: Response
) -> IngestReportPublic:
    """Add one document, or a new version of it when its content changed.

    Creates the collection on first use. 201 when the document is new, 200 otherwise.
    """
    report = add_one(db, body.to_record(), collection=name, tenant=principal.tenant)
    response.status_code = 201 if report.added else 200
    return IngestReportPublic.of(report)


def add_one(db: Engram, record: dict[str, Any], *, collection: str, tenant: str) -> IngestReport:
    """Add one document record (``{"id", "text", "title"?, "metadata"?}``) and report;
    InvalidInput when it was not ingested (shared with the MCP tools)."""
    report: IngestReport = db.add([record], collection=collection, tenant=tenant)
    observe_ingest(report, tenant=tenant, collection=collection)
    if report.failed:
        reason = report.errors[0][1]
        raise InvalidInput(f"document {record['id']!r} was not ingested: {reason}")
    return report


@router.post(
    "/collections/{name}/documents:batch",
    operation_id="createDocuments",
    status_code=201,
    response_model=IngestReportPublic,
    responses={
        **ADDED_OR_NOT,
        202: {
            "model": JobPublic,
            "description": "Queued as a background job: poll the Location header (/v1/jobs/{id}).",
        },
    },
)
def create_documents(
    name: str,
    body: DocumentBatchCreate,
    db: DB,
    principal: Writer,
    request: Request,
    response: Response,
    run_async: Annotated[
        bool | None,
        Query(
            alias="async",
            description=f"Run as a background job (202). Default: only batches of more than"
            f" {ASYNC_THRESHOLD} documents.",
        ),
    ] = None,
) -> IngestReportPublic | JSONResponse:
    """Add up to 1,000 documents at once. Documents that fail are listed in ``errors``; the
    others are ingested. 201 when at least one document is new, 200 otherwise; 202 with a job
    when the batch runs in the background (large batches, or ``async=true``)."""
    records = [d.to_record() for d in body.documents]
    if run_async is None:
        run_async = len(records) > ASYNC_THRESHOLD
    if not run_async:
        return ingest(db, records, collection=name, tenant=principal.tenant, response=response)
    job = enqueue_batch(db.store, records, collection=name, tenant=principal.tenant)
    worker = getattr(request.app.state, "jobs", None)
    if worker is not None:
        worker.wake()
    return JSONResponse(
        JobPublic.of(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


@router.get(
    "/collections/{name}/documents",
    operation_id="listDocuments",
    responses=error_responses(404, 422),
)
def list_documents(
    name: str,
    db: DB,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    where: Annotated[
        str | None,
        Query(description='Metadata filter as JSON, e.g. {"year": {"$gte": 2020}}.'),
    ] = None,
) -> DocumentList:
    """The documents of a collection, in key order, a page at a time."""
    filters = parse_where(where)
    page, next_cursor = fetch_page(
        lambda n, offset: db.documents(
            name, limit=n, offset=offset, where=filters, tenant=principal.tenant
        ),
        cursor,
        limit,
    )
    return DocumentList(
        data=[DocumentPublic.model_validate(d) for d in page],
        count=len(page),
        next_cursor=next_cursor,
    )


@router.get(
    "/collections/{name}/documents/{key:path}",
    operation_id="getDocument",
    responses=error_responses(404, 422),
)
def get_document(name: str, key: Key, db: DB, principal: Reader) -> DocumentDetail:
    """One document, with the versions it keeps (read one with
    ``…/documents/{key}/versions/{version}``, compare two with ``…/documents/{key}/diff``,
    restore one with ``POST …/documents/{key}/versions/{version}:restore``)."""
    info = db.document(key, collection=name, tenant=principal.tenant)
    versions = db.versions(key, collection=name, tenant=principal.tenant)
    return DocumentDetail(
        **DocumentPublic.model_validate(info).model_dump(),
        versions=[DocumentVersionPublic.model_validate(v) for v in versions],
    )


@router.delete(
    "/collections/{name}/documents/{key:path}",
    operation_id="deleteDocument",
    status_code=204,
    responses=error_responses(404, 422),
)
def delete_document(name: str, key: Key, db: DB, principal: Writer) -> None:
    """Delete a document completely: every version, its kept texts, its chunks in every
    index, and the cached vectors nothing else uses."""
    if not db.delete([key], collection=name, tenant=principal.tenant):
        raise DocumentNotFound(
            f"no document {key!r} in collection {name!r}",
            hint=f"list the collection's documents: GET /v1/collections/{name}/documents",
        )


def parse_where(raw: str | None) -> dict[str, Any] | None:
    """The ``where`` query parameter: a JSON object, or absent."""
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"where is not valid JSON: {exc.msg} at position {exc.pos}",
            hint='pass a JSON object, e.g. where={"year": {"$gte": 2020}}',
        ) from exc
    if not isinstance(value, dict):
        raise InvalidInput("where must be a JSON object", hint='e.g. where={"team": "hr"}')
    return value
