"""Request dependencies, as ``Annotated`` aliases: ``db: DB``, ``principal: Reader`` etc.

Authentication and rate limiting happen here, once per request, before any route code runs:
the caller's API key (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``), or a JWT from
an identity provider when one is configured (engram.server.jwt_auth), becomes a
:class:`Principal` — the tenant whose data it may touch and its scopes. Scopes are ordered,
``read`` < ``write`` < ``admin``: each includes the ones before it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..engine import Engram
from ..errors import Forbidden, RateLimited, Unauthorized
from ..web.sessions import CSRF_HEADER, SESSION_COOKIE, check_csrf, principal_of
from .context import note_principal
from .principal import Principal
from .ratelimit import Limiter

ALL_SCOPES = frozenset({"read", "write", "admin"})
_IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}


async def get_db(request: Request) -> Engram:
    """The application's one :class:`Engram`, opened by the lifespan."""
    db: Engram | None = getattr(request.app.state, "db", None)
    if db is None:
        raise RuntimeError("the engram database is not open (the app's lifespan did not run)")
    return db


DB = Annotated[Engram, Depends(get_db)]


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        return value.strip()
    return request.headers.get("x-api-key")


async def enforce_limit(limiter: Limiter | None, key: str, what: str) -> None:
    if limiter is None:
        return
    decision = await limiter.acheck(key)
    if not decision.allowed:
        raise RateLimited(
            f"rate limit exceeded for this {what}", retry_after=int(decision.retry_after_header)
        )


async def get_principal(request: Request, db: DB) -> Principal:
    """The caller of the current request; raises Unauthorized (401) or RateLimited (429)."""
    state = request.app.state
    client = request.client.host if request.client else "unknown"
    await enforce_limit(getattr(state, "ip_limiter", None), f"ip:{client}", "address")
    if state.settings.auth == "none":
        return _noted(Principal(tenant="default", scopes=ALL_SCOPES))
    presented = _presented_key(request)
    if not presented and SESSION_COOKIE in request.cookies:
        return await _session_principal(request)
    if not presented:
        raise Unauthorized(
            "this API needs a key",
            hint="send 'Authorization: Bearer <key>'; create one with `engram keys create`",
        )
    verifier = getattr(state, "jwt", None)
    if verifier is not None and not presented.startswith("egm_"):
        tenant, scopes, subject, user = await run_in_threadpool(verifier.verify, presented)
        await enforce_limit(getattr(state, "key_limiter", None), f"jwt:{tenant}:{subject}", "token")
        return _signed_in(state, _noted(principal_for(tenant, scopes, f"jwt:{subject}", user)))
    # Keys verified in the last seconds need no database lookup; a revocation is seen at
    # once through the stamp (engram.keys.VerifiedKeys).
    verified = state.verified_keys
    stamp = await verified.stamp()
    key = verified.lookup(presented, stamp)
    if key is None:
        key = await run_in_threadpool(db.authenticate, presented)
        verified.remember(presented, key, stamp)
    await enforce_limit(getattr(state, "key_limiter", None), f"key:{key.id}", "API key")
    return _signed_in(
        state, _noted(principal_for(key.tenant, frozenset(key.scopes), key.id, key.user_id))
    )


async def _session_principal(request: Request) -> Principal:
    """The caller signed in to the web app, whose pages' scripts call the API with the
    session cookie and the session's CSRF secret in ``X-CSRF-Token`` (every method: a
    cookie alone never authorizes an API call)."""
    session = await run_in_threadpool(
        request.app.state.web_sessions.find, request.cookies.get(SESSION_COOKIE)
    )
    if session is None:
        raise Unauthorized(
            "the web session has ended", hint="sign in again, or send an API key instead"
        )
    check_csrf(session.csrf, request.headers.get(CSRF_HEADER))
    await enforce_limit(
        getattr(request.app.state, "key_limiter", None),
        f"key:{session.key_id}" if session.key_id else f"jwt:{session.tenant}:{session.subject}",
        "API key",
    )
    return _noted(principal_of(session))


def principal_for(
    tenant: str, scopes: frozenset[str], key_id: str, user_id: str | None
) -> Principal:
    # A caller bound to one user never administers the tenant (stats, other users): admin
    # narrows to what it implies for the user's own data, read and write.
    if user_id is not None and "admin" in scopes:
        scopes = (scopes - {"admin"}) | {"read", "write"}
    return Principal(tenant=tenant, scopes=scopes, key_id=key_id, user_id=user_id)


def _signed_in(state: Any, principal: Principal) -> Principal:
    """Record the day's first use of the caller's key or token (a ``login`` event)."""
    observability = getattr(state, "observability", None)
    if observability is not None:
        observability.login(principal)
    return principal


def _noted(principal: Principal) -> Principal:
    """Name the caller in the request's access-log line, then hand it on."""
    note_principal(principal)
    return principal


def check_scope(principal: Principal, scope: str) -> Principal:
    """``principal`` when its scopes include ``scope`` (each implies the ones before it);
    Forbidden otherwise. The routes' dependencies and the MCP tools both check with it."""
    granted = set().union(*(_IMPLIED[s] for s in principal.scopes if s in _IMPLIED))
    if scope not in granted:
        raise Forbidden(
            f"this operation needs the {scope!r} scope",
            hint=f"use a key created with --scope {scope}",
        )
    return principal


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting callers whose scopes include ``scope``."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return check_scope(principal, scope)

    return check


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
