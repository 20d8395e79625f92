"""``/v1/collections``: create, list, inspect and delete collections. A first write to a
collection that does not exist creates it too, with the server's defaults."""

from __future__ import annotations

from fastapi import APIRouter

from ...errors import InvalidInput
from ..deps import DB, Admin, Reader, Writer
from ..schemas import CollectionCreate, CollectionList, CollectionPublic, error_responses

router = APIRouter(tags=["collections"])


@router.post(
    "/collections",
    operation_id="createCollection",
    status_code=201,
    responses=error_responses(409, 422),
)
def create_collection(body: CollectionCreate, db: DB, principal: Writer) -> CollectionPublic:
    """Create an empty collection with its language, embedding model and fusion (409 if it
    exists)."""
    if body.model is not None and not db.embedders.offered(body.model):
        # Not any directory of the server, nor a remote endpoint it would send its keys to.
        raise InvalidInput(
            f"no embedding model {body.model!r} here",
            hint=f"leave model out for the language's, or use one of"
            f" {', '.join(db.embedders.offered_names())}",
        )
    created = db.create_collection(
        body.name,
        language=body.language,
        model=body.model,
        fusion=body.fusion,
        fusion_alpha=body.fusion_alpha,
        keep_versions=body.keep_versions,
        tenant=principal.tenant,
    )
    return CollectionPublic.model_validate(created)


@router.get("/collections", operation_id="listCollections")
def list_collections(db: DB, principal: Reader) -> CollectionList:
    """Every collection of the caller's tenant, with its model, language and size."""
    items = db.collections(tenant=principal.tenant)
    return CollectionList(
        data=[CollectionPublic.model_validate(c) for c in items], count=len(items)
    )


@router.get(
    "/collections/{name}", operation_id="getCollection", responses=error_responses(404, 422)
)
def get_collection(name: str, db: DB, principal: Reader) -> CollectionPublic:
    """One collection."""
    return CollectionPublic.model_validate(db.collection(name, tenant=principal.tenant))


@router.delete(
    "/collections/{name}",
    operation_id="deleteCollection",
    status_code=204,
    responses=error_responses(404, 422),
)
def delete_collection(name: str, db: DB, principal: Admin) -> None:
    """Delete a collection and every trace of its documents."""
    db.delete_collection(name, tenant=principal.tenant)
