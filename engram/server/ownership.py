"""Per-user reach inside a tenant. A caller bound to one user (an API key created with
``--user``, or a JWT whose ``ENGRAM_JWT_USER_CLAIM`` claim names the user) reaches only that
user's conversations, memories and state; a tenant-wide caller reaches every user of its
tenant. Another user's conversation or memory looks missing (404), exactly as another
tenant's does; naming another user outright is refused (403)."""

from __future__ import annotations

from ..errors import Forbidden
from ..state.types import Namespace
from .principal import Principal

# Agent state of a user lives under ("user", <user id>, …); a bound caller is confined to it.
USER_LABEL = "user"


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
