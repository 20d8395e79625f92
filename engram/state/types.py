"""Records and rules of agent state: namespaces, items, versions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidInput, VersionConflict

# A namespace is a path of labels, e.g. ("user", "42", "agent", "planner"): each label 1–128
# characters, no "/" (the path separator) and no control characters; at most 16 labels.
MAX_DEPTH = 16
# A user's own state lives under ("user", <user id>): what a key bound to the user reaches,
# and what erasing the user deletes (engram.memory erase_user).
USER_LABEL = "user"
MAX_LABEL = 128
MAX_KEY = 256
# A value's JSON text, at most (an agent's working state, not a document store).
MAX_VALUE_BYTES = 1 << 20
_BAD = re.compile(r"[/\x00-\x1f\x7f]")

Namespace = tuple[str, ...]

__all__ = [
    "Namespace",
    "StateItem",
    "VersionConflict",
    "key_of",
    "namespace_of",
    "path_of",
    "user_home",
]


@dataclass(frozen=True)
class StateItem:
    """One value of agent state. ``version`` starts at 1 and grows by one with every write
    of the key; it is the compare-and-set token (HTTP: the ETag)."""

    namespace: Namespace
    key: str
    value: Any
    version: int
    created_at: str
    updated_at: str
    expires_at: str | None = None
    # Set by search: cosine similarity to the query (None when searched without a query).
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["namespace"] = list(self.namespace)
        return out


def namespace_of(value: str | Sequence[str], *, allow_empty: bool = False) -> Namespace:
    """A namespace from a tuple/list of labels or a "a/b/c" path, checked."""
    labels = tuple(value.strip("/").split("/")) if isinstance(value, str) else tuple(value)
    if labels == ("",):
        labels = ()
    if not labels and not allow_empty:
        raise InvalidInput("a namespace needs at least one label, e.g. user/42")
    if len(labels) > MAX_DEPTH:
        raise InvalidInput(f"a namespace has at most {MAX_DEPTH} labels, not {len(labels)}")
    for label in labels:
        if not isinstance(label, str) or not label or len(label) > MAX_LABEL:
            raise InvalidInput(
                f"namespace label {label!r} must be a string of 1 to {MAX_LABEL} characters"
            )
        if _BAD.search(label):
            raise InvalidInput(
                f"namespace label {label!r} contains '/' or a control character",
                hint="a namespace is a list of labels: ['user', '42'] or the path 'user/42'",
            )
    return labels


def key_of(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or _BAD.sub("", key) != key:
        raise InvalidInput(
            f"a state key must be 1 to {MAX_KEY} characters without '/' or control characters",
        )
    return key


def user_home(user_id: str) -> str:
    """The namespace path of ``user_id``'s own state: ``user/<id>``."""
    return f"{USER_LABEL}/{user_id}"


def path_of(namespace: Namespace) -> str:
    return "/".join(namespace)
