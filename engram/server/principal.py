"""The caller of a request, in a module of its own: authentication (engram.server.deps)
makes it, the request context and the access log name it, and none of them need import
another for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant whose collections they see, what they may do, and the one
    user they act for, if they are bound to one."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None
    # Set when the caller acts for one user of the tenant only (engram.server.ownership).
    user_id: str | None = None
