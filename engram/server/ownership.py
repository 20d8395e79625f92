"""Per-user reach inside a tenant. A caller bound to one user (an API key created with
``--user``, or a JWT whose ``ENGRAM_JWT_USER_CLAIM`` claim names the user) reaches only that
user's conversations, memories and state; a tenant-wide caller reaches every user of its
tenant. Another user's conversation or memory looks missing (404), exactly as another
tenant's does; naming another user outright is refused (403)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Forbidden, MemoryNotFound
from ..state.types import USER_LABEL, Namespace
from .principal import Principal

if TYPE_CHECKING:
    from ..engine import Engram
    from ..memory.types import MemoryRecord

# Agent state of a user lives under ("user", <user id>, …); a bound caller is confined to it.


def acting_user(principal: Principal, user_id: str) -> str:
    """``user_id`` when the caller may act for that user; Forbidden otherwise."""
    if principal.user_id is not None and user_id != principal.user_id:
        raise Forbidden(
            f"this key acts for user {principal.user_id!r} only",
            hint="use a tenant-wide key to reach other users",
        )
    return user_id


def owns(principal: Principal, owner: str) -> bool:
    """Whether a row owned by ``owner`` is within the caller's reach."""
    return principal.user_id is None or owner == principal.user_id


def state_namespace(principal: Principal, namespace: Namespace) -> Namespace:
    """The namespace of an item the caller reads or writes: a bound caller's must lie under
    ("user", <its user id>)."""
    if principal.user_id is None:
        return namespace
    home = (USER_LABEL, principal.user_id)
    if namespace[:2] != home:
        raise Forbidden(
            f"this key reaches state under {'/'.join(home)} only",
            hint=f"put the user's state in namespaces that start with {'/'.join(home)}",
        )
    return namespace


def state_prefix(principal: Principal, prefix: Namespace) -> Namespace:
    """The prefix a listing or search really covers: for a bound caller, a prefix above its
    home ("", "user") narrows to the home; one elsewhere is refused."""
    if principal.user_id is None:
        return prefix
    home = (USER_LABEL, principal.user_id)
    if home[: len(prefix)] == prefix:
        return home
    return state_namespace(principal, prefix)


def reachable_memory(
    db: Engram, principal: Principal, memory_id: str, *, include_deleted: bool = False
) -> MemoryRecord:
    """The memory, if the caller may reach it; MemoryNotFound otherwise (another user's
    memory looks missing, as another tenant's does)."""
    record = db.memory.get(memory_id, tenant=principal.tenant, include_deleted=include_deleted)
    if not owns(principal, record.user_id):
        raise MemoryNotFound(f"no memory {memory_id!r}")
    return record


def check_memory(
    db: Engram, principal: Principal, memory_id: str, *, include_deleted: bool = False
) -> None:
    """Refuse another user's memory to a caller bound to one user; a tenant-wide caller
    needs no read here (the operation itself raises MemoryNotFound)."""
    if principal.user_id is not None:
        reachable_memory(db, principal, memory_id, include_deleted=include_deleted)
