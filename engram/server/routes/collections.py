"""``/v1/collections``: list, inspect and delete collections."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import DB, Admin, Reader
from ..schemas import CollectionList, CollectionPublic, error_responses

router = APIRouter(tags=["collections"])


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
