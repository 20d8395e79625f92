"""Signing in and out, the language switch and ``/`` (which opens the search page).

Sign-in takes an API key (``egm_…``) or, when an identity provider is configured, one of its
JWTs: the same checks as the API's (engram.server.deps), the same rate limit per address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

import jwt
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...errors import InvalidInput, Unauthorized
from ...server.deps import enforce_limit, principal_for
from ...server.principal import Principal
from ..auth import WebCaller, check_request_csrf, language
from ..i18n import LANG_COOKIE, LANGUAGES, Translator
from ..render import WebRoute, page, set_cookie
from ..sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL, new_secret

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/search"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/search"


def _anonymous(request: Request) -> WebCaller:
    lang = language(request)
    csrf = request.cookies.get(CSRF_COOKIE)
    fresh = None
    if not csrf or len(csrf) > 100:
        csrf = fresh = new_secret()
    principal = Principal(tenant="", scopes=frozenset())
    return WebCaller(principal, csrf, lang, False, Translator(lang), fresh)


@router.get("/")
def home() -> Response:
    return RedirectResponse("/search", status_code=303)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    if request.app.state.settings.auth == "none":
        return RedirectResponse(_safe_next(next), status_code=303)
    session = await run_in_threadpool(
        request.app.state.web_sessions.find, request.cookies.get(SESSION_COOKIE)
    )
    if session is not None:  # signed in already
        return RedirectResponse(_safe_next(next), status_code=303)
    caller = _anonymous(request)
    jwt_on = request.app.state.jwt is not None
    return page(request, caller, "signin.html", next=_safe_next(next), jwt_on=jwt_on, failed=None)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    credential: Annotated[str, Form(max_length=8192)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/search",
) -> Response:
    state = request.app.state
    caller = _anonymous(request)
    await check_request_csrf(request, caller.csrf)  # login CSRF: the double-submit cookie
    client = request.client.host if request.client else "unknown"
    await enforce_limit(getattr(state, "ip_limiter", None), f"ip:{client}", "address")
    credential = credential.strip()
    try:
        if not credential:
            raise InvalidInput("enter an API key or a token")
        principal, subject, expires = await run_in_threadpool(_verify, request, credential)
    except (Unauthorized, InvalidInput) as exc:
        jwt_on = state.jwt is not None
        return page(
            request,
            caller,
            "signin.html",
            status=exc.status,
            next=_safe_next(next),
            jwt_on=jwt_on,
            failed=exc.message,
        )
    token, _ = await run_in_threadpool(
        state.web_sessions.open, principal, subject=subject, expires_at=expires
    )
    observability = getattr(state, "observability", None)
    if observability is not None:
        observability.login(principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()))
    return response


def _verify(request: Request, credential: str) -> tuple[Principal, str, datetime | None]:
    """(principal, subject, expiry) of an API key or a JWT, checked as the API checks them."""
    state = request.app.state
    if credential.startswith("egm_") or state.jwt is None:
        key = state.db.authenticate(credential)
        return principal_for(key.tenant, frozenset(key.scopes), key.id, key.user_id), key.id, None
    tenant, scopes, subject, user = state.jwt.verify(credential)
    claims = jwt.decode(credential, options={"verify_signature": False})
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    return principal_for(tenant, scopes, f"jwt:{subject}", user), subject, expires


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    session = await run_in_threadpool(request.app.state.web_sessions.find, token)
    if session is not None:
        await check_request_csrf(request, session.csrf)
        await run_in_threadpool(request.app.state.web_sessions.close, token)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def set_language(
    request: Request,
    lang: Annotated[str, Form()],
    next: Annotated[str, Form(max_length=2000)] = "/search",
) -> Response:
    """The interface language chosen by the person, over the browser's (a cookie)."""
    if lang not in LANGUAGES:
        raise InvalidInput(f"unknown language {lang!r}", hint="one of: " + ", ".join(LANGUAGES))
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(response, request, LANG_COOKIE, lang, max_age=365 * 86400)
    return response
