"""Metadata filters (:data:`~engram.store.records.Where`) as SQL, the part both dialects
share: the conditions are ANDed, and an equality matches every form a value may be stored
in. Each backend writes the SQL of one condition (SQLite over JSON text with
``json_extract``, PostgreSQL over jsonb)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..search.filters import Condition, normalize_where
from .records import Where


def compile_conditions(
    where: Where | None,
    condition_sql: Callable[[Condition], tuple[str, list[Any]]],
    *,
    always: str,
) -> tuple[str, list[Any]]:
    """The filter as one SQL condition and its parameters; ``always`` (the dialect's true)
    when there is nothing to filter on."""
    conditions = normalize_where(where)
    if not conditions:
        return always, []
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        sql, args = condition_sql(cond)
        parts.append(sql)
        params.extend(args)
    return " AND ".join(parts), params
