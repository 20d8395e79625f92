"""LangGraph's long-term memory store on engram's agent state: ``EngramStore(db)`` is a
``langgraph.store.base.BaseStore`` whose items live in ``db.state`` (one SQLite file, or
PostgreSQL shared by many processes), so a graph's memories outlive the process.

Every LangGraph operation maps onto :class:`engram.state.StateService`:

- ``put`` / ``get`` / ``delete`` (``PutOp`` with ``value=None``) → ``state.put`` / ``get`` /
  ``delete``; a missing item reads as ``None``, deleting one is a no-op.
- ``ttl`` is in minutes in LangGraph and in seconds in engram (``ttl * 60``). Expired items are
  invisible at once. ``refresh_ttl`` (on by default, as in LangGraph: ``ttl_config``'s
  ``refresh_on_read``) gives an item read by ``get`` or ``search`` its TTL again from now.
- ``index``: the fields to embed with engram's embedding model (``False``: none; ``None``: the
  store's ``index={"fields": [...]}``, and no embedding when the store has none). Fields are
  dotted paths; ``"$"`` is the whole value; LangGraph's array paths (``a[0]``, ``a[*]``) are
  refused.
- ``search``: ``filter`` is engram's filter syntax already (``$eq $ne $gt $gte $lt $lte``); a
  nested object is matched field by field (``{"a": {"b": 1}}`` → ``{"a.b": 1}``). A ``query``
  ranks the indexed items by cosine similarity (``score``); as in LangGraph's in-memory store,
  a page not filled by indexed items is filled with unindexed ones (score ``None``).
- ``list_namespaces``: prefix and suffix conditions (``"*"`` matches any one label),
  ``max_depth``, ``limit`` and ``offset``, worked out here over engram's namespace listing.

The checkpointer, :class:`EngramSaver` (threads, interrupts, time travel), lives in
:mod:`engram.integrations.langgraph_checkpoint` and is exported here too.

Install with ``pip install 'engram[langgraph]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
        validate_op_namespace,
    )
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "engram.integrations.langgraph needs LangGraph: pip install 'engram[langgraph]'"
    ) from exc

from ..state import StateNotFound
from ..state.service import DEFAULT_TENANT, MAX_LIMIT
from .langgraph_checkpoint import EngramSaver

if TYPE_CHECKING:
    from ..engine import Engram
    from ..state import StateItem, StateService

__all__ = ["EngramSaver", "EngramStore"]

WHOLE_VALUE = "$"


class EngramStore(BaseStore):
    """A LangGraph ``BaseStore`` over ``db.state`` (see the module docstring).

    ``tenant``: the engram tenant the items belong to. ``index``: ``{"fields": [...]}``, the
    fields embedded when a put does not say (LangGraph's ``IndexConfig``; its ``embed`` and
    ``dims`` are not used: engram embeds with its own model). ``default_ttl``: minutes, for
    puts that do not give a TTL.
    """

    supports_ttl = True

    def __init__(
        self,
        db: Engram,
        *,
        tenant: str = DEFAULT_TENANT,
        index: Mapping[str, Any] | None = None,
        default_ttl: float | None = None,
    ) -> None:
        self.db = db
        self.tenant = tenant
        # LangGraph's default fields are the whole value; no index config: no default.
        self.index_fields: list[str] | None = (
            None if index is None else list(index.get("fields") or [WHOLE_VALUE])
        )
        for field in self.index_fields or ():
            _check_field(field)
        self.ttl_config = TTLConfig(refresh_on_read=True, default_ttl=default_ttl)

    @property
    def state(self) -> StateService:
        return self.db.state

    # -- the two methods LangGraph calls -----------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order, each on its own (engram has no multi-key transaction)."""
        results: list[Result] = []
        for op in ops:
            validate_op_namespace(op)
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValueError(f"unknown LangGraph store operation: {op!r}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread (engram's state calls are blocking)."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- one operation each ------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        try:
            found = self.state.get(
                op.namespace, op.key, refresh_ttl=bool(op.refresh_ttl), tenant=self.tenant
            )
        except StateNotFound:
            return None
        return _item(found)

    def _put(self, op: PutOp) -> None:
        if op.value is None:
            with contextlib.suppress(StateNotFound):  # deleting nothing is not an error
                self.state.delete(op.namespace, op.key, tenant=self.tenant)
            return
        value = dict(op.value)
        fields = self.index_fields if op.index is None else (op.index or None)
        ttl = op.ttl  # BaseStore.put has already put in the default TTL
        self.state.put(
            op.namespace,
            op.key,
            value,
            ttl=ttl * 60 if ttl is not None else None,
            index=_present_fields(value, fields) if fields else None,
            tenant=self.tenant,
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        where = _where(op.filter)
        if op.query is None:
            found = self.state.search(
                op.namespace_prefix,
                filter=where,
                limit=op.limit,
                offset=op.offset,
                refresh_ttl=bool(op.refresh_ttl),
                tenant=self.tenant,
            )
            return [_search_item(item) for item in found]
        # Exact search: every indexed item under the prefix is scored; engram pages at most
        # MAX_LIMIT items, the adapter takes its page of those.
        scored = self.state.search(
            op.namespace_prefix, query=op.query, filter=where, limit=MAX_LIMIT, tenant=self.tenant
        )
        page = scored[op.offset : op.offset + op.limit]
        if len(page) < op.limit:
            indexed = {(item.namespace, item.key) for item in scored}
            rest = self.state.search(
                op.namespace_prefix, filter=where, limit=MAX_LIMIT, tenant=self.tenant
            )
            page += [i for i in rest if (i.namespace, i.key) not in indexed][: op.limit - len(page)]
        if op.refresh_ttl:
            page = self.state.refresh(page, tenant=self.tenant)
        return [_search_item(item) for item in page]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        # engram lists by a literal prefix: the labels before the first wildcard of the
        # longest prefix condition narrow the scan; every condition is then checked here.
        prefix: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                literal = _literal_head(condition.path)
                if len(literal) > len(prefix):
                    prefix = literal
        seen: dict[tuple[str, ...], None] = {}
        for namespace in self._all_namespaces(prefix):
            if all(_matches(condition, namespace) for condition in conditions):
                cut = namespace[: op.max_depth] if op.max_depth is not None else namespace
                seen[cut] = None
        return sorted(seen)[op.offset : op.offset + op.limit]

    def _all_namespaces(self, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        offset = 0
        while True:
            page = self.state.namespaces(prefix, limit=MAX_LIMIT, offset=offset, tenant=self.tenant)
            yield from page
            if len(page) < MAX_LIMIT:
                return
            offset += MAX_LIMIT


def _item(found: StateItem) -> Item:
    return Item(
        value=found.value,
        key=found.key,
        namespace=found.namespace,
        created_at=_time(found.created_at),
        updated_at=_time(found.updated_at),
    )


def _search_item(found: StateItem) -> SearchItem:
    return SearchItem(
        namespace=found.namespace,
        key=found.key,
        value=found.value,
        created_at=_time(found.created_at),
        updated_at=_time(found.updated_at),
        score=found.score,
    )


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _check_field(field: str) -> None:
    if not isinstance(field, str) or "[" in field or not field:
        raise ValueError(
            f"index field {field!r}: engram embeds dotted paths of a JSON object "
            "('title', 'meta.title') or '$' (the whole value), not array paths"
        )


def _present_fields(value: dict[str, Any], fields: Sequence[str]) -> list[str] | None:
    """The fields to embed that the value has (None: nothing to embed, as LangGraph skips
    missing fields); ``"$"`` stands for every top-level field."""
    out: list[str] = []
    for field in fields:
        _check_field(field)
        if field == WHOLE_VALUE:
            out += [name for name in value if value[name] is not None]
            continue
        found: Any = value
        for part in field.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found is not None:
            out.append(field)
    return list(dict.fromkeys(out)) or None


def _where(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:  # noqa: A002
    """LangGraph's filter in engram's syntax: operators pass through, a nested object without
    operators becomes conditions on its dotted fields."""
    if not filter:
        return None
    where: dict[str, Any] = {}

    def add(path: str, spec: Any) -> None:
        if isinstance(spec, Mapping) and spec and not any(str(k).startswith("$") for k in spec):
            for name, inner in spec.items():
                add(f"{path}.{name}", inner)
        elif isinstance(spec, list | tuple):
            raise ValueError(f"filter on {path!r}: engram does not match whole lists")
        else:
            where[path] = dict(spec) if isinstance(spec, Mapping) else spec

    for name, spec in filter.items():
        add(str(name), spec)
    return where


def _literal_head(path: Sequence[str]) -> tuple[str, ...]:
    head: list[str] = []
    for label in path:
        if label == "*":
            break
        head.append(label)
    return tuple(head)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise ValueError(f"unknown namespace match type: {condition.match_type!r}")
    return all(want == "*" or have == want for have, want in pairs)
