"""Web app sessions (the ``web_sessions`` table), written once for both backends over a
:class:`~engram.store.session.Session`.

A session is looked up by the SHA-256 of the browser's token, before the caller's tenant is
known: the lookups run in the system session (PostgreSQL's row-level security lets it
through), as API-key lookups do. A session opened with an API key lives only as long as the
key: the lookup joins ``api_keys`` and drops the session of a revoked key in the same
statement, so a revocation ends every browser session of that key at once, in every process.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime

from .rows import required
from .session import ALL_TENANTS, Tables

_COLS = "s.tenant, s.scopes, s.key_id, s.subject, s.user_id, s.csrf, s.created_at, s.expires_at"


@dataclass(frozen=True, slots=True)
class WebSession:
    """Who signed in to the web app, and the session's CSRF secret."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None  # the API key signed in with; None for a JWT
    subject: str  # the key id or the token's subject, as the access log names the caller
    user_id: str | None
    csrf: str
    created_at: str
    expires_at: str


class WebSessionStore(ABC):
    """Sessions of the web app, keyed by the hash of their token."""

    @abstractmethod
    def create_web_session(self, token_hash: str, session: WebSession) -> None: ...

    @abstractmethod
    def get_web_session(self, token_hash: str, now: datetime) -> WebSession | None:
        """The live session (not expired, its API key not revoked), or None."""

    @abstractmethod
    def delete_web_session(self, token_hash: str) -> bool: ...

    @abstractmethod
    def purge_web_sessions(self, now: datetime) -> int:
        """Delete expired sessions; how many."""


def _seconds(value: str | None) -> str:
    """A timestamp as ISO 8601 text to the second, as it was written, on every backend."""
    return datetime.fromisoformat(required(value)).isoformat(timespec="seconds")


class WebSessionTables(Tables, WebSessionStore):
    """Web sessions in a backend's ``web_sessions`` table."""

    def create_web_session(self, token_hash: str, session: WebSession) -> None:
        d = self.dialect
        with self._session(ALL_TENANTS, write=True) as s:
            s.run(
                "INSERT INTO web_sessions (token_hash, tenant, scopes, key_id, subject, user_id,"
                f" csrf, created_at, expires_at) VALUES (?, ?, {d.json_mark}, ?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    session.tenant,
                    json.dumps(sorted(session.scopes)),
                    session.key_id,
                    session.subject,
                    session.user_id,
                    session.csrf,
                    d.time_value(datetime.fromisoformat(session.created_at)),
                    d.time_value(datetime.fromisoformat(session.expires_at)),
                ),
            )

    def get_web_session(self, token_hash: str, now: datetime) -> WebSession | None:
        d = self.dialect
        with self._session(ALL_TENANTS) as s:
            row = s.row(
                f"SELECT {_COLS} FROM web_sessions s LEFT JOIN api_keys k ON k.id = s.key_id"
                " WHERE s.token_hash = ? AND s.expires_at > ?"
                " AND (s.key_id IS NULL OR (k.id IS NOT NULL AND k.revoked_at IS NULL))",
                (token_hash, d.time_value(now.astimezone(UTC))),
            )
        if row is None:
            return None
        dec = d.decoding
        return WebSession(
            tenant=row[0],
            scopes=frozenset(dec.json(row[1])),
            key_id=row[2],
            subject=row[3],
            user_id=row[4],
            csrf=row[5],
            created_at=_seconds(dec.time(row[6], True)),
            expires_at=_seconds(dec.time(row[7], True)),
        )

    def delete_web_session(self, token_hash: str) -> bool:
        with self._session(ALL_TENANTS, write=True) as s:
            return s.run("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,)) > 0

    def purge_web_sessions(self, now: datetime) -> int:
        d = self.dialect
        with self._session(ALL_TENANTS, write=True) as s:
            return s.run(
                "DELETE FROM web_sessions WHERE expires_at <= ?",
                (d.time_value(now.astimezone(UTC)),),
            )
