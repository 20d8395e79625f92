"""Agent state: the working memory of agents and sessions (plans, tool results, session
variables, user preferences), as JSON values under keys in namespaces.

A namespace is a path of labels chosen by the application, e.g. ``("user", "42", "agent",
"planner")``; listing and search take a namespace prefix and reach everything below it. Every
key has a version: a write may say which version it expects (compare-and-set), so agents in
several processes never lose each other's updates. A value may expire (``ttl``), and chosen
fields of it may be embedded (``index``) for semantic search. The shape follows LangGraph's
``BaseStore`` (put/get/delete/search/list_namespaces over namespace tuples).

Obtain it as ``db.state``; the embedding model is loaded only when a value is indexed or a
search has a query.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, StateNotFound
from ..search.filters import matches, normalize_where
from .types import MAX_VALUE_BYTES, Namespace, StateItem, key_of, namespace_of, path_of

if TYPE_CHECKING:
    from ..providers.embedders.base import Embedder
    from ..store.contract import StateStore

DEFAULT_TENANT = "default"
# Expired items are invisible at once; their rows are deleted at most this often.
PURGE_EVERY_SECONDS = 60.0
MAX_LIMIT = 1000


NamespaceLike = str | Sequence[str]  # ("user", "42") or "user/42"


class StateService:
    """Agent state on top of an engram store (see the module docstring)."""

    def __init__(self, store: StateStore, embedder: Callable[[], Embedder]) -> None:
        self.store = store
        self._embedder = embedder
        self._purged = 0.0
        self._purge_lock = threading.Lock()

    # -- one key -----------------------------------------------------------------------------
    def put(
        self,
        namespace: NamespaceLike,
        key: str,
        value: Any,
        *,
        if_version: int | None = None,
        ttl: float | None = None,
        index: Sequence[str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> StateItem:
        """Store ``value`` (any JSON value) under ``key``; returns the item with its new
        version. ``if_version``: 0 creates only, n replaces only version n (else
        VersionConflict, HTTP 412). ``ttl``: seconds until the item expires. ``index``: the
        fields of a JSON object (dotted paths) to embed for :meth:`search`."""
        ns, key = namespace_of(namespace), key_of(key)
        text = _json(value)
        if if_version is not None and (isinstance(if_version, bool) or if_version < 0):
            raise InvalidInput("if_version must be a version number (0: the key must not exist)")
        expires_at = None
        if ttl is not None:
            if not ttl > 0:
                raise InvalidInput("ttl must be a positive number of seconds")
            expires_at = datetime.now(UTC) + timedelta(seconds=float(ttl))
        embedding = None
        if index:
            embedder = self._embedder()
            embedding = (embedder.model_id, embedder.embed_batch([_indexed_text(value, index)])[0])
        self._maybe_purge()
        return self.store.put_state(
            tenant,
            path_of(ns),
            key,
            text,
            expect=if_version,
            expires_at=expires_at,
            embedding=embedding,
            ttl=None if ttl is None else float(ttl),
        )

    def get(
        self,
        namespace: NamespaceLike,
        key: str,
        *,
        refresh_ttl: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> StateItem:
        """The item; StateNotFound (HTTP 404) when there is none or it expired. With
        ``refresh_ttl``, an item written with a TTL gets that TTL again from now."""
        ns, key = namespace_of(namespace), key_of(key)
        item = self.store.get_state(tenant, path_of(ns), key)
        if item is None:
            raise StateNotFound(f"no state {path_of(ns)}/{key}")
        return self.refresh([item], tenant=tenant)[0] if refresh_ttl else item

    def refresh(self, items: list[StateItem], *, tenant: str = DEFAULT_TENANT) -> list[StateItem]:
        """Give ``items`` that were written with a TTL that TTL again from now (LangGraph's
        ``refresh_ttl``); returns them with their new expiry."""
        ttl_items = [i for i in items if i.expires_at is not None]
        if not ttl_items:
            return items
        fresh = self.store.refresh_state(tenant, [(path_of(i.namespace), i.key) for i in ttl_items])
        out = []
        for item in items:
            expiry = fresh.get((path_of(item.namespace), item.key))
            out.append(
                item
                if expiry is None
                else dataclasses.replace(item, expires_at=expiry.isoformat(timespec="microseconds"))
            )
        return out

    def delete(
        self,
        namespace: NamespaceLike,
        key: str,
        *,
        if_version: int | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Delete the item (StateNotFound when there is none); with ``if_version``, only that
        version (else VersionConflict)."""
        ns, key = namespace_of(namespace), key_of(key)
        if not self.store.delete_state(tenant, path_of(ns), key, expect=if_version):
            raise StateNotFound(f"no state {path_of(ns)}/{key}")

    # -- many keys ---------------------------------------------------------------------------
    def items(
        self,
        prefix: NamespaceLike = (),
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the name LangGraph uses
        limit: int = 100,
        offset: int = 0,
        tenant: str = DEFAULT_TENANT,
    ) -> list[StateItem]:
        """Items under ``prefix`` (and the namespaces below it) by namespace and key; a
        ``filter`` on the values' fields as for document metadata (``{"status": "open"}``)."""
        return self.search(prefix, filter=filter, limit=limit, offset=offset, tenant=tenant)

    def search(
        self,
        prefix: NamespaceLike = (),
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,  # noqa: A002 - the name LangGraph uses
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> list[StateItem]:
        """Items under ``prefix`` passing ``filter``; with a ``query``, only indexed items,
        best first by cosine similarity of their indexed fields (``score``). Exact: every
        item under the prefix is read and scored, which suits an agent's or a user's state
        (thousands of items), not a corpus."""
        ns = namespace_of(prefix, allow_empty=True)
        _page(limit, offset)
        conditions = normalize_where(filter)
        model_id = None
        if query is not None:
            if not query.strip():
                raise InvalidInput("the query is empty")
            embedder = self._embedder()
            model_id = embedder.model_id
            qvec = np.asarray(embedder.embed_query(query), dtype=np.float32)
        found = [
            (item, vec)
            for item, vec in self.store.scan_state(tenant, path_of(ns), model_id=model_id)
            if matches(conditions, item.value)
        ]
        if query is None:
            page = [item for item, _ in found[offset : offset + limit]]
        else:
            scored = [(item, _cosine(qvec, vec)) for item, vec in found if vec is not None]
            scored.sort(key=lambda pair: -pair[1])  # stable: ties stay in namespace, key order
            page = [
                StateItem(**{**item.__dict__, "score": score})
                for item, score in scored[offset : offset + limit]
            ]
        return self.refresh(page, tenant=tenant) if refresh_ttl else page

    def namespaces(
        self,
        prefix: NamespaceLike = (),
        *,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
        tenant: str = DEFAULT_TENANT,
    ) -> list[Namespace]:
        """The namespaces holding items under ``prefix``, cut to ``max_depth`` labels (and
        then deduplicated), in byte order."""
        ns = namespace_of(prefix, allow_empty=True)
        _page(limit, offset)
        if max_depth is not None and max_depth < 1:
            raise InvalidInput("max_depth must be at least 1")
        seen: dict[Namespace, None] = {}
        for path in self.store.state_namespaces(tenant, path_of(ns)):
            labels = tuple(path.split("/"))
            seen[labels[:max_depth] if max_depth else labels] = None
        return list(seen)[offset : offset + limit]

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        with self._purge_lock:
            if now - self._purged < PURGE_EVERY_SECONDS:
                return
            self._purged = now
        self.store.purge_state()


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a state value must be JSON: {exc}") from exc
    if len(text.encode()) > MAX_VALUE_BYTES:
        raise InvalidInput(
            f"a state value is at most {MAX_VALUE_BYTES} bytes of JSON",
            hint="keep documents in a collection and their ids in state",
        )
    return text


def _indexed_text(value: Any, fields: Sequence[str]) -> str:
    if not isinstance(value, dict):
        raise InvalidInput("index names fields of a JSON object; this value is not one")
    parts = []
    for field in fields:
        found: Any = value
        for part in str(field).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found is not None:
            parts.append(found if isinstance(found, str) else json.dumps(found, ensure_ascii=False))
    if not parts:
        raise InvalidInput(f"none of the indexed fields {list(fields)} is in the value")
    return "\n".join(parts)


def _cosine(query: np.ndarray, vector: np.ndarray) -> float:
    norm = float(np.linalg.norm(query) * np.linalg.norm(vector))
    return float(query @ vector / norm) if norm > 0 else 0.0


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
