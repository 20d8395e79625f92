"""Prometheus metrics of one app, exposed at ``GET /metrics``.

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one
process (tests, embedded servers) never share or clash. With ``engram serve --workers N``
each worker exposes its own counters; scrape them through one address per worker or sum
them in Prometheus.

Requests are labelled by route *template* (``/v1/collections/{name}``), never by raw path,
so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..types import IngestReport

logger = logging.getLogger("engram.server")

# Seconds: from a cached search (sub-millisecond) to a large upload or a slow answer.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The keys of SearchResponse.timings_ms that become ``leg`` labels; others are ignored.
SEARCH_LEGS = frozenset({"keyword", "vector", "embed", "fusion", "rerank", "fetch", "cache"})
_OUTCOMES = ("added", "updated", "unchanged", "deleted", "failed")


class Metrics:
    """Every metric of one app, and the helpers that feed them."""

    def __init__(
        self,
        pending_jobs: Callable[[], Mapping[str, int] | None] | None = None,
        pool_stats: Callable[[], Mapping[str, int] | None] | None = None,
        data_dir: Callable[[], Path | None] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        # process_max_fds, process_start_time_seconds... (read from /proc at scrape time)
        ProcessCollector(registry=r)
        r.register(_ThreadsCollector())
        if data_dir is not None:
            r.register(_DiskCollector(data_dir))
        self.llm_requests = Counter(
            "engram_llm_requests",
            "Calls to a chat model, by model and outcome (ok; error: refused or garbled;"
            " unavailable: unreachable, timed out, overloaded; cancelled: a stream closed"
            " early, e.g. its client went away).",
            ["model", "outcome"],
            registry=r,
        )
        self.llm_seconds = Histogram(
            "engram_llm_request_duration_seconds",
            "Time of one call to a chat model (a stream: until its last piece).",
            ["model", "outcome"],
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        self.llm_deltas = Counter(
            "engram_llm_stream_deltas",
            "Text pieces received from streamed replies (one token each from OpenAI-compatible"
            " and Ollama servers).",
            ["model"],
            registry=r,
        )
        self.llm_chars = Counter(
            "engram_llm_output_chars",
            "Characters of reply text received from chat models.",
            ["model"],
            registry=r,
        )
        self.llm_fallbacks = Counter(
            "engram_llm_fallbacks",
            "Answers given by a fallback model because the models before it in the chain failed.",
            ["model"],
            registry=r,
        )
        self.requests = Counter(
            "engram_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "engram_http_request_duration_seconds",
            "Time to answer an HTTP request (a streamed answer: until its last byte).",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=r,
        )
        self.search_leg_seconds = Histogram(
            "engram_search_leg_seconds",
            "Time spent in each stage of a search (keyword, vector, embed, fusion, rerank,"
            " fetch; cache for a search answered from the result cache).",
            ["leg"],
            buckets=BUCKETS,
            registry=r,
        )
        self.embed_seconds = Histogram(
            "engram_embed_seconds",
            "Embedding model time: one query (kind=query), or all the batches of one"
            " ingestion request (kind=passage).",
            ["kind"],
            buckets=BUCKETS,
            registry=r,
        )
        self.ingested_documents = Counter(
            "engram_ingested_documents",
            "Documents ingested, by outcome (added, updated, unchanged, deleted, failed).",
            ["outcome"],
            registry=r,
        )
        self.ingested_chunks = Counter(
            "engram_ingested_chunks",
            "Chunks written by ingestion: embedded anew, or reusing a cached vector.",
            ["source"],
            registry=r,
        )
        self.cache_hits = Counter(
            "engram_cache_hits", "Cache lookups that found an entry.", ["cache"], registry=r
        )
        self.cache_misses = Counter(
            "engram_cache_misses", "Cache lookups that found nothing.", ["cache"], registry=r
        )
        self.jobs_finished = Counter(
            "engram_jobs_finished",
            "Background job attempts that ended, by status: succeeded, failed (for good),"
            " retried (failed, tried again later).",
            ["status"],
            registry=r,
        )
        self.events_dropped = Counter(
            "engram_events_dropped",
            "Analytics events dropped because the recorder's queue was full or failed.",
            registry=r,
        )
        if pending_jobs is not None:
            r.register(_JobQueueCollector(pending_jobs))
        if pool_stats is not None:
            r.register(_PoolCollector(pool_stats))
        # Labelled children, looked up once per label set: ``labels()`` takes a lock and
        # builds keys on every call, a visible cost at thousands of requests a second. The
        # label sets are bounded (route templates, statuses, legs), so these maps are too.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._leg_children: dict[str, Any] = {}

    # -- feeding -----------------------------------------------------------------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.request_seconds.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_search(self, timings_ms: Mapping[str, float]) -> None:
        for leg, ms in timings_ms.items():
            if leg in SEARCH_LEGS:
                child = self._leg_children.get(leg)
                if child is None:
                    child = self._leg_children[leg] = self.search_leg_seconds.labels(leg)
                child.observe(ms / 1000)
        if "embed" in timings_ms:
            self.embed_seconds.labels("query").observe(timings_ms["embed"] / 1000)

    def observe_ingest(self, report: IngestReport) -> None:
        for outcome in _OUTCOMES:
            count = getattr(report, outcome)
            if count:
                self.ingested_documents.labels(outcome).inc(count)
        if report.chunks_embedded:
            self.ingested_chunks.labels("embedded").inc(report.chunks_embedded)
        if report.chunks_reused:
            self.ingested_chunks.labels("reused").inc(report.chunks_reused)
        if report.chunks_embedded:
            self.embed_seconds.labels("passage").observe(report.model_seconds)

    def llm_call(
        self, model: str, outcome: str, seconds: float, *, deltas: int, chars: int
    ) -> None:
        """One call to a chat model ended (see engram.providers.llms.observed)."""
        self.llm_requests.labels(model, outcome).inc()
        self.llm_seconds.labels(model, outcome).observe(seconds)
        if deltas:
            self.llm_deltas.labels(model).inc(deltas)
        if chars:
            self.llm_chars.labels(model).inc(chars)

    def job_finished(self, status: str) -> None:
        """A background job attempt ended with ``status``."""
        self.jobs_finished.labels(status).inc()

    def llm_fallback(self, model: str) -> None:
        """An answer came from a fallback model."""
        self.llm_fallbacks.labels(model).inc()

    def cache_hit(self, name: str) -> None:
        """Count a hit of the cache ``name`` (e.g. ``"embedding"``, ``"search"``)."""
        self.cache_hits.labels(name).inc()

    def cache_miss(self, name: str) -> None:
        """Count a miss of the cache ``name``."""
        self.cache_misses.labels(name).inc()

    def bind_caches(self, owner: Any) -> None:
        """Count the hits and misses of the caches ``owner`` has (a Searcher's
        ``embedding_cache`` and ``result_cache``), through their ``on_hit``/``on_miss``."""
        for attr in ("embedding_cache", "result_cache"):
            cache = getattr(owner, attr, None)
            if cache is not None and hasattr(cache, "on_hit"):
                cache.on_hit, cache.on_miss = self.cache_hit, self.cache_miss


class _ThreadsCollector(Collector):
    """``process_threads``: OS threads of this process (the model runtime's included)."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        threads = _proc_status_threads()
        if threads is None:
            threads = threading.active_count()  # Python's threads only (no /proc)
        yield GaugeMetricFamily("process_threads", "OS threads of this process.", value=threads)


def _proc_status_threads() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class _DiskCollector(Collector):
    """``engram_data_dir_free_bytes`` / ``engram_data_dir_size_bytes``: the file system that
    holds the data directory (SQLite file, index files, backups)."""

    def __init__(self, path: Callable[[], Path | None]) -> None:
        self._path = path

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        path = self._path()
        if path is None:
            return
        path = path.resolve()
        while not path.exists() and path != path.parent:
            path = path.parent  # not created yet: the file system it will be on
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            return
        yield GaugeMetricFamily(
            "engram_data_dir_free_bytes",
            "Bytes free on the file system of the data directory.",
            value=usage.free,
        )
        yield GaugeMetricFamily(
            "engram_data_dir_size_bytes",
            "Size of the file system of the data directory.",
            value=usage.total,
        )


class _JobQueueCollector(Collector):
    """``engram_job_queue_depth{status}``, read from the store at scrape time."""

    def __init__(self, read: Callable[[], Mapping[str, int] | None]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        # Describing would call the store at registration, before the database is open.
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "engram_job_queue_depth", "Background jobs queued or running.", labels=["status"]
        )
        try:
            counts = self._read()
        except Exception:  # a failing store must not break the whole scrape
            logger.exception("reading the job queue depth failed")
            counts = None
        for status, count in (counts or {}).items():
            family.add_metric([status], count)
        yield family


class _PoolCollector(Collector):
    """The database connection pool of this process (PostgreSQL), read at scrape time:
    ``engram_db_pool_connections{state="in_use"|"idle"}``, ``engram_db_pool_max_connections``
    and ``engram_db_pool_requests_waiting``. Nothing when the store has no pool (SQLite)."""

    def __init__(self, read: Callable[[], Mapping[str, int] | None]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._read()
        except Exception:  # a failing pool must not break the whole scrape
            logger.exception("reading the connection pool statistics failed")
            stats = None
        if not stats:
            return
        connections = GaugeMetricFamily(
            "engram_db_pool_connections",
            "Database connections this process holds open, in use by a request or idle.",
            labels=["state"],
        )
        connections.add_metric(["in_use"], stats["pool_size"] - stats["pool_available"])
        connections.add_metric(["idle"], stats["pool_available"])
        yield connections
        yield GaugeMetricFamily(
            "engram_db_pool_max_connections",
            "Most database connections this process opens (ENGRAM_DATABASE_POOL_SIZE).",
            value=stats["pool_max"],
        )
        yield GaugeMetricFamily(
            "engram_db_pool_requests_waiting",
            "Requests waiting for a free database connection: the pool is too small.",
            value=stats["requests_waiting"],
        )
