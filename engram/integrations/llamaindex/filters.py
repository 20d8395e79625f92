"""LlamaIndex's ``MetadataFilters`` in engram's filter language (engram.search.filters).

- ``EQ`` ``NE`` → ``$eq`` ``$ne`` (a missing field is "not equal")
- ``GT`` ``GTE`` ``LT`` ``LTE`` → ``$gt`` ``$gte`` ``$lt`` ``$lte`` (numbers; strings compare
  as strings)
- ``IN`` → ``$in``; ``NIN`` → ``{"$not": {key: {"$in": [...]}}}`` (a missing field passes)
- ``TEXT_MATCH_INSENSITIVE`` → ``$contains`` (substring; engram folds ASCII letters only)
- ``IS_EMPTY`` → missing or ``""`` (the store keeps no ``None`` nor ``[]`` as a field)
- ``AND`` → the fields of one filter; ``OR`` → ``$or``; ``NOT`` → ``{"$not": {"$or": [...]}}``
  (none of the filters holds, as in LlamaIndex's own stores); nested ``MetadataFilters`` nest
  the same way (engram allows 8 levels)

``TEXT_MATCH`` (case-sensitive), ``CONTAINS``, ``ANY`` and ``ALL`` (membership in a list
field) have no engram equivalent and are refused with an :class:`~engram.errors.InvalidInput`
that says what to use instead.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from ...errors import InvalidInput
from ...search.filters import normalize_where

Where = dict[str, Any]

_SAME = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$contains",
}
_REFUSED = {
    FilterOperator.TEXT_MATCH: "engram's $contains ignores the case of ASCII letters: use"
    " FilterOperator.TEXT_MATCH_INSENSITIVE",
    FilterOperator.CONTAINS: "engram's filters have no list membership; store the values as"
    " separate fields, or a string and match it with TEXT_MATCH_INSENSITIVE",
    FilterOperator.ANY: "engram's filters have no list membership; use IN on a scalar field",
    FilterOperator.ALL: "engram's filters have no list membership; AND several EQ filters on"
    " scalar fields",
}


def to_where(filters: MetadataFilters | None) -> Where | None:
    """The engram filter for ``filters`` (None for no filter); raises InvalidInput for an
    operator engram cannot express, or a key or value engram refuses."""
    if filters is None or not filters.filters:
        return None
    where = _filters(filters)
    normalize_where(where)  # engram's own validation: field names, value types, depth
    return where


def _filters(filters: MetadataFilters) -> Where:
    parts = [
        _filters(f) if isinstance(f, MetadataFilters) else _one(f)
        for f in filters.filters
        # an empty nested group constrains nothing
        if not (isinstance(f, MetadataFilters) and not f.filters)
    ]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all_of(parts)
    if condition == FilterCondition.OR:
        return parts[0] if len(parts) == 1 else {"$or": parts}
    if condition == FilterCondition.NOT:  # as LlamaIndex's own stores: none of them holds
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    raise InvalidInput(f"unknown filter condition {condition!r}", hint="use AND, OR or NOT")


def _one(f: MetadataFilter) -> Where:
    op = FilterOperator(f.operator)
    value: Any = f.value
    if op in _REFUSED:
        raise InvalidInput(
            f"engram cannot filter {f.key!r} with {op.name} ({op.value!r})", hint=_REFUSED[op]
        )
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{f.key: {"$exists": False}}, {f.key: {"$eq": ""}}]}
    if value is None:
        raise InvalidInput(
            f"the filter on {f.key!r} has no value",
            hint="to find nodes without the field, use FilterOperator.IS_EMPTY",
        )
    if op in (FilterOperator.IN, FilterOperator.NIN) and not isinstance(value, list):
        value = [value]
    if op == FilterOperator.NIN:
        return {"$not": {f.key: {"$in": value}}}
    if op not in _SAME:
        raise InvalidInput(f"engram cannot filter {f.key!r} with {op.name} ({op.value!r})")
    return {f.key: {_SAME[op]: value}}


def all_of(parts: list[Where]) -> Where:
    """One filter that holds when every part does. Parts are merged into one dict where
    their keys differ (engram ANDs the fields of a filter, and the operators of a field);
    a part that would overwrite a key goes into a nested single-branch ``$or``."""
    merged: Where = {}
    rest: list[Where] = []
    for part in parts:
        if any(_clash(merged, key, spec) for key, spec in part.items()):
            rest.append(part)
            continue
        for key, spec in part.items():
            if isinstance(spec, dict) and not key.startswith("$") and key in merged:
                merged[key] = {**merged[key], **spec}
            else:
                merged[key] = spec
    if not rest:
        return merged
    nested = all_of(rest)
    if "$or" not in merged:
        merged["$or"] = [nested]  # one branch: the branch itself
        return merged
    return {"$or": [merged], "$not": {"$not": nested}}


def _clash(merged: Where, key: str, spec: Any) -> bool:
    if key not in merged:
        return False
    if key.startswith("$"):
        return True
    # Two conditions on one field merge when their operators differ: {"$gte": 1, "$lt": 5}.
    return (
        not isinstance(spec, dict)
        or not isinstance(merged[key], dict)
        or bool(merged[key].keys() & spec.keys())
    )
