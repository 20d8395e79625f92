"""``GET /search``: the search page, and ``GET /search/suggest``, its autocomplete.

The form is a GET form, so a search is a URL that can be bookmarked and shared; htmx submits
it to the same route and swaps only the results region (``hx-push-url`` keeps the address
bar in step), and without JavaScript the page works as an ordinary form. A search runs exactly
as ``POST /v1/search`` runs it — the caller's tenant, the read scope, the same engine call —
and is recorded the same way (engram.server.observability.observe_search), so the dashboard
and past-query suggestions count web searches too.

Filters are written as on the command line (``engram search --where``): ``team=hr``,
``year>=2020``, ``lang in en,fr``…, several separated by ``;``, parsed by the CLI's own
parser so the two never disagree. A filter that does not parse is an error shown where the
results go, never an empty result list.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from ...engine import Engram
from ...errors import EngramError
from ...search.filters import parse_where_args
from ...search.multi import ALL
from ...search.suggest import MAX_PREFIX
from ...server.deps import DB
from ...server.observability import observe_search
from ...server.schemas import MAX_QUERY_CHARS, MAX_SEARCH_OFFSET
from ...types import SearchResult
from ..auth import Caller, WebCaller, require
from ..render import WebRoute, is_htmx, page
from .sources import source_link

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 10
MODES = ("hybrid", "keyword", "vector")
SUGGESTIONS = 8
# What the engine puts around a matched word in a highlight (engram.search.highlight).
_MARKED = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)
_SEPARATORS = re.compile(r"[;\n]")
NAMES_TTL = 2.0  # seconds
NAMES_KEPT = 1000  # tenants
# (id of the Engram, tenant) → (the Engram, when listed, names); the Engram is held so a
# reused id is told apart (an `is` check).
_names: dict[tuple[int, str], tuple[Engram, float, list[str]]] = {}
_names_lock = threading.Lock()  # page handlers run in the threadpool


@dataclass(frozen=True, slots=True)
class Hit:
    """A result as the template shows it: the engine's result, its snippet as (text,
    matched) segments and the URL of its cited span."""

    result: SearchResult
    rank: int
    snippet: list[tuple[str, bool]]
    source_url: str


def snippet_segments(highlight: str, fallback: str, width: int = 240) -> list[tuple[str, bool]]:
    """The engine's highlight (text with matched words between ``<mark>`` tags) as (text,
    matched) segments, which the template escapes: no HTML from a document ever reaches the
    page as markup. A document that itself contains the text ``<mark>`` at worst gets a
    segment marked that should not be; it is still shown as text."""
    if not highlight:
        text = " ".join(fallback[:width].split())
        return [(text + ("…" if len(fallback) > width else ""), False)]
    segments: list[tuple[str, bool]] = []
    cursor = 0
    for match in _MARKED.finditer(highlight):
        if match.start() > cursor:
            segments.append((highlight[cursor : match.start()], False))
        segments.append((match.group(1), True))
        cursor = match.end()
    if cursor < len(highlight):
        segments.append((highlight[cursor:], False))
    return segments


def parse_filters(raw: Sequence[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The filter expressions of the ``where`` fields (each may hold several separated by
    ``;`` or new lines) and the ``where`` they make; InvalidInput for one that does not
    parse, with the CLI's message and hint."""
    expressions = [e.strip() for text in raw for e in _SEPARATORS.split(text) if e.strip()]
    if not expressions:
        return [], None
    return expressions, parse_where_args(expressions)


def source_url(result: SearchResult) -> str:
    """The source page of a result's cited span (engram.web.pages.sources)."""
    return source_link(
        result.collection, result.document_key, result.version, result.start, result.end
    )


def search_url(**values: Any) -> str:
    """``/search?…`` with the values that are set (lists repeat their name, true is 1, an
    offset of 0 is left out): the links of the pager and of "search without the filter"."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None or item is False or item == "" or (name == "offset" and not item):
                continue
            pairs.append((name, "1" if item is True else str(item)))
    return "/search?" + urlencode(pairs)


def collection_names(db: Engram, tenant: str) -> list[str]:
    """The tenant's collection names for the form, remembered for a few seconds: listing
    collections counts their rows (tens of milliseconds at 100k chunks), and the select
    shows names only. A collection created meanwhile appears at most NAMES_TTL later."""
    now = time.monotonic()
    with _names_lock:
        entry = _names.get((id(db), tenant))
    if entry is not None and entry[0] is db and now - entry[1] < NAMES_TTL:
        return entry[2]
    names = [c.name for c in db.collections(tenant=tenant)]
    with _names_lock:
        if len(_names) >= NAMES_KEPT:
            _names.clear()
        _names[(id(db), tenant)] = (db, now, names)
    return names


@router.get("/search")
def search_page(
    request: Request,
    caller: Caller,
    db: DB,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
    collection: Annotated[str, Query(max_length=200)] = ALL,
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid",
    where: Annotated[list[str] | None, Query(max_length=2000)] = None,
    rerank: bool = False,
    offset: Annotated[int, Query(ge=0, le=MAX_SEARCH_OFFSET)] = 0,
) -> Response:
    """The form, and with a query the results: a full page, or for htmx (not restoring
    history, which needs the whole page) the results region only."""
    require(caller, "read")
    partial = is_htmx(request)
    # The form's collection list only with the form: htmx swaps the results alone.
    tenant = caller.principal.tenant
    collections = [] if partial else collection_names(db, tenant)
    query = q.strip()
    raw_where = [w for w in where or [] if w.strip()]
    context: dict[str, Any] = dict(
        title=caller.t("search.title"),
        q=q,
        collection=collection,
        collections=collections,
        mode=mode,
        modes=MODES,
        where_text="; ".join(w.strip() for w in raw_where),
        rerank=rerank,
        offset=offset,
        error=None,
        hits=[],
        response=None,
        took_ms=0.0,
        filters=[],
        searched=False,
        prev_url=None,
        next_url=None,
        unfiltered_url=None,
    )
    status = 200
    if query:
        try:
            context.update(_run(caller, db, query, collection, mode, raw_where, rerank, offset))
        except EngramError as exc:
            context["error"] = exc
            status = exc.status
    return page(request, caller, "search/search.html", status=status, partial=partial, **context)


def _run(
    caller: WebCaller,
    db: Engram,
    query: str,
    collection: str,
    mode: Literal["hybrid", "keyword", "vector"],
    raw_where: Sequence[str],
    rerank: bool,
    offset: int,
) -> dict[str, Any]:
    """One search, as POST /v1/search runs and records it; the template's context."""
    filters, where = parse_filters(raw_where)
    started = time.perf_counter()
    response = db.search(
        query,
        collection=collection,
        k=PAGE_SIZE,
        offset=offset,
        mode=mode,
        where=where,
        rerank=rerank,
        tenant=caller.principal.tenant,
    )
    took_ms = (time.perf_counter() - started) * 1000
    observe_search(caller.principal, query, response, collection=collection)
    hits = [
        Hit(r, offset + i + 1, snippet_segments(r.highlight, r.text), source_url(r))
        for i, r in enumerate(response.results)
    ]
    base: dict[str, Any] = dict(
        q=query, collection=collection, mode=mode, where=list(raw_where), rerank=rerank
    )
    next_offset = response.next_offset
    if next_offset is not None and next_offset > MAX_SEARCH_OFFSET:
        next_offset = None
    prev_offset = max(0, offset - PAGE_SIZE) if offset else None
    return dict(
        searched=True,
        response=response,
        took_ms=took_ms,
        hits=hits,
        filters=filters,
        prev_url=None if prev_offset is None else search_url(**base, offset=prev_offset),
        next_url=None if next_offset is None else search_url(**base, offset=next_offset),
        unfiltered_url=search_url(**{**base, "where": []}) if filters else None,
    )


@router.get("/search/suggest")
def suggest(
    request: Request,
    caller: Caller,
    db: DB,
    q: Annotated[str, Query(max_length=MAX_PREFIX)] = "",
    collection: Annotated[str, Query(max_length=200)] = ALL,
) -> Response:
    """Completions of the query box's text as ``<option>``s for its ``<datalist>``: from
    one collection (suggestions are per collection), none for "all collections"."""
    require(caller, "read")
    found: list[str] = []
    if q.strip() and collection != ALL:
        try:
            suggestions = db.suggest(
                q, collection=collection, limit=SUGGESTIONS, tenant=caller.principal.tenant
            )
        except EngramError:  # a collection that is not there: nothing to suggest
            suggestions = []
        found = [s.text for s in suggestions]
    return page(request, caller, "search/suggestions.html", suggestions=found)
