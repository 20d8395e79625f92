"""A validator for the subset of JSON Schema that describes an event's properties.

engram's base install carries no JSON Schema library (``jsonschema`` pulls in four packages
for what events need), so this checks the keywords below, with draft 2020-12's meaning, and
refuses a schema that uses any other keyword rather than silently ignoring it:

- ``type`` (a name or a list of names: object, array, string, number, integer, boolean, null),
  ``enum``, ``const``;
- objects: ``properties``, ``required``, ``additionalProperties`` (a boolean or a schema),
  ``minProperties``, ``maxProperties``;
- arrays: ``items``, ``minItems``, ``maxItems``;
- strings: ``minLength``, ``maxLength``, ``pattern`` (Python ``re``, searched, as JSON Schema
  does);
- numbers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``;
- annotations, not checked: ``title``, ``description``, ``default``, ``examples``,
  ``$schema``, ``$id``, ``$comment``.

:func:`check_schema` validates a schema itself; :func:`errors` lists where a value breaks
one (``$.plan: 'gold' is not one of ['free', 'pro']``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidInput

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment"}
)
_COUNTS = ("minProperties", "maxProperties", "minItems", "maxItems", "minLength", "maxLength")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "pattern",
        *_COUNTS,
        *_BOUNDS,
    }
)
MAX_DEPTH = 16


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fail(path: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"invalid event schema at {path}: {message}",
        hint="supported keywords: " + ", ".join(sorted(KEYWORDS | ANNOTATIONS)),
    )


def check_schema(schema: Any, path: str = "$", depth: int = 0) -> None:
    """Raise InvalidInput unless ``schema`` is a schema of the supported subset."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _fail(path, "a schema is an object (or true / false)")
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    unknown = sorted(set(schema) - KEYWORDS - ANNOTATIONS)
    if unknown:
        raise _fail(path, f"unsupported keyword(s) {', '.join(unknown)}")
    kind = schema.get("type")
    if kind is not None:
        names = kind if isinstance(kind, list) else [kind]
        if not names or any(name not in TYPES for name in names):
            raise _fail(path, f"type must be one of {', '.join(TYPES)} (or a list of them)")
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        raise _fail(path, "enum must be a non-empty list")
    for key in _COUNTS:
        value = schema.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise _fail(path, f"{key} must be a non-negative integer")
    for key in _BOUNDS:
        if key in schema and not _is_number(schema[key]):
            raise _fail(path, f"{key} must be a number")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as exc:
            raise _fail(path, f"pattern is not a regular expression: {exc}") from exc
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _fail(path, "required must be a list of property names")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise _fail(path, "properties must be an object of schemas")
    for name, sub in properties.items():
        check_schema(sub, f"{path}.properties.{name}", depth + 1)
    for key in ("additionalProperties", "items"):
        if key in schema:
            check_schema(schema[key], f"{path}.{key}", depth + 1)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _has_type(value: Any, names: list[str]) -> bool:
    found = _type_of(value)
    return found in names or (found == "integer" and "number" in names)


def errors(schema: Any, value: Any, path: str = "$") -> Iterator[str]:
    """Every way ``value`` breaks ``schema`` (a checked schema), as ``path: message``."""
    if schema is True:
        return
    if schema is False:
        yield f"{path}: not allowed"
        return
    kind = schema.get("type")
    if kind is not None:
        names = kind if isinstance(kind, list) else [kind]
        if not _has_type(value, names):
            yield f"{path}: expected {' or '.join(names)}, got {_type_of(value)}"
            return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        yield f"{path}: must be {schema['const']!r}"
    if isinstance(value, dict):
        yield from _object_errors(schema, value, path)
    elif isinstance(value, list):
        yield from _count_errors(schema, len(value), "minItems", "maxItems", "items", path)
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                yield from errors(items, item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield from _count_errors(schema, len(value), "minLength", "maxLength", "characters", path)
        pattern = schema.get("pattern")
        if pattern is not None and re.search(pattern, value) is None:
            yield f"{path}: does not match {pattern!r}"
    elif _is_number(value):
        yield from _bound_errors(schema, value, path)


def _object_errors(schema: dict[str, Any], value: dict[str, Any], path: str) -> Iterator[str]:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            yield f"{path}: missing required property {name!r}"
    yield from _count_errors(
        schema, len(value), "minProperties", "maxProperties", "properties", path
    )
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            yield from errors(properties[name], item, f"{path}.{name}")
        elif extra is False:
            yield f"{path}: unexpected property {name!r}"
        else:
            yield from errors(extra, item, f"{path}.{name}")


def _count_errors(
    schema: dict[str, Any], count: int, low: str, high: str, what: str, path: str
) -> Iterator[str]:
    if low in schema and count < schema[low]:
        yield f"{path}: fewer than {schema[low]} {what}"
    if high in schema and count > schema[high]:
        yield f"{path}: more than {schema[high]} {what}"


def _bound_errors(schema: dict[str, Any], value: float, path: str) -> Iterator[str]:
    if not math.isfinite(value):
        yield f"{path}: not a finite number"
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: less than {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{path}: greater than {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield f"{path}: not greater than {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield f"{path}: not less than {schema['exclusiveMaximum']}"
