"""Metadata filters: validation, and parsing of the CLI's ``--where`` expressions.

The canonical form is a dict, as in Chroma and mem0: ``{"year": {"$gte": 2020},
"lang": {"$in": ["en", "fr"]}, "author": {"$exists": True}, "kind": "paper"}``; fields are
ANDed. Backends compile the normalised :class:`Condition` list to SQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$exists", "$contains")
# Combining filters: {"$or": [filter, filter, ...]} (any of them), {"$not": filter}; and
# {"$keys": ["key", ...]}: documents with one of these keys (search; conversation recall uses
# it to narrow a user's index to the messages its filters select).
COMBINATORS = ("$or", "$not", "$keys")
MAX_KEYS = 100_000
MAX_DEPTH = 8
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_CLI = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(>=|<=|!=|=|>|<)\s*(.*)$")
_CLI_WORD = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s+(in|exists|missing|contains)\b\s*(.*)$", re.I
)
_SYMBOLS = {"=": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class AnyOf:
    """``$or``: at least one of the branches holds (each branch's conditions are ANDed)."""

    branches: tuple[list[Node], ...]


@dataclass(frozen=True, slots=True)
class NoneOf:
    """``$not``: the conditions (ANDed) do not all hold; a missing field makes a condition
    false, so ``{"$not": {"team": "it"}}`` keeps documents without a team."""

    nodes: list[Node]


@dataclass(frozen=True, slots=True)
class KeyIn:
    """``$keys``: the document's key is one of ``keys`` (an empty tuple matches nothing)."""

    keys: tuple[str, ...]


Node = Condition | AnyOf | NoneOf | KeyIn


def normalize_where(where: dict[str, Any] | None, _depth: int = 0) -> list[Node]:
    """Validate a filter dict and flatten it into nodes (ANDed); raises InvalidInput."""
    if not where:
        return []
    if not isinstance(where, dict):
        raise InvalidInput("a filter must be an object mapping field names to conditions")
    if _depth > MAX_DEPTH:
        raise InvalidInput(f"a filter nests $or/$not at most {MAX_DEPTH} deep")
    conditions: list[Node] = []
    for field, spec in where.items():
        if field == "$or":
            if (
                not isinstance(spec, list)
                or len(spec) < 1
                or not all(isinstance(branch, dict) and branch for branch in spec)
            ):
                raise InvalidInput("$or takes a non-empty list of filters")
            conditions.append(AnyOf(tuple(normalize_where(branch, _depth + 1) for branch in spec)))
            continue
        if field == "$keys":
            if (
                not isinstance(spec, list)
                or len(spec) > MAX_KEYS
                or not all(isinstance(k, str) and k for k in spec)
            ):
                raise InvalidInput(
                    f"$keys takes a list of at most {MAX_KEYS:,} document keys (strings)"
                )
            conditions.append(KeyIn(tuple(spec)))
            continue
        if field == "$not":
            if not isinstance(spec, dict) or not spec:
                raise InvalidInput('$not takes a filter, e.g. {"$not": {"team": "it"}}')
            conditions.append(NoneOf(normalize_where(spec, _depth + 1)))
            continue
        if isinstance(field, str) and field.startswith("$"):
            raise InvalidInput(
                f"unknown filter combinator {field!r}", hint=f"use one of {', '.join(COMBINATORS)}"
            )
        if not isinstance(field, str) or not _FIELD.match(field):
            raise InvalidInput(
                f"invalid filter field {field!r}",
                hint="field names use letters, digits, '_', '-' and '.' (for nested fields)",
            )
        ops = spec if isinstance(spec, dict) else {"$eq": spec}
        if not ops:
            raise InvalidInput(f"empty condition for filter field {field!r}")
        for op, value in ops.items():
            if op not in OPERATORS:
                raise InvalidInput(
                    f"unknown filter operator {op!r} on {field!r}",
                    hint=f"use one of {', '.join(OPERATORS)}",
                )
            _check_value(field, op, value)
            conditions.append(Condition(field, op, value))
    return conditions


def _check_value(field: str, op: str, value: Any) -> None:
    scalar = (str, int, float, bool)
    if op == "$exists":
        if not isinstance(value, bool):
            raise InvalidInput(f"$exists on {field!r} takes true or false, not {value!r}")
    elif op == "$in":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, scalar) for v in value)
        ):
            raise InvalidInput(f"$in on {field!r} takes a non-empty list of scalars")
    elif op == "$contains":
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"$contains on {field!r} takes a non-empty string")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidInput(f"{op} on {field!r} takes a number or an ISO date string")
    elif not isinstance(value, scalar):
        raise InvalidInput(f"{op} on {field!r} takes a scalar value, not {type(value).__name__}")


_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?)?$")


def _comparable(raw: str, value: Any) -> bool:
    """Whether a range filter's value is a number, an ISO date, or explicitly quoted text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return bool(_DATE.match(raw)) or (raw.startswith('"') and raw.endswith('"') and len(raw) > 1)


def _guess(ops: str) -> str:
    """The operator someone who typed ``ops`` most likely meant (``=>`` → ``>=``)."""
    return {"=>": ">=", "=<": "<=", "==": "=", "=!": "!="}.get(ops, ops[0])


def _scalar(text: str) -> Any:
    """'2020' → 2020, 'true' → True, '"x"' → 'x', anything else stays a string."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (str, int, float, bool)) else text


def parse_where_args(args: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse CLI expressions: ``key=value``, ``key!=v``, ``year>=2020``, ``lang in en,fr``,
    ``author exists``, ``author missing``, ``title contains tax`` (ASCII case ignored)."""
    where: dict[str, dict[str, Any]] = {}
    for arg in args:
        word = _CLI_WORD.match(arg)
        if word:
            field, kind, rest = word[1], word[2].lower(), word[3]
            if kind == "in":
                values = [_scalar(v) for v in rest.split(",") if v.strip()]
                where.setdefault(field, {})["$in"] = values
            elif kind == "contains":
                where.setdefault(field, {})["$contains"] = rest.strip().strip('"')
            else:
                where.setdefault(field, {})["$exists"] = kind == "exists"
            continue
        sym = _CLI.match(arg)
        if not sym or not sym[3].strip():
            raise InvalidInput(
                f"cannot parse filter {arg!r}",
                hint="write key=value, key!=value, key>=N, 'key in a,b', 'key exists' or"
                " 'key contains text'",
            )
        field, op, raw = sym[1], sym[2], sym[3].strip()
        if raw[0] in "<>=!":  # year=>2020, team==it: a mistyped operator, not a value
            raise InvalidInput(
                f"cannot parse filter {arg!r}: the value starts with {raw[0]!r}",
                hint=f"operators are = != > >= < <=; did you mean {field}"
                f"{_guess(op + raw[0])}{raw[1:].lstrip('=')}?",
            )
        value = _scalar(raw)
        if op in ("<", "<=", ">", ">=") and not _comparable(raw, value):
            raise InvalidInput(
                f"cannot compare {field} {op} {raw!r}: {op} takes a number or a date",
                hint=f"e.g. {field}{op}2020 or {field}{op}2024-01-01; quote text to compare"
                f' it as text: {field}{op}"{raw}"',
            )
        where.setdefault(field, {})[_SYMBOLS[op]] = value
    normalize_where(where)
    return where


def equal_forms(value: Any) -> list[Any]:
    """Values a metadata field may hold for an equality: 2020 matches 2020 and "2020"
    (CSV metadata is text), true matches JSON true (stored by SQLite as 1)."""
    if isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (int, float)):
        return [value, json.dumps(value)]
    forms: list[Any] = [value]
    try:
        number = json.loads(value)
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            forms.append(number)
    except ValueError:
        pass
    if value in ("true", "false"):
        forms.append(int(value == "true"))
    return forms


# -- evaluating a filter on a record in Python (agent state: engram.state) ----------------------
_MISSING = object()
_NUMBER_PREFIX = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER_TEXT = re.compile(r"^[0-9.eE+-]*[0-9][0-9.eE+-]*$")


def matches(conditions: list[Node], record: Any) -> bool:
    """Whether a JSON record passes every condition, with the semantics the backends give
    the same filter in SQL: an equality matches every form of its value (2020 and "2020"),
    a missing field is "not equal" to anything, ranges compare strings with strings and
    numbers with numbers (or with text that is a number), ``$exists`` tests presence."""
    for cond in conditions:
        if isinstance(cond, AnyOf):
            if not any(matches(branch, record) for branch in cond.branches):
                return False
            continue
        if isinstance(cond, NoneOf):
            if matches(cond.nodes, record):
                return False
            continue
        if isinstance(cond, KeyIn):  # a record's key is not among its fields
            return False
        value = _field(record, cond.field)
        if cond.op == "$exists":
            ok = (value is not _MISSING) == bool(cond.value)
        elif cond.op == "$eq":
            ok = _equal(value, cond.value)
        elif cond.op == "$ne":
            ok = not _equal(value, cond.value)
        elif cond.op == "$in":
            ok = any(_equal(value, v) for v in cond.value)
        elif cond.op == "$contains":
            ok = isinstance(value, str) and ascii_lower(cond.value) in ascii_lower(value)
        else:
            ok = _in_range(value, cond.op, cond.value)
        if not ok:
            return False
    return True


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``$contains`` ignores the case of ASCII letters only, as SQLite's lower() does, so
    that every backend and the Python evaluation agree."""
    return text.translate(_ASCII_LOWER)


def _field(record: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return _MISSING
        record = record[part]
    return record


def _equal(value: Any, target: Any) -> bool:
    if value is _MISSING or isinstance(value, (dict, list)) or value is None:
        return False
    return any(value == form for form in equal_forms(target))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER_TEXT.match(value):
        prefix = _NUMBER_PREFIX.match(value)
        return float(prefix.group()) if prefix else 0.0
    return None


def _in_range(value: Any, op: str, bound: Any) -> bool:
    if isinstance(bound, str):
        if not isinstance(value, str):
            return False
        left: Any = value
        right: Any = bound
    else:
        number = _number(value)
        if number is None:
            return False
        left, right = number, float(bound)
    return {
        "$gt": left > right,
        "$gte": left >= right,
        "$lt": left < right,
        "$lte": left <= right,
    }[op]
