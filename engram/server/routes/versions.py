"""``/v1/collections/{name}/documents/{key}/versions/…`` and ``…/diff``: read, compare and
restore the versions a document keeps; ``/v1/collections/{name}/versions:purge`` drops old
ones.

A document key may contain slashes, so these routes are matched before the plain document
routes (engram.server.routes), and a key that itself ends in ``/diff`` or ``/versions/<n>``
keeps its meaning: when the whole path is the key of a document, a GET reads that document,
as it did before these routes existed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from ...errors import DocumentNotFound
from ..deps import DB, Reader, Writer
from ..schemas import DocumentPublic, error_responses
from ..schemas_versions import (
    DocumentDiff,
    DocumentVersionDetail,
    VersionPurge,
    VersionPurgeResult,
)
from .documents import Key, get_document

router = APIRouter(tags=["documents"])

Version = Annotated[int, Path(ge=1, description="A version number (see the document's versions).")]


def _whole_key(name: str, key: str, db: DB, principal: Reader) -> JSONResponse | None:
    """The document whose key is the whole path, when there is one (see the module doc)."""
    try:
        found = get_document(name, key, db, principal)
    except DocumentNotFound:
        return None
    return JSONResponse(found.model_dump(mode="json"))


@router.get(
    "/collections/{name}/documents/{key:path}/versions/{version:int}",
    operation_id="getDocumentVersion",
    response_model=DocumentVersionDetail,
    responses=error_responses(404, 422),
)
def get_version(
    name: str, key: Key, version: Version, db: DB, principal: Reader
) -> DocumentVersionDetail | JSONResponse:
    """A document as it was at one of its kept versions: its whole text, title, metadata
    and chunks with their spans. 404 when the version is not kept (dropped by retention or
    a purge, or written before engram kept texts)."""
    try:
        content = db.document_version(key, version, name, tenant=principal.tenant)
    except DocumentNotFound:
        whole = _whole_key(name, f"{key}/versions/{version}", db, principal)
        if whole is None:
            raise
        return whole
    return DocumentVersionDetail.model_validate(content.to_dict())


@router.get(
    "/collections/{name}/documents/{key:path}/diff",
    operation_id="diffDocumentVersions",
    response_model=DocumentDiff,
    responses=error_responses(404, 422),
)
def diff_versions(
    name: str,
    key: Key,
    db: DB,
    principal: Reader,
    from_version: Annotated[
        int | None,
        Query(alias="from", ge=1, description="Default: the version before `to`."),
    ] = None,
    to_version: Annotated[
        int | None, Query(alias="to", ge=1, description="Default: the current version.")
    ] = None,
    context: Annotated[int, Query(ge=0, le=1000, description="Lines around each change.")] = 3,
) -> DocumentDiff | JSONResponse:
    """How a document changed between two kept versions: a unified diff of the texts, and
    the title and metadata fields that differ."""
    try:
        found = db.diff_versions(
            key, from_version, to_version, name, context=context, tenant=principal.tenant
        )
    except DocumentNotFound:
        whole = _whole_key(name, f"{key}/diff", db, principal)
        if whole is None:
            raise
        return whole
    return DocumentDiff.model_validate(found.to_dict())


@router.post(
    "/collections/{name}/documents/{key:path}/versions/{version:int}:restore",
    operation_id="restoreDocumentVersion",
    responses=error_responses(404, 422),
)
def restore_version(
    name: str, key: Key, version: Version, db: DB, principal: Writer
) -> DocumentPublic:
    """Make a kept version current again: its content becomes a new version (search sees it
    from now on), re-using the cached vectors of its chunks. Returns the document as it now
    is; nothing is written when the current version already has that content."""
    info = db.restore_version(key, version, name, tenant=principal.tenant)
    return DocumentPublic.model_validate(info)


@router.post(
    "/collections/{name}/versions:purge",
    operation_id="purgeVersions",
    responses=error_responses(404, 422),
)
def purge_versions(name: str, body: VersionPurge, db: DB, principal: Writer) -> VersionPurgeResult:
    """Drop old versions: each document (of ``keys``, or every one) keeps its ``keep``
    newest versions (1: the current one only). Their texts go, and the cached vectors only
    they used; search is unaffected (it sees current versions only)."""
    deleted = db.purge_versions(name, keep=body.keep, keys=body.keys, tenant=principal.tenant)
    return VersionPurgeResult(deleted=deleted)
