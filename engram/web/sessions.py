"""Sign-in to the web app: an API key or an identity provider's JWT, traded for a session.

The browser gets a random token in an HttpOnly, SameSite=Strict cookie; the store keeps its
SHA-256 and who signed in, with the same tenant, scopes and user binding the key or token
carries (engram.server.deps makes the same :class:`Principal` of both). A session ends at
sign-out, after :data:`SESSION_TTL`, when its JWT expires, or when its API key is revoked
(the lookup joins the key; engram.store.web_session_tables).

Every state-changing request of a session carries its CSRF secret — a hidden form field, or
the ``X-CSRF-Token`` header that the pages' scripts send — compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import Forbidden
from ..server.principal import Principal
from ..store.web_session_tables import WebSession

if TYPE_CHECKING:
    from ..store.contract import Store

SESSION_COOKIE = "engram_session"
# Without authentication (engram serve --dev), forms still carry a CSRF secret: this cookie's.
CSRF_COOKIE = "engram_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
SESSION_TTL = timedelta(hours=12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(expected: str, presented: str | None) -> None:
    """Forbidden unless ``presented`` is the session's CSRF secret."""
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Forbidden(
            "this form is stale or did not come from this site (CSRF check failed)",
            hint="reload the page and try again",
        )


class WebSessions:
    """Open, find and close web sessions in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open(
        self, principal: Principal, *, subject: str, expires_at: datetime | None = None
    ) -> tuple[str, WebSession]:
        """A new session for ``principal``: (the cookie's token, the session)."""
        now = datetime.now(UTC)
        end = now + SESSION_TTL
        if expires_at is not None:
            end = min(end, expires_at)
        is_key = principal.key_id is not None and not principal.key_id.startswith("jwt:")
        session = WebSession(
            tenant=principal.tenant,
            scopes=principal.scopes,
            key_id=principal.key_id if is_key else None,
            subject=subject,
            user_id=principal.user_id,
            csrf=new_secret(),
            created_at=now.isoformat(timespec="seconds"),
            expires_at=end.isoformat(timespec="seconds"),
        )
        token = new_secret()
        self.store.create_web_session(token_hash(token), session)
        return token, session

    def find(self, token: str | None) -> WebSession | None:
        """The live session of a cookie's token, or None (no such session, expired, or its
        API key revoked)."""
        if not token or len(token) > 200:
            return None
        return self.store.get_web_session(token_hash(token), datetime.now(UTC))

    def close(self, token: str | None) -> None:
        if token:
            self.store.delete_web_session(token_hash(token))

    def purge(self) -> int:
        return self.store.purge_web_sessions(datetime.now(UTC))


def principal_of(session: WebSession) -> Principal:
    return Principal(
        tenant=session.tenant,
        scopes=session.scopes,
        key_id=session.key_id or f"jwt:{session.subject}",
        user_id=session.user_id,
    )
