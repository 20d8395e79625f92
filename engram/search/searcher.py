"""Hybrid search: keyword leg + vector leg → fusion → optional cross-encoder → page of results."""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .. import tracing
from ..cache import cache_key, make_cache
from ..config import Settings
from ..errors import InvalidInput, QueryTooLong
from ..providers.embedders.base import Embedder
from ..providers.rerankers.base import Reranker
from ..store.contract import RetrievalStore
from ..store.records import ChunkRecord, Where
from ..types import Collection, SearchMode, SearchResult
from .analyzer import Analyzer, analyzer_for, english_markers
from .filters import normalize_where
from .fusion import (
    AUTO,
    FOREIGN_SHARE,
    FUSION_METHODS,
    Alpha,
    Fused,
    check_alpha,
    fuse,
    resolve_alpha,
)
from .fuzzy import expand, unmatched
from .highlight import highlight
from .rerank import Reranked, blend

MAX_K = 1000
# group_by="document": chunks ranked per document asked for (at least ENGRAM_CANDIDATES),
# so that a page of documents is still full when a few documents have many matching chunks.
GROUP_DEPTH = 3


@dataclass(slots=True)
class SearchRequest:
    query: str
    k: int = 10
    offset: int = 0
    mode: SearchMode = "hybrid"
    where: Where | None = None
    rerank: bool = False
    highlight: bool = True
    fusion: str | None = None  # this query's fusion method; None: the collection's
    group_by: Literal["document"] | None = None  # one result per document: its best chunk
    alpha: Alpha | None = (
        None  # this query's vector weight in [0, 1] or "auto"; None: the collection's
    )
    rerank_weight: float | None = None  # the model's share of the rerank blend; None: settings'


@dataclass(slots=True)
class SearchResponse:
    results: list[SearchResult]
    mode: SearchMode
    next_offset: int | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    expansions: dict[str, list[str]] = field(default_factory=dict)
    cached: bool = False

    @property
    def data(self) -> list[SearchResult]:
        """The results (``"data"`` in JSON, as every list the API returns)."""
        return self.results

    @property
    def count(self) -> int:
        """How many results this page holds (``"count"`` in JSON)."""
        return len(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": [r.to_dict() for r in self.results],
            "count": len(self.results),
            "mode": self.mode,
            "next_offset": self.next_offset,
            "timings_ms": self.timings_ms,
            "expansions": self.expansions,
            "cached": self.cached,
        }


class Owners:
    """The collections a search ranks chunks of, and which one holds each chunk (chunk ids
    are unique in a store, across collections): fetches records from the right collection
    and labels results with its name."""

    def __init__(self, store: RetrievalStore, collections: list[Collection]) -> None:
        self.store = store
        self.collections = collections
        self.owner: dict[int, Collection] = {}  # chunk id → collection, with several
        self._terms: dict[str, set[str]] = {}

    def add(self, collection: Collection, hits: list[tuple[int, float]]) -> None:
        """Note that ``hits`` are chunks of ``collection``."""
        for chunk_id, _ in hits:
            self.owner[chunk_id] = collection

    def of(self, chunk_id: int) -> Collection:
        return self.owner.get(chunk_id) or self.collections[0]

    def records(self, ids: list[int]) -> dict[int, ChunkRecord]:
        """The chunks ``ids``, each fetched from its collection."""
        if len(self.collections) == 1:
            return self.store.get_chunks(self.collections[0], ids)
        by_collection: dict[int, list[int]] = {}
        for chunk_id in ids:
            by_collection.setdefault(self.of(chunk_id).id, []).append(chunk_id)
        found: dict[int, ChunkRecord] = {}
        for collection in self.collections:
            if collection.id in by_collection:
                found.update(self.store.get_chunks(collection, by_collection[collection.id]))
        return found

    def terms(self, query: str, near: set[str], analyzer: Analyzer) -> set[str]:
        """The terms to highlight in a chunk analysed by ``analyzer``: the query's, and the
        close spellings searched for its absent words (``near``)."""
        if analyzer.language not in self._terms:
            self._terms[analyzer.language] = set(analyzer.terms(query)) | near
        return self._terms[analyzer.language]


class Searcher:
    """Runs searches against one store; ``embedder`` gives the model of a collection's
    vectors (engram.embedders), and the models load on first use."""

    def __init__(
        self,
        store: RetrievalStore,
        settings: Settings,
        embedder: Callable[[Collection], Embedder],
        reranker: Callable[[], Reranker],
    ) -> None:
        self.store = store
        self.settings = settings
        self._embedder = embedder
        self._reranker = reranker
        # Hybrid legs run side by side when the store answers from another process
        # (PostgreSQL): BM25 runs in the database while this process embeds the query.
        self._legs: ThreadPoolExecutor | None = None
        self._legs_lock = threading.Lock()
        self.embedding_cache = make_cache(
            "embedding",
            size=settings.cache_size,
            redis_url=settings.redis_url,
            ttl=settings.cache_ttl,
        )
        self.result_cache = make_cache(
            "search", size=settings.cache_size, redis_url=settings.redis_url, ttl=settings.cache_ttl
        )

    def validate(self, req: SearchRequest) -> str:
        query = (req.query or "").strip()
        if not query:
            raise InvalidInput("the query is empty", hint="pass some words to search for")
        if len(query) > self.settings.max_query_chars:
            raise QueryTooLong(
                f"the query has {len(query):,} characters; the limit is {self.settings.max_query_chars:,}",
                hint="shorten it, or raise ENGRAM_MAX_QUERY_CHARS",
            )
        if not 1 <= req.k <= MAX_K:
            raise InvalidInput(f"k must be between 1 and {MAX_K}, not {req.k}")
        if req.offset < 0:
            raise InvalidInput(f"offset must be ≥ 0, not {req.offset}")
        if req.mode not in ("hybrid", "keyword", "vector"):
            raise InvalidInput(f"unknown mode {req.mode!r}", hint="use hybrid, keyword or vector")
        if req.fusion is not None and req.fusion not in FUSION_METHODS:
            raise InvalidInput(
                f"unknown fusion {req.fusion!r}", hint=f"use one of {', '.join(FUSION_METHODS)}"
            )
        if req.group_by not in (None, "document"):
            raise InvalidInput(
                f"unknown group_by {req.group_by!r}", hint='use "document", or leave it out'
            )
        if req.alpha is not None:
            try:
                check_alpha(req.alpha)
            except ValueError as exc:
                raise InvalidInput(
                    str(exc),
                    hint="alpha is the vector leg's weight: 0 keyword only, 1 vector only, "
                    f"{AUTO!r} chosen by the query's length",
                ) from exc
        if req.rerank_weight is not None and not 0.0 <= req.rerank_weight <= 1.0:
            raise InvalidInput(
                f"rerank_weight must be between 0 and 1, not {req.rerank_weight}",
                hint="the cross-encoder's share of the reranked order: 0 fused order, 1 model only",
            )
        normalize_where(req.where)
        return query

    def search(self, collection: Collection, req: SearchRequest) -> SearchResponse:
        query = self.validate(req)
        # The revision moves whenever the collection's chunks change: older entries are
        # unreachable from then on, so a cached result is never stale.
        scope = (collection.id, self.store.revision(collection))
        return self.cached(
            scope, req, query, collection.name, lambda: self._search(collection, req, query)
        )

    def cached(
        self,
        scope: tuple[Any, ...],
        req: SearchRequest,
        query: str,
        names: str,
        compute: Callable[[], SearchResponse],
    ) -> SearchResponse:
        """The response to ``req`` from the result cache, else ``compute()``'s, cached.
        ``scope`` names what was searched and its revision (one collection, or several)."""
        key = cache_key(
            *scope,
            query,
            req.k,
            req.offset,
            req.mode,
            sorted((req.where or {}).items(), key=str),
            req.rerank,
            req.highlight,
            req.fusion,
            req.alpha,
            req.group_by,
            req.rerank_weight,
        )
        t0 = time.perf_counter()
        cached = self.result_cache.get(key)
        if isinstance(cached, SearchResponse):
            return dataclasses.replace(cached, timings_ms={"cache": _ms(t0)}, cached=True)
        with tracing.span("search", collection=names, mode=req.mode, k=req.k):
            response = compute()
        self.result_cache.set(key, response)
        return response

    def _search(self, collection: Collection, req: SearchRequest, query: str) -> SearchResponse:
        timings: dict[str, float] = {}
        depth = self.depth(req)
        terms = analyzer_for(collection).terms(query)  # repeats kept: see keyword_leg
        keyword, vector, expansions = self._run_legs(collection, req, query, terms, depth, timings)
        method, alpha = self.fusion_of(collection, req)
        owners = Owners(self.store, [collection])
        shape = (method, alpha, len(terms), self.foreign(req, alpha, query, [collection]))
        return self.finish(req, query, keyword, vector, shape, owners, expansions, timings)

    def foreign(
        self, req: SearchRequest, alpha: Alpha, query: str, collections: Sequence[Collection]
    ) -> bool:
        """Whether "auto" should weigh ``query`` as foreign to every one of ``collections``
        (a hybrid search only; see engram.search.fusion.FOREIGN_ALPHA)."""
        return (
            alpha == AUTO
            and req.mode == "hybrid"
            and all(self._foreign_to(c, query) for c in collections)
        )

    def _foreign_to(self, collection: Collection, query: str) -> bool:
        """Whether ``query`` is English and ``collection`` holds French text its words cannot
        match: its English stopwords occur in fewer than FOREIGN_SHARE of the chunks. Costs a
        lookup only for such queries."""
        markers = english_markers(query, collection.language)
        if not markers:
            return False
        freqs = self.store.term_frequencies(collection, markers)
        chunks = self.store.keyword_chunks(collection)
        return max(freqs.get(t, 0) for t in markers) < FOREIGN_SHARE * chunks

    def depth(self, req: SearchRequest) -> int:
        """Candidates each leg ranks for ``req``: enough for its page, at least
        ENGRAM_CANDIDATES (ENGRAM_RERANK_CANDIDATES when reranking)."""
        needed = req.offset + req.k
        depth = max(self.settings.candidates, needed)
        if req.group_by:  # a page of documents needs more chunks: some share a document
            depth = max(self.settings.candidates, GROUP_DEPTH * needed)
        if req.rerank:
            depth = max(depth, self.settings.rerank_candidates)
        return depth

    def _run_legs(
        self,
        collection: Collection,
        req: SearchRequest,
        query: str,
        terms: list[str],
        depth: int,
        timings: dict[str, float],
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], dict[str, list[str]]]:
        """The keyword and vector candidates of ``collection`` (each leg of ``req.mode``)."""
        keyword: list[tuple[int, float]] = []
        vector: list[tuple[int, float]] = []
        expansions: dict[str, list[str]] = {}
        pending: Future[tuple[list[tuple[int, float]], dict[str, list[str]], float]] | None = None
        if req.mode in ("hybrid", "keyword") and terms:
            if req.mode == "hybrid" and self.store.concurrent_reads:
                # In the context of this thread, so the leg's span has the search as parent.
                pending = self.leg_pool().submit(
                    contextvars.copy_context().run,
                    self.timed_keyword_leg,
                    collection,
                    terms,
                    depth,
                    req.where,
                )
            else:
                keyword, expansions, timings["keyword"] = self.timed_keyword_leg(
                    collection, terms, depth, req.where
                )
        if req.mode in ("hybrid", "vector"):
            try:
                t0 = time.perf_counter()
                with tracing.span("embed", kind="query"):
                    qvec = self.embed_query(collection, query)
                timings["embed"] = _ms(t0)
                t0 = time.perf_counter()
                with tracing.span("vector leg", k=depth):
                    vector = self.store.vector_search(collection, qvec, k=depth, where=req.where)
                timings["vector"] = _ms(t0)
            finally:
                if pending is not None:  # never leave the keyword leg running unobserved
                    keyword, expansions, timings["keyword"] = pending.result()
        return keyword, vector, expansions

    def finish(
        self,
        req: SearchRequest,
        query: str,
        keyword: list[tuple[int, float]],
        vector: list[tuple[int, float]],
        fusion: tuple[str, Alpha, int, bool],
        owners: Owners,
        expansions: dict[str, list[str]],
        timings: dict[str, float],
    ) -> SearchResponse:
        """Fuse the legs' candidates, rerank, group and cut ``req``'s page: its results, each
        labelled with the collection ``owners`` says its chunk is in. ``fusion`` is the
        method, the vector weight (or "auto"), the number of analyzed query words and whether
        the query is in a language the collection's words are not (foreign_query)."""
        needed = req.offset + req.k
        t0 = time.perf_counter()
        method, alpha_setting, words, foreign = fusion
        alpha, why = resolve_alpha(alpha_setting, words, foreign=foreign)
        with tracing.span("fusion", method=method, alpha=alpha):
            fused = self._fuse(req.mode, keyword, vector, method, alpha)
        timings["fusion"] = _ms(t0)

        reranked: dict[int, Reranked] = {}
        scores: dict[int, float] = {}  # with rerank: each candidate's blended score
        if req.rerank and fused:
            t0 = time.perf_counter()
            with tracing.span("rerank", candidates=len(fused)):
                fused, reranked, scores = self._rerank(owners, query, fused, req.rerank_weight)
            timings["rerank"] = _ms(t0)

        t0 = time.perf_counter()
        more_chunks: dict[int, int] = {}
        if req.group_by:
            fused, more_chunks, records = self._by_document(owners, fused)
            page = fused[req.offset : needed]
        else:
            page = fused[req.offset : needed]
            records = owners.records([f.id for f in page])
        near = {t for words in expansions.values() for t in words}
        results = []
        for f in page:
            rec = records.get(f.id)
            if rec is None:  # deleted since ranking began
                continue
            collection = owners.of(f.id)
            analyzer = analyzer_for(collection)
            moved = reranked.get(f.id)
            results.append(
                rec.result(
                    scores.get(f.id, f.score),
                    highlight=highlight(rec.text, owners.terms(query, near, analyzer), analyzer)
                    if req.highlight
                    else "",
                    explain=_explain(f, req.mode, (method, alpha, why), moved),
                    more_chunks=more_chunks.get(f.id) if req.group_by else None,
                    collection=collection.name,
                )
            )
        timings["fetch"] = _ms(t0)
        more = len(fused) > needed
        return SearchResponse(results, req.mode, needed if more else None, timings, expansions)

    def _by_document(
        self, owners: Owners, fused: list[Fused]
    ) -> tuple[list[Fused], dict[int, int], dict[int, ChunkRecord]]:
        """Collapse ranked chunks to one per document, its best (the document ranks where
        its best chunk ranked: MaxP); also how many more of its chunks were ranked."""
        records = owners.records([f.id for f in fused])
        best: dict[int, Fused] = {}
        more: dict[int, int] = {}
        for f in fused:
            rec = records.get(f.id)
            if rec is None:  # deleted since ranking began
                continue
            head = best.setdefault(rec.document_id, f)
            more[head.id] = more.get(head.id, -1) + 1
        return list(best.values()), more, records

    def fusion_of(
        self, collection: Collection, req: SearchRequest | None = None
    ) -> tuple[str, Alpha]:
        """The fusion method and vector weight of a search: the request's when it names them,
        else the collection's own when it was created with them (POST /v1/collections), else
        the settings' (ENGRAM_FUSION, ENGRAM_FUSION_ALPHA)."""
        own = collection.settings
        method = str(own.get("fusion", self.settings.fusion))
        alpha = check_alpha(own.get("fusion_alpha", self.settings.fusion_alpha))
        if req is not None:
            method = req.fusion if req.fusion is not None else method
            alpha = req.alpha if req.alpha is not None else alpha
        return method, alpha

    def _fuse(
        self,
        mode: SearchMode,
        keyword: list[tuple[int, float]],
        vector: list[tuple[int, float]],
        method: str,
        alpha: float,
    ) -> list[Fused]:
        if mode == "hybrid":
            return fuse(keyword, vector, method=method, alpha=alpha, rrf_k=self.settings.rrf_k)
        fused = (
            fuse(keyword, [], method="minmax", alpha=0.0)
            if mode == "keyword"
            else fuse([], vector, method="minmax", alpha=1.0)
        )
        for f in fused:  # a single leg keeps its own score
            f.score = (f.keyword or f.vector).score  # type: ignore[union-attr]
        return fused

    def timed_keyword_leg(
        self, collection: Collection, terms: list[str], depth: int, where: Where | None
    ) -> tuple[list[tuple[int, float]], dict[str, list[str]], float]:
        t0 = time.perf_counter()
        with tracing.span("keyword leg", k=depth):
            hits, expansions = self.keyword_leg(collection, terms, depth, where)
        return hits, expansions, _ms(t0)

    def leg_pool(self) -> ThreadPoolExecutor:
        with self._legs_lock:
            if self._legs is None:
                self._legs = ThreadPoolExecutor(max_workers=8, thread_name_prefix="engram-leg")
            return self._legs

    def close(self) -> None:
        if self._legs is not None:
            self._legs.shutdown(wait=True)

    def keyword_leg(
        self, collection: Collection, terms: list[str], depth: int, where: Where | None = None
    ) -> tuple[list[tuple[int, float]], dict[str, list[str]]]:
        """BM25 candidates for analyzed ``terms``, with typo expansion of absent terms."""
        expansions: dict[str, list[str]] = {}
        search_terms = terms
        if self.settings.fuzzy:
            freqs = self.store.term_frequencies(collection, terms)
            missing = unmatched(terms, freqs)
            if missing:
                candidates = self.store.spelling_candidates(collection, missing)
                search_terms, expansions = expand(terms, freqs, candidates)
        return self.store.keyword_search(collection, search_terms, k=depth, where=where), expansions

    def embed_query(self, collection: Collection, query: str) -> np.ndarray:
        """The query vector, refusing a model other than the collection's."""
        embedder = self.check_model(collection)
        key = cache_key(embedder.model_id, query)
        vector = self.embedding_cache.get(key)
        if vector is None:
            vector = embedder.embed_query(query)
            self.embedding_cache.set(key, vector)
        return np.asarray(vector)

    def check_model(self, collection: Collection) -> Embedder:
        """The model ``collection``'s vectors come from (ModelMismatch, saying how to fix
        it, when this engram cannot load it)."""
        return self._embedder(collection)

    def _rerank(
        self, owners: Owners, query: str, fused: list[Fused], weight: float | None
    ) -> tuple[list[Fused], dict[int, Reranked], dict[int, float]]:
        """The top candidates reordered by their cross-encoder scores blended with their
        fused scores (engram.search.rerank), then the rest in their order; how each of the
        top ones moved, and every candidate's blended score."""
        depth = self.settings.rerank_candidates
        records = owners.records([f.id for f in fused[:depth]])
        head = [f for f in fused[:depth] if f.id in records]  # others were deleted meanwhile
        if not head:
            return fused, {}, {}
        rest = fused[depth:]
        passages = [_passage(records[f.id].title, records[f.id].text) for f in head]
        model = self._reranker().rerank(query, passages)
        w = self.settings.rerank_weight if weight is None else weight
        order, moved, tail = blend([f.score for f in head + rest], model, w)
        reranked = {f.id: m for f, m in zip(head, moved)}
        scores = {f.id: m.score for f, m in zip(head, moved)}
        scores.update((f.id, s) for f, s in zip(rest, tail))
        return [head[p] for p in order] + rest, reranked, scores


def _passage(title: str, text: str) -> str:
    return f"{title}\n{text}" if title and not text.startswith(title) else text


def _explain(
    f: Fused, mode: str, fusion: tuple[str, float, str], rerank: Reranked | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keyword": {"rank": f.keyword.rank, "score": round(f.keyword.score, 6)}
        if f.keyword
        else None,
        "vector": {"rank": f.vector.rank, "score": round(f.vector.score, 6)} if f.vector else None,
    }
    if mode == "hybrid":
        method, alpha, why = fusion
        out["fused"] = {
            "method": method,
            "alpha": alpha,
            "alpha_from": why,
            "score": round(f.score, 6),
        }
    if rerank is not None:
        out["rerank"] = rerank.to_dict()
    return out


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
