"""Event kinds: the built-in ones and the registry of each tenant's custom kinds.

Built-in kinds keep their fixed shapes. engram records the *server* kinds itself (a client
posting one would skew the statistics); clients post the *feedback* kinds (``click``,
``rating``, checked by the HTTP schema) and any custom kind their tenant registered with a
JSON schema (engram.analytics.schema), which the event's ``properties`` must satisfy. Any
other kind is refused with a hint naming the kinds the tenant may post.

Each process keeps a tenant's registry for :data:`CACHE_SECONDS` (an event is validated
without a database read); a kind registered through another process is accepted once that
copy is refreshed, one registered through this one at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from ..errors import InvalidInput, NotFound
from ..store.contract import EventStore
from .schema import check_schema, errors

# Recorded by engram itself: searches (zero-result ones have result_count 0), answers,
# conversation messages, memory operations, ingestion, sign-ins (a key or token's first use
# of the day in a process), API keys created and revoked, other MCP tool calls, and the
# web app's 👍/👎 on an answer (``feedback``: rating "up" or "down", checked by the page).
SERVER_KINDS = (
    "search",
    "chat",
    "message",
    "memory",
    "ingest",
    "login",
    "key_created",
    "key_revoked",
    "tool_call",
    "feedback",
)
FEEDBACK_KINDS = ("click", "rating")
BUILT_IN = frozenset(SERVER_KINDS + FEEDBACK_KINDS)
NAME = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
CACHE_SECONDS = 5.0
MAX_SCHEMA_BYTES = 64 * 1024
MAX_ERRORS = 5


def searched(collection: str | list[str] | None) -> dict[str, Any]:
    """A ``search`` event's record of what was searched: ``collection`` for one (past-query
    suggestions follow it), ``collections`` for several, nothing when not said."""
    if isinstance(collection, list):
        if len(collection) == 1:
            return {"collection": collection[0]}
        return {"collections": collection}
    return {} if collection is None else {"collection": collection}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(
            f"invalid event kind name {name!r}",
            hint="1 to 64 characters: lower-case letters, digits, '_', '.', ':' or '-',"
            " starting with a letter",
        )
    if name in BUILT_IN:
        raise InvalidInput(
            f"{name!r} is a built-in event kind",
            hint="built-in kinds: " + ", ".join(sorted(BUILT_IN)) + "; choose another name",
        )
    return name


class EventKinds:
    """The registries of custom event kinds, per tenant, over the store."""

    def __init__(self, store: EventStore, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def register(self, tenant: str, name: str, schema: dict[str, Any]) -> None:
        """Register ``name`` (or replace its schema); InvalidInput for a bad name or schema."""
        check_name(name)
        check_schema(schema)
        if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
            raise InvalidInput(f"the schema of {name!r} is over {MAX_SCHEMA_BYTES} bytes")
        self.store.put_event_kind(tenant, name, schema)
        self._forget(tenant)

    def remove(self, tenant: str, name: str) -> None:
        if not self.store.delete_event_kind(tenant, name):
            raise NotFound(
                f"no event kind {name!r}", hint="list them with GET /v1/admin/event-kinds"
            )
        self._forget(tenant)

    def registered(self, tenant: str) -> dict[str, dict[str, Any]]:
        """name → schema of the tenant's custom kinds (this process's copy, refreshed every
        few seconds)."""
        now = time.monotonic()
        with self._lock:
            found = self._cache.get(tenant)
        if found is not None and now - found[0] < self.cache_seconds:
            return found[1]
        kinds = self.store.event_kinds(tenant)
        with self._lock:
            self._cache[tenant] = (now, kinds)
        return kinds

    def validate(self, tenant: str, kind: str, properties: dict[str, Any]) -> None:
        """Raise InvalidInput (422) unless clients may post ``kind`` with ``properties``."""
        if kind in FEEDBACK_KINDS:
            return
        kinds = self.registered(tenant)
        schema = kinds.get(kind)
        if schema is None:
            kinds = self._refresh(tenant)  # registered a moment ago elsewhere?
            schema = kinds.get(kind)
        if schema is None:
            postable = ", ".join([*FEEDBACK_KINDS, *kinds])
            why = "is recorded by engram itself" if kind in SERVER_KINDS else "is not registered"
            raise InvalidInput(
                f"event kind {kind!r} {why}",
                hint=f"kinds this tenant may post: {postable}; register a custom kind with"
                " POST /v1/admin/event-kinds {name, schema} (or `engram events kinds add`)",
            )
        found = []
        for problem in errors(schema, properties):
            found.append(problem)
            if len(found) == MAX_ERRORS:
                break
        if found:
            raise InvalidInput(
                f"the properties of a {kind!r} event do not match its schema: " + "; ".join(found),
                hint="see the kind's schema: GET /v1/admin/event-kinds",
                errors=found,
            )

    def _refresh(self, tenant: str) -> dict[str, dict[str, Any]]:
        self._forget(tenant)
        return self.registered(tenant)

    def _forget(self, tenant: str) -> None:
        with self._lock:
            self._cache.pop(tenant, None)
