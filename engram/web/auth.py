"""Who is using a page: :func:`web_caller`, the pages' dependency.

With authentication on, the caller is the session's (engram.web.sessions), made into the same
:class:`Principal` the API would make of the key or token signed in with; with none (``engram
serve --dev``, loopback only), the default tenant with every scope, as the API does. A page
needing a scope checks it with :func:`require`; a person not signed in is sent to sign in.

Every request that changes something (any method but GET and HEAD) must carry the CSRF secret
— of the session, or without authentication of the ``engram_csrf`` cookie (double submit) —
in the ``csrf`` form field or the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import EngramError
from ..server.deps import ALL_SCOPES, check_scope, enforce_limit
from ..server.principal import Principal
from .i18n import LANG_COOKIE, Translator, choose
from .sessions import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, check_csrf, new_secret
from .sessions import principal_of as session_principal

SAFE_METHODS = frozenset({"GET", "HEAD"})


class SignInRequired(EngramError):
    """No live session: the page answers with a redirect to the sign-in page."""

    code = "unauthorized"
    status = 401


@dataclass
class WebCaller:
    """The person using a page: their principal, the CSRF secret forms must carry, the
    interface language and whether they signed in (False with authentication off)."""

    principal: Principal
    csrf: str
    lang: str
    signed_in: bool
    t: Translator = field(repr=False)
    # A CSRF cookie to set on the response (first visit with authentication off).
    new_csrf_cookie: str | None = None

    def can(self, scope: str) -> bool:
        try:
            check_scope(self.principal, scope)
        except EngramError:
            return False
        return True


def language(request: Request) -> str:
    return choose(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


async def web_caller(request: Request) -> WebCaller:
    state = request.app.state
    lang = language(request)
    if state.settings.auth == "none":
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not csrf or len(csrf) > 100:
            csrf = fresh = new_secret()
        principal = Principal(tenant="default", scopes=ALL_SCOPES)
        caller = WebCaller(principal, csrf, lang, False, Translator(lang), fresh)
    else:
        session = await run_in_threadpool(
            state.web_sessions.find, request.cookies.get(SESSION_COOKIE)
        )
        if session is None:
            raise SignInRequired("sign in to continue")
        # The API's rate limits: a page costs the key (or token) what a request to /v1 does.
        client = request.client.host if request.client else "unknown"
        await enforce_limit(getattr(state, "ip_limiter", None), f"ip:{client}", "address")
        await enforce_limit(
            getattr(state, "key_limiter", None),
            f"key:{session.key_id}"
            if session.key_id
            else f"jwt:{session.tenant}:{session.subject}",
            "API key",
        )
        caller = WebCaller(session_principal(session), session.csrf, lang, True, Translator(lang))
    if request.method not in SAFE_METHODS:
        await check_request_csrf(request, caller.csrf)
    request.state.web_caller = caller  # for the error page of a failure after this point
    return caller


async def check_request_csrf(request: Request, expected: str) -> None:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    check_csrf(expected, presented)


def require(caller: WebCaller, scope: str) -> WebCaller:
    """``caller`` if their scopes include ``scope``; Forbidden (a 403 page) otherwise."""
    check_scope(caller.principal, scope)
    return caller


Caller = Annotated[WebCaller, Depends(web_caller)]
