"""Metadata filters (:data:`~engram.store.records.Where`) as SQL, the part both dialects
share: the conditions are ANDed, and an equality matches every form a value may be stored
in. Each backend writes the SQL of one condition (SQLite over JSON text with
``json_extract``, PostgreSQL over jsonb)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..search.filters import AnyOf, Condition, KeyIn, Node, NoneOf, normalize_where
from .records import Where

ConditionSql = Callable[[Condition], tuple[str, list[Any]]]
KeysSql = Callable[[tuple[str, ...]], tuple[str, list[Any]]]


def compile_conditions(
    where: Where | None,
    condition_sql: ConditionSql,
    *,
    always: str,
    keys_sql: KeysSql,
) -> tuple[str, list[Any]]:
    """The filter as one SQL condition and its parameters; ``always`` (the dialect's true)
    when there is nothing to filter on. ``keys_sql`` writes a ``$keys`` restriction."""
    nodes = normalize_where(where)
    if not nodes:
        return always, []
    return _all(nodes, condition_sql, keys_sql)


def _all(
    nodes: list[Node], condition_sql: ConditionSql, keys_sql: KeysSql
) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for node in nodes:
        if isinstance(node, AnyOf):
            branches = [_all(branch, condition_sql, keys_sql) for branch in node.branches]
            sql = "(" + " OR ".join(f"({b})" for b, _ in branches) + ")"
            args = [a for _, b_args in branches for a in b_args]
        elif isinstance(node, NoneOf):
            inner, args = _all(node.nodes, condition_sql, keys_sql)
            # A condition on a missing field is NULL in SQL: count it as false, as Python does.
            sql = f"NOT COALESCE(({inner}), FALSE)"
        elif isinstance(node, KeyIn):
            sql, args = keys_sql(node.keys)
        else:
            sql, args = condition_sql(node)
        parts.append(sql)
        params.extend(args)
    return " AND ".join(parts), params
