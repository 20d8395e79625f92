"""The Operations page (admin): the health of each component and the tenant's API keys.

Health is ``/v1/ready``'s own checks (engram.server.routes.health.readiness_checks), loaded
after the page by htmx: probing the LLM endpoints may take seconds, the page itself must
not. Keys are those of the caller's tenant only; a new key is shown once, on the page that
answers its creation (no-store, never in a URL or a redirect), and the engine's own rules
apply (a key bound to a user cannot have the admin scope: its error is shown on the form).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...errors import InvalidInput, NotFound
from ...keys import SCOPES
from ...server.deps import DB
from ...server.routes.health import readiness_checks
from ..auth import Caller, WebCaller, require
from ..render import WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/operations")
def operations(request: Request, caller: Caller, db: DB) -> Response:
    require(caller, "admin")
    return _page(request, caller, db, revoked=request.query_params.get("revoked"))


@router.get("/operations/health")
async def health(request: Request, caller: Caller, db: DB) -> Response:
    """Every readiness check with its status and latency (a fragment for htmx, a page
    otherwise)."""
    require(caller, "admin")
    checks, failed = await run_in_threadpool(readiness_checks, db)
    if failed:
        overall = "failing"
    elif any(c.status in ("error", "warning") for c in checks.values()):
        overall = "degraded"
    else:
        overall = "ok"
    return page(
        request,
        caller,
        "operations/health.html",
        title=caller.t("operations.health"),
        checks=checks,
        failed=failed,
        overall=overall,
    )


@router.post("/operations/keys")
def create_key(
    request: Request,
    caller: Caller,
    db: DB,
    name: Annotated[str, Form(max_length=200)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    user_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A new key of the caller's tenant, shown once on the page this answers with."""
    require(caller, "admin")
    form: dict[str, object] = {"name": name, "scopes": scopes or [], "user_id": user_id}
    try:
        if not name.strip():
            raise InvalidInput(caller.t("operations.name_required"))
        record, full = db.create_key(
            tenant=caller.principal.tenant,
            scopes=scopes or [],
            name=name.strip(),
            user_id=user_id.strip() or None,
        )
    except InvalidInput as exc:
        return _page(request, caller, db, form=form, failed=exc, status=exc.status)
    return page(
        request,
        caller,
        "operations/key_created.html",
        title=caller.t("operations.key_created"),
        key=record,
        full=full,
    )


@router.post("/operations/keys/{key_id}/revoke")
def revoke_key(caller: Caller, db: DB, key_id: str) -> Response:
    """Revoke a key of the caller's tenant: refused at once everywhere, its web sessions
    end. Another tenant's key looks missing."""
    require(caller, "admin")
    if not any(k.id == key_id and k.active for k in db.keys(tenant=caller.principal.tenant)):
        raise NotFound(f"no active API key {key_id!r} in this tenant")
    db.revoke_key(key_id)
    return RedirectResponse(f"/operations?revoked={key_id}#keys", status_code=303)


def _page(
    request: Request,
    caller: WebCaller,
    db: DB,
    *,
    form: dict[str, object] | None = None,
    failed: InvalidInput | None = None,
    revoked: str | None = None,
    status: int = 200,
) -> Response:
    # Newest first: the key just made or used is the one looked for.
    keys = sorted(db.keys(tenant=caller.principal.tenant), key=lambda k: k.created_at)[::-1]
    return page(
        request,
        caller,
        "operations/index.html",
        status=status,
        title=caller.t("operations.title"),
        keys=keys,
        scopes=SCOPES,
        form=form or {"name": "", "scopes": ["read"], "user_id": ""},
        failed=failed,
        revoked=revoked if revoked and revoked.isalnum() else None,
    )
