"""The knowledge base: ``/knowledge`` (the tenant's collections, creating one, uploading
files) and ``/knowledge/{collection}`` (its documents, filtered and paged; deleting one).

A document's own page (versions, diffs, restores) is engram.web.pages.documents. Uploads go
from the browser straight to the API (``POST /v1/collections/{name}/files``, static/
knowledge.js), so a file is parsed exactly as an API client's would be; these pages only read
and list. Scopes as the API's: reading needs ``read``, every change ``write``; documents are
the tenant's (no per-user binding, as in the documents API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...engine import Engram
from ...errors import CollectionNotFound, DocumentNotFound, EngramError, InvalidInput
from ...ingest.loaders import supported_extensions
from ...memory.types import is_internal
from ...search.analyzer import LANGUAGES
from ...search.filters import parse_where_args
from ...search.fusion import FUSION_METHODS
from ...server.deps import DB
from ...server.routes.documents import parse_where
from ...store.records import Where
from ...types import Collection, DocumentInfo
from ..auth import Caller, WebCaller, require
from ..render import WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50


def collection_of(db: Engram, name: str, tenant: str, *, counts: bool = False) -> Collection:
    """The tenant's collection ``name`` (CollectionNotFound, a 404 page, for another
    tenant's, a missing one or engram's own recall indexes). ``counts`` adds its sizes."""
    if is_internal(name):
        raise CollectionNotFound(f"no collection {name!r}")
    return db.store.get_collection(name, tenant=tenant, counts=counts)


def settings_of(db: Engram, collection: Collection) -> dict[str, Any]:
    """A collection's effective settings: its own, else the server's defaults."""
    own = collection.settings
    defaults = db.settings
    return {
        "fusion": own.get("fusion", defaults.fusion),
        "fusion_alpha": own.get("fusion_alpha", defaults.fusion_alpha),
        "keep_versions": own.get("keep_versions", defaults.keep_versions),
        "chunk_tokens": own.get("chunk_tokens", defaults.chunk_tokens),
        "chunk_overlap": own.get("chunk_overlap", defaults.chunk_overlap),
    }


def _upload_context() -> dict[str, Any]:
    """What the upload area shows: the file types the API can parse."""
    return {"extensions": sorted(supported_extensions())}


# -- /knowledge ----------------------------------------------------------------------------------
def _index(
    request: Request,
    caller: WebCaller,
    db: Engram,
    *,
    status: int = 200,
    failed: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    collections = db.collections(tenant=caller.principal.tenant)
    return page(
        request,
        caller,
        "knowledge/index.html",
        status=status,
        title=caller.t("knowledge.title"),
        collections=[(c, settings_of(db, c)) for c in collections],
        languages=LANGUAGES,
        fusions=FUSION_METHODS,
        default_language=db.settings.language,
        default_fusion=db.settings.fusion,
        model=db.embedders.name_for("en"),
        multilingual=db.embedders.multilingual_name(),
        failed=failed,
        form=form or {},
        **_upload_context(),
    )


@router.get("/knowledge")
def knowledge(request: Request, caller: Caller, db: DB) -> Response:
    require(caller, "read")
    return _index(request, caller, db)


@router.post("/knowledge")
def create_collection(
    request: Request,
    caller: Caller,
    db: DB,
    name: Annotated[str, Form(max_length=200)] = "",
    language: Annotated[str, Form(max_length=10)] = "",
    fusion: Annotated[str, Form(max_length=10)] = "",
    fusion_alpha: Annotated[str, Form(max_length=20)] = "",
    keep_versions: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Create an empty collection (as ``POST /v1/collections``); a bad value shows the form
    again with the reason."""
    require(caller, "write")
    form = {
        "name": name,
        "language": language,
        "fusion": fusion,
        "fusion_alpha": fusion_alpha,
        "keep_versions": keep_versions,
    }
    try:
        created = db.create_collection(
            name.strip(),
            language=language or None,
            fusion=fusion or None,
            fusion_alpha="auto"
            if fusion_alpha.strip() == "auto"
            else _number(fusion_alpha, float, caller.t("knowledge.fusion_alpha")),
            keep_versions=_number(keep_versions, int, caller.t("knowledge.keep_versions")),
            tenant=caller.principal.tenant,
        )
    except EngramError as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return _index(request, caller, db, status=exc.status, failed=message, form=form)
    return RedirectResponse(f"/knowledge/{quote(created.name, safe='')}", status_code=303)


def _number(raw: str, kind: type[int] | type[float], label: str) -> Any:
    raw = raw.strip().replace(",", ".")
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInput(f"{label}: {raw!r} is not a number") from None


# -- /knowledge/{collection} ---------------------------------------------------------------------
@dataclass
class DocumentPage:
    """One page of a collection's documents and the offset of the next (None at the end)."""

    rows: list[DocumentInfo]
    next_start: int | None


def parse_filter(raw: str) -> Where | None:
    """The metadata filter typed in the page: a JSON object (``{"year": {"$gte": 2020}}``)
    or expressions separated by ``;`` (``team=hr; year>=2020; title contains tax``), as the
    CLI's ``--where``."""
    raw = raw.strip()
    if not raw:
        return None
    if raw.startswith("{"):
        return parse_where(raw)  # as the API's ?where=
    return parse_where_args([p.strip() for p in raw.split(";") if p.strip()])


def document_page(
    db: Engram, collection: Collection, *, start: int, where: Where | None, contains: str
) -> DocumentPage:
    """Documents in key order from offset ``start`` (the store pages by offset), filtered
    by metadata and by a text the key or title contains."""
    rows = db.store.list_documents(
        collection, limit=PAGE_SIZE + 1, offset=start, where=where, contains=contains or None
    )
    more = len(rows) > PAGE_SIZE
    return DocumentPage(rows[:PAGE_SIZE], start + PAGE_SIZE if more else None)


@router.get("/knowledge/{collection}")
def collection_page(
    request: Request,
    caller: Caller,
    db: DB,
    collection: str,
    q: Annotated[str, Query(max_length=200)] = "",
    where: Annotated[str, Query(max_length=2000)] = "",
    start: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    deleted: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    require(caller, "read")
    coll = collection_of(db, collection, caller.principal.tenant, counts=True)
    filters = parse_filter(where)
    found = document_page(db, coll, start=start, where=filters, contains=q.strip())

    def link(offset: int) -> str:
        params = {k: v for k, v in (("q", q), ("where", where)) if v}
        if offset:
            params["start"] = str(offset)
        query = urlencode(params)
        return request.url.path + (f"?{query}" if query else "")

    previous = link(max(0, start - PAGE_SIZE)) if start else None
    return page(
        request,
        caller,
        "knowledge/collection.html",
        title=coll.name,
        coll=coll,
        settings=settings_of(db, coll),
        found=found,
        q=q,
        where=where,
        start=start,
        deleted=deleted,
        previous=previous,
        next=link(found.next_start) if found.next_start is not None else None,
        **_upload_context(),
    )


@router.post("/knowledge/{collection}/delete")
def delete_document(
    caller: Caller,
    db: DB,
    collection: str,
    key: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    """Delete a document completely (every version), as ``DELETE …/documents/{key}``; back
    to the collection's list, which says what was deleted."""
    require(caller, "write")
    coll = collection_of(db, collection, caller.principal.tenant)
    if not db.store.delete_documents(coll, [key]):
        raise DocumentNotFound(f"no document {key!r} in collection {coll.name!r}")
    db.store.sync()
    target = f"/knowledge/{quote(coll.name, safe='')}?" + urlencode({"deleted": key})
    return RedirectResponse(target, status_code=303)
