"""Request dependencies, as ``Annotated`` aliases: ``db: DB``, ``principal: CurrentPrincipal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..engine import Engram

ALL_SCOPES = frozenset({"read", "write", "admin"})


async def get_db(request: Request) -> Engram:
    """The application's one :class:`Engram`, opened by the lifespan."""
    db: Engram | None = getattr(request.app.state, "db", None)
    if db is None:
        raise RuntimeError("the engram database is not open (the app's lifespan did not run)")
    return db


DB = Annotated[Engram, Depends(get_db)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant whose collections they see, and what they may do."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None


async def get_principal() -> Principal:
    """The caller of the current request.

    There is no authentication yet: every request acts for the ``default`` tenant with every
    scope. Authentication replaces this one function (and only it).
    """
    return Principal(tenant="default", scopes=ALL_SCOPES)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
