"""The Memory pages: the tenant's users, and one user's conversations, memories (with their
history), agent state, export and erasure.

Every rule is the API's (engram.server.routes.memories, conversations, state): reading needs
``read``, forgetting a memory ``write``, exporting and erasing a user ``admin`` (the
``/v1/users/{id}`` routes); a caller bound to one user reaches that user only (another user
is refused, another user's memory looks missing). A user's agent state is the items under
the namespace ``user/<id>``, the convention engram.server.ownership gives bound callers.

User ids may hold any character but control characters, "/" included, so the routes that
take one put it last in the path (``{user_id:path}``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...errors import InvalidInput
from ...server.deps import DB
from ...server.ownership import acting_user, reachable_memory
from ...state.types import USER_LABEL
from ..auth import Caller, require
from ..render import SECURITY_HEADERS, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE = 50  # rows of each list on a page
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def user_url(user_id: str) -> str:
    return "/memory/users/" + quote(user_id, safe="")


@router.get("/memory")
def users(
    request: Request,
    caller: Caller,
    db: DB,
    q: Annotated[str, Query(max_length=200)] = "",
    after: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The tenant's users by id, a page at a time, narrowed to ids starting with ``q``; a
    caller bound to one user goes straight to that user."""
    require(caller, "read")
    bound = caller.principal.user_id
    if bound is not None:
        return RedirectResponse(user_url(bound), status_code=303)
    q = q.strip()
    found = db.memory.users(prefix=q, after=after, limit=PAGE + 1, tenant=caller.principal.tenant)
    more = len(found) > PAGE
    found = found[:PAGE]
    return page(
        request,
        caller,
        "memory/users.html",
        title=caller.t("memory.title"),
        users=found,
        q=q,
        after=after,
        next_after=found[-1] if more else None,
        user_url=user_url,
    )


@router.get("/memory/users/{user_id:path}")
def user(
    request: Request,
    caller: Caller,
    db: DB,
    user_id: str,
    c: Offset = 0,
    m: Offset = 0,
    s: Offset = 0,
    forgotten: bool = False,
) -> Response:
    """One user: conversations, memories (``forgotten`` includes the forgotten ones, whose
    history stays until erasure) and agent state, each paged by its own offset."""
    require(caller, "read")
    principal = caller.principal
    user_id = acting_user(principal, _user_id(user_id))
    tenant = principal.tenant
    conversations = db.memory.conversations(user_id, limit=PAGE + 1, offset=c, tenant=tenant)
    memories = db.memory.list(
        user_id, limit=PAGE + 1, offset=m, include_deleted=forgotten, tenant=tenant
    )
    state = db.state.items((USER_LABEL, user_id), limit=PAGE + 1, offset=s, tenant=tenant)
    here = {"c": c, "m": m, "s": s, "forgotten": int(forgotten)}
    url = user_url(user_id)
    return page(
        request,
        caller,
        "memory/user.html",
        title=caller.t("memory.user_title", user=user_id),
        user_id=user_id,
        url=url,
        link=lambda **changes: url + "?" + urlencode({**here, **changes}),
        conversations=conversations[:PAGE],
        memories=memories[:PAGE],
        state=[(item, _preview(item.value)) for item in state[:PAGE]],
        more={"c": len(conversations) > PAGE, "m": len(memories) > PAGE, "s": len(state) > PAGE},
        here=here,
        PAGE=PAGE,
        forgot=request.query_params.get("forgot"),
        state_prefix=f"{USER_LABEL}/{user_id}",
    )


@router.get("/memory/memories/{memory_id}/history")
def history(request: Request, caller: Caller, db: DB, memory_id: str) -> Response:
    """A memory's changes, oldest first, with where each came from (a fragment for htmx,
    a page otherwise); also for a forgotten memory."""
    require(caller, "read")
    tenant = caller.principal.tenant
    record = reachable_memory(db, caller.principal, memory_id, include_deleted=True)
    events = db.memory.history(memory_id, tenant=tenant)
    return page(
        request,
        caller,
        "memory/history.html",
        title=caller.t("memory.history_title"),
        memory=record,
        events=events,
        url=user_url(record.user_id),
    )


@router.post("/memory/memories/{memory_id}/forget")
def forget(caller: Caller, db: DB, memory_id: str) -> Response:
    """Forget one memory (``DELETE /v1/memories/{id}``): it leaves search at once; its
    history stays readable until the user is erased."""
    require(caller, "write")
    principal = caller.principal
    record = reachable_memory(db, principal, memory_id)
    db.memory.delete(memory_id, tenant=principal.tenant)
    return RedirectResponse(
        user_url(record.user_id) + "?forgot=" + quote(memory_id, safe=""), status_code=303
    )


@router.get("/memory/export/{user_id:path}")
def export(caller: Caller, db: DB, user_id: str) -> Response:
    """Everything the user owns as a JSON file (``GET /v1/users/{id}/export``, admin)."""
    require(caller, "admin")
    user_id = _user_id(user_id)
    found = db.memory.export_user(user_id, tenant=caller.principal.tenant)
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in user_id)[:80]
    body = json.dumps(found, ensure_ascii=False, indent=2, default=str)
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="engram-user-{name}.json"',
    }
    return Response(body, media_type="application/json", headers=headers)


@router.get("/memory/erase/{user_id:path}")
def erase_form(request: Request, caller: Caller, user_id: str) -> Response:
    """The confirmation step before erasing a user: type the user's id."""
    require(caller, "admin")
    user_id = _user_id(user_id)
    return _erase_page(request, caller, user_id)


@router.post("/memory/erase/{user_id:path}")
def erase(
    request: Request,
    caller: Caller,
    db: DB,
    user_id: str,
    confirm: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Erase everything the user owns (``DELETE /v1/users/{id}``, admin), once the typed id
    matches: a mistyped id erases nothing."""
    require(caller, "admin")
    user_id = _user_id(user_id)
    if confirm.strip() != user_id:
        return _erase_page(
            request, caller, user_id, failed=caller.t("memory.erase_mismatch"), status=422
        )
    report = db.memory.erase_user(user_id, tenant=caller.principal.tenant)
    return page(
        request,
        caller,
        "memory/erased.html",
        title=caller.t("memory.erased_title"),
        user_id=user_id,
        report=report.to_dict(),
    )


def _erase_page(
    request: Request, caller: Caller, user_id: str, *, failed: str | None = None, status: int = 200
) -> Response:
    return page(
        request,
        caller,
        "memory/erase.html",
        status=status,
        title=caller.t("memory.erase_title"),
        user_id=user_id,
        url=user_url(user_id),
        failed=failed,
    )


def _user_id(value: str) -> str:
    if not value.strip() or len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise InvalidInput("a user id is 1 to 200 characters, without control characters")
    return value


def _preview(value: Any, limit: int = 160) -> str:
    """A state value as compact JSON, cut to ``limit`` characters for the table."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
