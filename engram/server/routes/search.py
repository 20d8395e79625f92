"""``POST /v1/search``: hybrid, keyword or vector search of a collection, or of several.

The response body is assembled from JSON pieces rather than validated and serialised through
a response model on every request: the hits of a result served from the in-process result
cache were already rendered once, and only ``timings_ms`` differs between two answers from
the same cache entry. The body is the :class:`~engram.server.schemas.SearchResponse` schema
byte for byte (``tests/test_server_fastpath.py`` checks it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter
from pydantic_core import to_json

from ...cache import LRUCache
from ...errors import InvalidInput
from ...search.searcher import SearchResponse as EngineResponse
from ...search.suggest import MAX_LIMIT, MAX_PREFIX
from ..deps import DB, Reader
from ..observability import observe_search
from ..pagination import decode_cursor, encode_cursor
from ..schemas import (
    MAX_SEARCH_OFFSET,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SuggestionPublic,
    SuggestResponse,
    error_responses,
)

router = APIRouter(tags=["search"])

RENDERED_ENTRIES = 1024
_HITS: TypeAdapter[list[SearchHit]] = TypeAdapter(list[SearchHit])


class _Rendered:
    """Rendered bodies of cached results, by identity of the cached result list.

    The in-process result cache hands out the same ``results`` list for every hit of one
    entry; holding that list here keeps its ``id`` from being reused, and the ``is`` check
    makes a stale id harmless. Results from Redis are new lists each time: always rendered.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[int, tuple[list[Any], bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # routes run in the threadpool

    def get(self, results: list[Any]) -> tuple[bytes, bytes] | None:
        with self._lock:
            entry = self._data.get(id(results))
            if entry is None or entry[0] is not results:
                return None
            self._data.move_to_end(id(results))
            return entry[1], entry[2]

    def put(self, results: list[Any], head: bytes, tail: bytes) -> None:
        with self._lock:
            self._data[id(results)] = (results, head, tail)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_rendered = _Rendered(RENDERED_ENTRIES)


def render(result: EngineResponse, *, reuse: bool = True) -> bytes:
    """The JSON body of ``result``: a :class:`SearchResponse`. ``reuse``: keep the rendered
    hits of a cached result for its next hit (pointless when the cache is in Redis)."""
    reuse = reuse and result.cached
    parts = _rendered.get(result.results) if reuse else None
    if parts is None:
        hits = [SearchHit.of(r) for r in result.results]
        # No cursor past the deepest page we would serve.
        next_offset = result.next_offset
        if next_offset is not None and next_offset > MAX_SEARCH_OFFSET:
            next_offset = None
        head = b"".join(
            (
                b'{"data":',
                _HITS.dump_json(hits),
                b',"count":',
                str(len(hits)).encode(),
                b',"next_cursor":',
                to_json(encode_cursor(next_offset)),
                b',"mode":',
                to_json(result.mode),
                b',"timings_ms":',
            )
        )
        tail = b',"expansions":' + to_json(result.expansions) + b"}"
        parts = head, tail
        if reuse:
            _rendered.put(result.results, head, tail)
    return parts[0] + to_json(result.timings_ms) + parts[1]


@router.post(
    "/search",
    operation_id="search",
    response_model=SearchResponse,
    responses=error_responses(404, 409, 413, 422, 503),
)
def search(body: SearchRequest, db: DB, principal: Reader) -> Response:
    """Search a collection, a list of them or "*" (every collection of the caller's tenant)
    as one ranking: results best first, each with its collection, document, version,
    character span, page, heading path, score, highlight and the rank and score in each leg
    (``explain``). Pass ``next_cursor`` back as ``cursor`` for the next page."""
    offset = body.offset
    if body.cursor is not None:
        if offset:
            raise InvalidInput("pass cursor or offset, not both")
        offset = decode_cursor(body.cursor)
        if offset > MAX_SEARCH_OFFSET:
            raise InvalidInput(f"the cursor points past the {MAX_SEARCH_OFFSET:,}th result")
    result = db.search(
        body.query,
        collection=body.collection,
        k=body.k,
        offset=offset,
        mode=body.mode,
        where=body.where,
        rerank=body.rerank,
        highlight=body.highlight,
        fusion=body.fusion,
        alpha=body.alpha,
        group_by=body.group_by,
        tenant=principal.tenant,
        rerank_weight=body.rerank_weight,
    )
    # metrics, and the analytics event that past-query suggestions are read from
    observe_search(principal, body.query, result, collection=body.collection)
    reuse = isinstance(db.searcher.result_cache, LRUCache)
    return Response(render(result, reuse=reuse), media_type="application/json")


@router.get(
    "/collections/{name}/suggest",
    operation_id="suggest",
    response_model=SuggestResponse,
    responses=error_responses(404, 422),
)
def suggest(
    name: str,
    db: DB,
    principal: Reader,
    q: Annotated[str, Query(min_length=1, max_length=MAX_PREFIX, description="The prefix.")],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
) -> SuggestResponse:
    """Autocomplete: up to ``limit`` completions of ``q``, best first, from three sources of
    the collection: past searches that returned results (ranked by times asked), document
    titles with a word starting with ``q`` (by documents bearing the title) and ``q``'s last
    word completed from the collection's words (by chunks holding the word, shown as written
    in the documents, accented). Matching ignores case and accents ("teletr" finds
    "télétravail"); when that leaves places free, a last word of 4 letters or more is also
    matched with one letter wrong, missing, extra or swapped ("telwtr"). The sources are
    interleaved (a query, a title, a word, ...), a text proposed once; completions of ``q``
    as typed come before corrected ones."""
    found = db.suggest(q, collection=name, limit=limit, tenant=principal.tenant)
    return SuggestResponse(
        data=[SuggestionPublic(text=s.text, source=s.source, count=s.count) for s in found],
        count=len(found),
    )
