"""``/v1/collections/{name}/documents``: add, list, read and delete documents."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from ...engine import Engram
from ...errors import DocumentNotFound, InvalidInput
from ...types import IngestReport
from ..deps import DB, Reader, Writer
from ..pagination import decode_cursor, encode_cursor
from ..schemas import (
    DocumentBatchCreate,
    DocumentCreate,
    DocumentDetail,
    DocumentList,
    DocumentPublic,
    DocumentVersionPublic,
    IngestReportPublic,
)
from . import error_responses

router = APIRouter(tags=["documents"])

# A document key may contain slashes (``guides/setup.md``): the route takes the rest of the path.
Key = Annotated[str, Path(description="The document key; slashes are allowed.")]

ADDED_OR_NOT = {
    200: {"model": IngestReportPublic, "description": "Nothing new: updated or unchanged."},
    **error_responses(409, 413, 422),
}


def ingest(
    db: Engram, records: list[Any], *, collection: str, tenant: str, response: Response
) -> IngestReportPublic:
    """Add records (dicts or loaded documents) and report; 201 when a document was added."""
    report: IngestReport = db.add(records, collection=collection, tenant=tenant)
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
    report = ingest(
        db, [body.to_record()], collection=name, tenant=principal.tenant, response=response
    )
    if report.failed:
        raise InvalidInput(f"document {body.id!r} was not ingested: {report.errors[0].reason}")
    return report


@router.post(
    "/collections/{name}/documents:batch",
    operation_id="createDocuments",
    status_code=201,
    responses=ADDED_OR_NOT,
)
def create_documents(
    name: str, body: DocumentBatchCreate, db: DB, principal: Writer, response: Response
) -> IngestReportPublic:
    """Add up to 1,000 documents at once. Documents that fail are listed in ``errors``; the
    others are ingested. 201 when at least one document is new, 200 otherwise."""
    records = [d.to_record() for d in body.documents]
    return ingest(db, records, collection=name, tenant=principal.tenant, response=response)


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
    offset = decode_cursor(cursor) if cursor else 0
    # One more than asked tells whether a next page exists.
    items = db.documents(
        name, limit=limit + 1, offset=offset, where=parse_where(where), tenant=principal.tenant
    )
    more = len(items) > limit
    page = items[:limit]
    return DocumentList(
        data=[DocumentPublic.model_validate(d) for d in page],
        count=len(page),
        next_cursor=encode_cursor(offset + limit if more else None),
    )


@router.get(
    "/collections/{name}/documents/{key:path}",
    operation_id="getDocument",
    responses=error_responses(404, 422),
)
def get_document(name: str, key: Key, db: DB, principal: Reader) -> DocumentDetail:
    """One document, with the history of its versions."""
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
    """Delete a document (every version) from every index."""
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
