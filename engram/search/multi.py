"""One search over several collections: ``collection=["kb", "ohada"]``, or ``"*"`` for every
collection of the tenant.

The legs of every collection are pooled, then fused once (as if the collections were one):

- each collection's keyword leg and vector leg run as they would alone (its own analyzer,
  BM25 statistics and ``where`` filter), each ``depth`` candidates deep;
- the keyword candidates of all collections are merged by their BM25 scores as they are
  (the way a search engine merges the shards of an index), the vector candidates by cosine
  similarity (one embedding model, so one scale), and each pooled leg is cut to ``depth``:
  the vector leg is then exactly the one of a single collection holding every document;
- the two pooled legs are fused once, by the request's fusion, else the one the collections
  share, else the settings' (ENGRAM_FUSION, ENGRAM_FUSION_ALPHA).

Fusing each collection on its own and merging the fused scores (or their ranks) was measured
and loses: a normalised score says how a chunk compares with the other candidates of its own
collection, not with the other collections' (docs/benchmarks.md, "Multi-collection search").

Collections embedded by different models (engram.embedders: each collection keeps its own)
are searched together too: the query is embedded once per model, each collection's vector leg
uses its model's query vector, and since cosine similarities of two models are not on one
scale, each model's pooled candidates are standardised (mean 0, standard deviation 1 over
that model's ``depth`` best) before the models' candidates are pooled. Collections of one
model pool their raw cosines, as above. A collection whose model cannot be loaded is refused
(ModelMismatch) before any work, for a hybrid or vector search; a keyword search needs no
model.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from .. import tracing
from ..errors import CollectionNotFound, InvalidInput
from ..memory.types import is_internal
from ..store.contract import RetrievalStore
from ..types import Collection
from .analyzer import analyzer_for
from .fusion import Alpha, check_alpha
from .searcher import Owners, Searcher, SearchRequest, SearchResponse, _ms

ALL = "*"
MAX_COLLECTIONS = 100  # per search: each one costs a keyword and a vector leg

Leg = list[tuple[int, float]]


def resolve(
    store: RetrievalStore, collection: str | Sequence[str], *, tenant: str
) -> list[Collection]:
    """The collections ``collection`` names in ``tenant``: one name, a list of names (in
    order, repeats dropped), or ``"*"`` (alone or in a list): every collection of the tenant
    but engram's own (users' recall indexes, whose names hold a ``/``). CollectionNotFound
    for a name the tenant has no collection of; InvalidInput for an empty list or too many."""
    if isinstance(collection, str):
        names = [collection]
    else:
        names = list(dict.fromkeys(collection))
        if not names:
            raise InvalidInput(
                "the list of collections is empty",
                hint='name at least one collection, or "*" for all of them',
            )
    if not all(isinstance(n, str) for n in names):
        raise InvalidInput("collection names are strings")
    if ALL in names:
        found = [c for c in store.list_collections(tenant=tenant) if not is_internal(c.name)]
    else:
        found = []
        for name in names:
            if is_internal(name):  # reached through recall only, with its per-user checks
                raise CollectionNotFound(f"no collection {name!r}")
            found.append(store.get_collection(name, tenant=tenant, counts=False))
    if len(found) > MAX_COLLECTIONS:
        raise InvalidInput(
            f"{len(found)} collections in one search; at most {MAX_COLLECTIONS}",
            hint="name the collections to search",
        )
    return found


def search_collections(
    searcher: Searcher, collections: list[Collection], req: SearchRequest
) -> SearchResponse:
    """``req`` over ``collections``, best first across them, paged over the merged ranking;
    each result names its collection."""
    if len(collections) == 1:
        return searcher.search(collections[0], req)
    query = searcher.validate(req)
    if not collections:  # "*" in a tenant without collections
        return SearchResponse([], req.mode, None, {})
    store = searcher.store
    scope = ("multi", tuple((c.id, store.revision(c)) for c in collections))
    names = ",".join(c.name for c in collections)
    return searcher.cached(
        scope, req, query, names, lambda: _search(searcher, collections, req, query)
    )


def _search(
    searcher: Searcher, collections: list[Collection], req: SearchRequest, query: str
) -> SearchResponse:
    timings: dict[str, float] = {}
    depth = searcher.depth(req)
    owners = Owners(searcher.store, collections)
    qvecs: dict[str, np.ndarray] = {}  # by model id
    if req.mode in ("hybrid", "vector"):
        firsts: dict[str, Collection] = {}
        for collection in collections:  # refuse before any work
            searcher.check_model(collection)
            firsts.setdefault(collection.model_id, collection)
        t0 = time.perf_counter()
        with tracing.span("embed", kind="query", models=len(firsts)):
            qvecs = {m: searcher.embed_query(c, query) for m, c in firsts.items()}
        timings["embed"] = _ms(t0)

    def keyword(collection: Collection) -> tuple[Leg, dict[str, list[str]], float]:
        terms = analyzer_for(collection).terms(query)
        if req.mode == "vector" or not terms:
            return [], {}, 0.0
        return searcher.timed_keyword_leg(collection, terms, depth, req.where)

    def vector(collection: Collection) -> tuple[Leg, float]:
        qvec = qvecs.get(collection.model_id)
        if qvec is None:
            return [], 0.0
        t0 = time.perf_counter()
        with tracing.span("vector leg", k=depth):
            hits = searcher.store.vector_search(collection, qvec, k=depth, where=req.where)
        return hits, _ms(t0)

    t0 = time.perf_counter()
    if searcher.store.concurrent_reads:  # PostgreSQL: every leg at once, in the database
        pool = searcher.leg_pool()

        def submit(leg: Any, collection: Collection) -> Future[Any]:
            # In a copy of this thread's context (one per leg), so that the legs' spans
            # have the search as parent.
            return pool.submit(contextvars.copy_context().run, leg, collection)

        kw_futures = [submit(keyword, c) for c in collections]
        vec_futures = [submit(vector, c) for c in collections]
        kw_legs = [f.result() for f in kw_futures]
        vec_legs = [f.result() for f in vec_futures]
    else:
        kw_legs = [keyword(c) for c in collections]
        vec_legs = [vector(c) for c in collections]
    expansions: dict[str, list[str]] = {}
    for collection, (kw_hits, near, _), (vec_hits, _) in zip(collections, kw_legs, vec_legs):
        owners.add(collection, kw_hits)
        owners.add(collection, vec_hits)
        for word, spellings in near.items():
            merged = expansions.setdefault(word, [])
            merged.extend(s for s in spellings if s not in merged)
    if req.mode != "vector":
        timings["keyword"] = round(sum(ms for _, _, ms in kw_legs), 3)
    if req.mode != "keyword":
        timings["vector"] = round(sum(ms for _, ms in vec_legs), 3)
    timings["legs"] = _ms(t0)  # wall time of all legs (they may run side by side)
    pooled_kw = _pooled([hits for hits, _, _ in kw_legs], depth)
    if len(qvecs) > 1:
        pooled_vec = _pooled_models(collections, [hits for hits, _ in vec_legs], depth)
    else:
        pooled_vec = _pooled([hits for hits, _ in vec_legs], depth)
    method, alpha = fusion_of(searcher, collections, req)
    # The automatic weight counts the query's words as the first collection analyzes them.
    words = len(analyzer_for(collections[0]).terms(query))
    shape = (method, alpha, words, searcher.foreign(req, alpha, query, collections))
    return searcher.finish(req, query, pooled_kw, pooled_vec, shape, owners, expansions, timings)


def _pooled(legs: list[Leg], depth: int) -> Leg:
    """The candidates of every collection's leg, best score first (ties by chunk id, so a
    page is stable), the best ``depth``."""
    pooled = [hit for leg in legs for hit in leg]
    pooled.sort(key=lambda hit: (-hit[1], hit[0]))
    return pooled[:depth]


def _pooled_models(collections: list[Collection], legs: list[Leg], depth: int) -> Leg:
    """The vector candidates of collections of several models: each model's pooled as
    :func:`_pooled` does, its scores standardised, then all pooled."""
    by_model: dict[str, list[Leg]] = {}
    for collection, leg in zip(collections, legs):
        by_model.setdefault(collection.model_id, []).append(leg)
    standard: list[Leg] = []
    for model_legs in by_model.values():
        pooled = _pooled(model_legs, depth)
        if not pooled:
            continue
        scores = np.array([score for _, score in pooled], dtype=np.float64)
        spread = float(scores.std()) or 1.0
        mean = float(scores.mean())
        standard.append([(cid, (score - mean) / spread) for cid, score in pooled])
    return _pooled(standard, depth)


def fusion_of(
    searcher: Searcher, collections: list[Collection], req: SearchRequest
) -> tuple[str, Alpha]:
    """The fusion of a search over ``collections``: the request's method and alpha when it
    names them; else the one every collection has (its own, or the settings'); else, when
    the collections differ, the settings' (ENGRAM_FUSION, ENGRAM_FUSION_ALPHA)."""
    own = {searcher.fusion_of(c) for c in collections}
    method, alpha = (
        own.pop()
        if len(own) == 1
        else (searcher.settings.fusion, check_alpha(searcher.settings.fusion_alpha))
    )
    return (
        req.fusion if req.fusion is not None else method,
        req.alpha if req.alpha is not None else alpha,
    )
