"""LangChain-style metadata filters → engram's filter dicts (engram.search.filters).

LangChain vector stores take Mongo-like filters. Most of them are engram's syntax already;
the rest is rewritten into it, and what engram cannot express is refused with
:class:`~engram.errors.InvalidInput` naming the operator:

==========================================  ===================================================
LangChain                                    engram
==========================================  ===================================================
``{"f": v}``, ``{"f": {"$eq": v}}``          the same
``$ne $gt $gte $lt $lte $in $exists``         the same (``$contains``: engram's substring match)
``{"f": {"$nin": [a, b]}}``                  ``{"$not": {"f": {"$in": [a, b]}}}``
``{"f": {"$between": [lo, hi]}}``            ``{"f": {"$gte": lo, "$lte": hi}}``
``{"a": {"b": v}}`` (no ``$`` keys)          ``{"a.b": v}`` (a nested field)
``{"$and": [f1, f2, ...]}``                  the filters' fields merged into one dict; a field
                                             or combinator they share is ANDed as
                                             ``$not``/``$or`` (De Morgan)
``{"$or": [...]}``, ``{"$not": {...}}``      the same, their filters translated
``{"$keys": ["id", ...]}``                   the same: documents with these ids
``$like $ilike $regex``, others              refused
==========================================  ===================================================

Missing fields follow engram: a document without the field is "not equal" to any value,
so ``$ne``, ``$nin`` and ``$not`` keep it, while ``$eq``, ``$in``, ``$gt``... leave it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import InvalidInput

__all__ = ["to_engram_filter"]

# Operators engram evaluates itself (engram.search.filters.OPERATORS).
PASSED = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$exists", "$contains")
REWRITTEN = ("$nin", "$between")
_SUPPORTED = ", ".join((*PASSED, *REWRITTEN, "$and", "$or", "$not", "$keys"))

Clause = dict[str, Any]  # one key: a field (→ its operators) or a combinator


def to_engram_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:  # noqa: A002
    """The engram filter equivalent to a LangChain-style ``filter`` (None for none)."""
    if not filter:
        return None
    return _and(_clauses(filter, ""))


def _clauses(filter: Mapping[str, Any], prefix: str) -> list[Clause]:
    """``filter`` as a list of single-key clauses, to be ANDed."""
    if not isinstance(filter, Mapping):
        raise InvalidInput(
            f"a filter is a dict of metadata fields and conditions, not {type(filter).__name__}"
        )
    out: list[Clause] = []
    for key, spec in filter.items():
        if not isinstance(key, str):
            raise InvalidInput(f"a filter's field names are strings, not {key!r}")
        if key.startswith("$"):
            if prefix:
                raise InvalidInput(f"{key} cannot stand inside the field {prefix[:-1]!r}")
            out.extend(_combinator(key, spec))
        elif isinstance(spec, Mapping) and spec and not any(str(k).startswith("$") for k in spec):
            out.extend(_clauses(spec, f"{prefix}{key}."))  # a nested object: field by field
        else:
            out.extend(_field(prefix + key, spec))
    return out


def _combinator(key: str, spec: Any) -> list[Clause]:
    if key in ("$and", "$or"):
        if not isinstance(spec, list) or not spec:
            raise InvalidInput(f"{key} takes a non-empty list of filters")
        if key == "$and":  # its filters' clauses join those of the filter around it
            return [clause for branch in spec for clause in _clauses(branch, "")]
        return [{"$or": [_and(_clauses(branch, "")) for branch in spec]}]
    if key == "$not":
        if isinstance(spec, list):  # some stores take a list: none of them holds
            return [{"$not": {"$or": [_and(_clauses(branch, "")) for branch in spec]}}]
        return [{"$not": _and(_clauses(spec, ""))}]
    if key == "$keys":
        return [{"$keys": spec}]
    raise InvalidInput(
        f"engram cannot filter with {key!r}", hint=f"engram's filters take {_SUPPORTED}"
    )


def _field(name: str, spec: Any) -> list[Clause]:
    if not isinstance(spec, Mapping):
        return [{name: {"$eq": spec}}]
    if not spec:
        raise InvalidInput(f"empty condition for filter field {name!r}")
    out: list[Clause] = []
    ops: dict[str, Any] = {}
    for op, value in spec.items():
        if op in PASSED:
            ops[op] = value
        elif op == "$nin":
            out.append({"$not": {name: {"$in": value}}})
        elif op == "$between":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise InvalidInput(f"$between on {name!r} takes [low, high]")
            out.append({name: {"$gte": value[0], "$lte": value[1]}})
        else:
            hint = f"engram's filters take {_SUPPORTED}"
            if op in ("$like", "$ilike"):
                hint = "$contains matches a substring (ASCII case ignored); " + hint
            raise InvalidInput(f"engram cannot filter {name!r} with {op!r}", hint=hint)
    if ops:
        out.insert(0, {name: ops})
    return out


def _and(clauses: list[Clause]) -> dict[str, Any]:
    """One engram filter holding every clause: fields are merged into one dict (engram ANDs
    its keys); a clause whose key or operator is taken already goes to the rest, ANDed
    with the merged part as ``not (not merged or not rest)``."""
    merged: dict[str, Any] = {}
    rest: list[Clause] = []
    for clause in clauses:
        for key, value in clause.items():
            if key.startswith("$"):
                if key in merged:
                    rest.append({key: value})
                else:
                    merged[key] = value
            elif key in merged and set(merged[key]) & set(value):
                rest.append({key: value})
            else:
                merged[key] = {**merged.get(key, {}), **value}
    if rest:
        return {"$not": {"$or": [{"$not": merged}, {"$not": _and(rest)}]}}
    return merged
