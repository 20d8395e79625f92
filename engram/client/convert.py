"""The library's dataclasses, built from the JSON bodies of the HTTP API.

One converter, :func:`from_json`, reads any of them by its fields and their types (callers
name the class: ``from_json(Collection, body)``); :func:`report` and :func:`search_result`
convert by hand only where the API's shape differs from the dataclass (pairs sent as
objects, a renamed key, a span).

A field the body lacks, or holds as null, takes the empty value of its type: 0, ``""``,
False, an empty dict, list or tuple, None when the type allows it. That covers what the API
leaves out: row ids and the tenant (a key's tenant is implied) are 0 and ``""``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    TypeGuard,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from ..types import (
    ContentChunk,
    DocumentContent,
    IngestReport,
    MetadataChange,
    SearchResult,
    VersionDiff,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Json = Mapping[str, Any]
D = TypeVar("D", bound="DataclassInstance")

_EMPTY: dict[Any, Any] = {str: "", int: 0, float: 0.0, bool: False}


def from_json(cls: type[D], body: Json, **given: Any) -> D:
    """A ``cls`` from ``body``: each field from the key of its name, converted by its type,
    unless ``given``. A field whose type is a dataclass is read from its own object, or,
    when the body has none, from the body itself (a memory hit is a memory's fields plus
    ``score`` and ``explain``)."""
    hints = _hints(cls)
    values = dict(given)
    for f in dataclasses.fields(cls):
        if f.name in given:
            continue
        hint, value = hints[f.name], body.get(f.name)
        if value is None and _is_dataclass(hint):
            values[f.name] = from_json(hint, body)
        elif value is None and f.default is not dataclasses.MISSING:
            values[f.name] = f.default  # a field the API does not send (SearchResult.kind)
        elif value is None:
            values[f.name] = _empty(hint, f.name)
        else:
            values[f.name] = _value(value, hint)
    return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _value(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` asks: a dataclass from its object, dicts, lists and tuples
    copied (their items converted); anything else as it is."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):  # X | None, and value is not None
        (hint,) = [a for a in args if a is not type(None)]
        return _value(value, hint)
    if _is_dataclass(hint):
        return from_json(hint, value)
    if origin is dict:
        return dict(value)
    if origin in (list, tuple):
        return origin(_value(item, args[0]) for item in value)
    return value


def _is_dataclass(hint: Any) -> TypeGuard[type[DataclassInstance]]:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _empty(hint: Any, name: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType) and type(None) in get_args(hint):
        return None
    if origin in (dict, list, tuple):
        return origin()
    if hint in _EMPTY:
        return _EMPTY[hint]
    raise KeyError(name)  # a literal or Any: nothing stands for a missing value


def report(body: Json) -> IngestReport:
    """An :class:`IngestReport` from an ``IngestReportPublic`` body, whose errors are
    ``{source, reason}`` objects and whose ``skipped`` is a count (the list stays empty)."""
    errors = [(e["source"], e["reason"]) for e in body.get("errors") or ()]
    return from_json(IngestReport, body, errors=errors, skipped=[])


def merge(total: IngestReport, part: IngestReport) -> None:
    """Add the counts and errors of ``part`` to ``total`` (``seconds`` is the caller's)."""
    total.added += part.added
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.deleted += part.deleted
    total.failed += part.failed
    total.chunks_embedded += part.chunks_embedded
    total.chunks_reused += part.chunks_reused
    total.errors.extend(part.errors)
    total.model_seconds += part.model_seconds


def search_result(body: Json) -> SearchResult:
    """A :class:`SearchResult` from a ``SearchHit`` body (``document`` is its key, ``span``
    its start and end)."""
    start, end = body["span"]
    explain = dict(body.get("explain") or {})
    # The library's explain always has both legs, and fused/rerank only when they apply.
    for key in ("fused", "rerank"):
        if explain.get(key) is None:
            explain.pop(key, None)
    return from_json(
        SearchResult, body, document_key=body["document"], start=start, end=end, explain=explain
    )


def document_content(body: Json) -> DocumentContent:
    """A :class:`DocumentContent` from a ``DocumentVersionDetail`` body (``document`` is its
    key, each chunk's ``span`` its start and end)."""
    chunks = [
        from_json(ContentChunk, c, start=c["span"][0], end=c["span"][1])
        for c in body.get("chunks") or ()
    ]
    return from_json(DocumentContent, body, key=body["document"], chunks=chunks)


def version_diff(body: Json) -> VersionDiff:
    """A :class:`VersionDiff` from a ``DocumentDiff`` body."""
    title = body.get("title")
    return from_json(
        VersionDiff,
        body,
        key=body["document"],
        title=(title[0], title[1]) if title else None,
        metadata=[from_json(MetadataChange, m) for m in body.get("metadata") or ()],
    )
