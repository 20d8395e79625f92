"""``/v1/state``: agent state. ``/v1/state/{namespace…}/{key}`` is one item (the last path
segment is the key); its version is the ETag, and ``If-Match: "<version>"`` (or
``If-None-Match: *`` to create only) makes a write a compare-and-set: 412 when it lost."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from ...errors import InvalidInput
from ...state import StateItem
from ...state.types import namespace_of
from ..deps import DB, Reader, Writer
from ..ownership import state_namespace, state_prefix
from ..pagination import fetch_page
from ..principal import Principal
from ..schemas import error_responses
from ..schemas_state import (
    StateItemPublic,
    StateList,
    StateNamespaces,
    StateNamespacesRequest,
    StatePut,
    StateSearch,
)

router = APIRouter(tags=["state"])


def _split(path: str, principal: Principal) -> tuple[tuple[str, ...], str]:
    labels = tuple(path.strip("/").split("/"))
    if len(labels) < 2:
        raise InvalidInput(
            "a state path is /v1/state/<namespace…>/<key>, e.g. /v1/state/user/42/plan"
        )
    return state_namespace(principal, namespace_of(labels[:-1])), labels[-1]


def _version(header: str | None) -> int | None:
    """The version an If-Match header names ("3", 3 or W/"3"), or None without one."""
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidInput(f"If-Match must be an item's version (its ETag), not {header!r}")
    return int(text)


def _public(item: StateItem, response: Response | None = None) -> StateItemPublic:
    if response is not None:
        response.headers["ETag"] = f'"{item.version}"'
    return StateItemPublic(**item.to_dict())


@router.put(
    "/state/{path:path}",
    operation_id="putState",
    responses={**error_responses(412, 422), 201: {"model": StateItemPublic}},
)
def put_state(
    path: str,
    body: StatePut,
    db: DB,
    principal: Writer,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> StateItemPublic:
    """Store a JSON value (201 when the key is new, 200 when it replaced a version)."""
    namespace, key = _split(path, principal)
    expect = _version(if_match)
    if if_none_match is not None:
        if if_none_match.strip() != "*" or expect is not None:
            raise InvalidInput('use If-None-Match: * alone (create only) or If-Match: "<version>"')
        expect = 0
    item = db.state.put(
        namespace,
        key,
        body.value,
        if_version=expect,
        ttl=body.ttl,
        index=body.index,
        tenant=principal.tenant,
    )
    response.status_code = 201 if item.version == 1 else 200
    return _public(item, response)


@router.get("/state/{path:path}", operation_id="getState", responses=error_responses(404, 422))
def get_state(path: str, db: DB, principal: Reader, response: Response) -> StateItemPublic:
    """One item, with its version as the ETag."""
    namespace, key = _split(path, principal)
    return _public(db.state.get(namespace, key, tenant=principal.tenant), response)


@router.delete(
    "/state/{path:path}",
    operation_id="deleteState",
    status_code=204,
    responses=error_responses(404, 412, 422),
)
def delete_state(
    path: str,
    db: DB,
    principal: Writer,
    if_match: Annotated[str | None, Header()] = None,
) -> None:
    """Delete an item (only version ``If-Match`` when given)."""
    namespace, key = _split(path, principal)
    db.state.delete(namespace, key, if_version=_version(if_match), tenant=principal.tenant)


@router.get("/state", operation_id="listState", responses=error_responses(422))
def list_state(
    db: DB,
    principal: Reader,
    prefix: Annotated[str, Query(max_length=2000)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> StateList:
    """Items under a namespace prefix (``user/42``: that namespace and those below it), by
    namespace and key."""
    page, next_cursor = fetch_page(
        lambda n, offset: db.state.items(
            state_prefix(principal, namespace_of(prefix, allow_empty=True)),
            limit=n,
            offset=offset,
            tenant=principal.tenant,
        ),
        cursor,
        limit,
    )
    return StateList(data=[_public(i) for i in page], next_cursor=next_cursor)


@router.post("/state:search", operation_id="searchState", responses=error_responses(422))
def search_state(body: StateSearch, db: DB, principal: Reader) -> StateList:
    """Items under a prefix passing a filter on their values; with a query, indexed items
    best first by semantic similarity (``score``)."""
    found = db.state.search(
        state_prefix(principal, namespace_of(body.prefix, allow_empty=True)),
        query=body.query,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        tenant=principal.tenant,
    )
    return StateList(data=[_public(i) for i in found])


@router.post(
    "/state:namespaces", operation_id="listStateNamespaces", responses=error_responses(422)
)
def state_namespaces(body: StateNamespacesRequest, db: DB, principal: Reader) -> StateNamespaces:
    """The namespaces holding items under a prefix, cut to ``max_depth`` labels."""
    found = db.state.namespaces(
        state_prefix(principal, namespace_of(body.prefix, allow_empty=True)),
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
        tenant=principal.tenant,
    )
    return StateNamespaces(data=[list(ns) for ns in found])
