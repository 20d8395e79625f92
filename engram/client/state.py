"""``client.state``: agent state over HTTP (``/v1/state``), as ``db.state``
(:class:`engram.state.StateService`), as specs (see :mod:`.flow`) of the sync and the async
client's methods. The tenant is the API key's; a key bound to a user reaches only the
namespaces under ``("user", <its user>)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..state.types import Namespace, StateItem, key_of, namespace_of
from .convert import from_json
from .flow import Flow, fetch
from .http import path

NamespaceLike = str | Sequence[str]  # ("user", "42") or "user/42"


def put(
    namespace: NamespaceLike,
    key: str,
    value: Any,
    *,
    if_version: int | None = None,
    ttl: float | None = None,
    index: Sequence[str] | None = None,
) -> Flow[StateItem]:
    """Store ``value`` (any JSON value) under ``key``; returns the item with its new
    version. ``if_version``: 0 creates only, n replaces only version n (else
    VersionConflict, HTTP 412). ``ttl``: seconds until the item expires. ``index``: the
    fields of a JSON object (dotted paths) to embed for :meth:`search`."""
    headers = {}
    if if_version == 0:
        headers["If-None-Match"] = "*"
    elif if_version is not None:
        headers["If-Match"] = f'"{if_version}"'
    body = {"value": value, "ttl": ttl, "index": None if index is None else list(index)}
    return fetch("PUT", _item_path(namespace, key), _item, json=body, headers=headers)


def get(namespace: NamespaceLike, key: str) -> Flow[StateItem]:
    """The item; StateNotFound (HTTP 404) when there is none or it expired."""
    return fetch("GET", _item_path(namespace, key), _item)


def delete(namespace: NamespaceLike, key: str, *, if_version: int | None = None) -> Flow[None]:
    """Delete the item (StateNotFound when there is none); with ``if_version``, only that
    version (else VersionConflict)."""
    headers = {} if if_version is None else {"If-Match": f'"{if_version}"'}
    return fetch("DELETE", _item_path(namespace, key), lambda body: None, headers=headers)


def items(
    prefix: NamespaceLike = (),
    *,
    filter: dict[str, Any] | None = None,  # noqa: A002 - db.state's name (LangGraph's)
    limit: int = 100,
    offset: int = 0,
) -> Flow[list[StateItem]]:
    """Items under ``prefix`` (and the namespaces below it) by namespace and key; a
    ``filter`` on the values' fields as for document metadata (``{"status": "open"}``)."""
    return search(prefix, filter=filter, limit=limit, offset=offset)


def search(
    prefix: NamespaceLike = (),
    *,
    query: str | None = None,
    filter: dict[str, Any] | None = None,  # noqa: A002
    limit: int = 10,
    offset: int = 0,
) -> Flow[list[StateItem]]:
    """Items under ``prefix`` passing ``filter``; with a ``query``, only indexed items,
    best first by similarity of their indexed fields (``score``)."""
    body = {
        "prefix": _prefix(prefix),
        "query": query,
        "filter": filter,
        "limit": limit,
        "offset": offset,
    }
    return fetch("POST", "/v1/state:search", lambda b: [_item(i) for i in b["data"]], json=body)


def namespaces(
    prefix: NamespaceLike = (),
    *,
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Flow[list[Namespace]]:
    """The namespaces holding items under ``prefix``, cut to ``max_depth`` labels (and
    then deduplicated), in byte order."""
    body = {"prefix": _prefix(prefix), "max_depth": max_depth, "limit": limit, "offset": offset}
    return fetch(
        "POST", "/v1/state:namespaces", lambda b: [tuple(ns) for ns in b["data"]], json=body
    )


def _item_path(namespace: NamespaceLike, key: str) -> str:
    # Checked here as db.state checks them: a bad name fails before anything is sent.
    return path("state", *namespace_of(namespace), key_of(key))


def _prefix(prefix: NamespaceLike) -> list[str]:
    return list(namespace_of(prefix, allow_empty=True))


def _item(body: Any) -> StateItem:
    return from_json(StateItem, body, value=body.get("value"))
