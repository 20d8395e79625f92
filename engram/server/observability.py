"""Operations: request ids, access logs, Prometheus metrics and analytics events.

:func:`install_observability` adds to an app:

- a middleware that gives every request an id (the client's ``X-Request-ID`` when it is at
  most 128 safe characters, else a fresh one), returns it in ``X-Request-ID``, counts and
  times the request by route template, and writes one JSON access line on ``engram.access``
  (never a header: keys and tokens cannot leak through it);
- ``GET /metrics`` (Prometheus text format, unauthenticated, not in the OpenAPI schema);
- ``app.state.metrics`` (:class:`~engram.server.metrics.Metrics`: ``cache_hit(name)``,
  ``cache_miss(name)``, ``observe_ingest(report)``...) and ``app.state.observability``.

Routes report what they did with one call each — :func:`observe_search`,
:func:`observe_ingest`, :func:`record_event` — which finds the app through the request
context; outside a request they do nothing.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import tracing
from ..analytics.kinds import searched
from ..store.records import EventWrite
from ..types import IngestReport
from .context import RequestContext, current_request, enter_request, leave_request
from .metrics import Metrics
from .recorder import EventRecorder

if TYPE_CHECKING:
    from ..engine import Engram
    from ..jobs.types import Job
    from ..search.searcher import SearchResponse
    from .principal import Principal

access_logger = logging.getLogger("engram.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=~-]{1,128}")
UNMATCHED = "unmatched"  # the route label of requests no route matched (404)


class Observability:
    """The metrics and event recorder of one app; the recorder runs while the app does."""

    def __init__(self) -> None:
        self._db: Engram | None = None
        self.metrics = Metrics(
            pending_jobs=self._pending_jobs, pool_stats=self._pool_stats, data_dir=self._data_dir
        )
        self.events: EventRecorder | None = None
        self._login_day = ""
        self._logged_in: set[tuple[str, str]] = set()  # (tenant, key id) seen on that day

    def start(self, db: Engram) -> None:
        self._db = db
        self.events = EventRecorder(
            db.store, on_drop=self.metrics.events_dropped.inc, outbox=db.analytics.forwarding
        )
        self.metrics.bind_caches(db.searcher)

    def login(self, principal: Principal) -> None:
        """A ``login`` event the first time a key or token is used on a UTC day (in this
        process: several processes may each record one)."""
        if principal.key_id is None or self.events is None:
            return
        day = datetime.now(UTC).date().isoformat()
        if self._login_day != day:
            self._login_day, self._logged_in = day, set()
        seen = (principal.tenant, principal.key_id)
        if seen in self._logged_in:
            return
        self._logged_in.add(seen)
        method = "jwt" if principal.key_id.startswith("jwt:") else "api_key"
        self.events.record(
            EventWrite(
                principal.tenant,
                "login",
                user_id=principal.user_id,
                key_id=principal.key_id,
                data={"method": method},
            )
        )

    def stop(self) -> None:
        if self.events is not None:
            self.events.close()
        self.events, self._db = None, None

    def record(self, event: EventWrite) -> None:
        if self.events is not None:
            self.events.record(event)

    def flush(self) -> None:
        """Wait until recorded events are written (before reading statistics)."""
        if self.events is not None:
            self.events.flush()

    def _pending_jobs(self) -> dict[str, int] | None:
        db = self._db
        return db.store.pending_jobs() if db is not None else None

    def _data_dir(self) -> Path | None:
        db = self._db
        return Path(db.settings.data_dir) if db is not None else None

    def _pool_stats(self) -> dict[str, int] | None:
        from ..store.postgres.status import pool_stats  # imports nothing of psycopg

        db = self._db
        return pool_stats(db.store) if db is not None else None


class ObservabilityMiddleware:
    """Request id, metrics and the access log of every HTTP request."""

    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        context = RequestContext(request_id, self.observability)
        status = 500  # what the client gets if the app raises before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        token = enter_request(context)
        method = scope["method"]
        with tracing.span(
            f"{method} {scope['path']}",
            **{"http.request.method": method, "url.path": scope["path"], "request.id": request_id},
        ) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                try:
                    self._finish(scope, context, status)
                    if tracing.enabled():  # named by route template, as the metrics are
                        route = route_template(scope)
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                finally:
                    leave_request(token)

    def _finish(self, scope: Scope, context: RequestContext, status: int) -> None:
        seconds = time.perf_counter() - context.started
        method, route = scope["method"], route_template(scope)
        self.observability.metrics.observe_request(method, route, status, seconds)
        principal = context.principal
        client = scope.get("client")
        fields: dict[str, Any] = {
            "request_id": context.request_id,
            "method": method,
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client_ip": client[0] if client else None,
            "tenant": principal.tenant if principal else None,
            "key_id": principal.key_id if principal else None,
        }
        access_logger.info(
            "%s %s %d %.1fms",
            method,
            scope["path"],
            status,
            seconds * 1000,
            extra={"fields": fields},
        )


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (``/v1/collections/{name}``),
    or ``unmatched``: raw paths would give the metrics unbounded label values."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    # A route of an included router knows only its own part of the path ("/search"); the
    # OpenAPI schema has the full template of every operation.
    operation_id = getattr(route, "operation_id", None)
    if operation_id and "app" in scope:
        template = _templates(scope["app"]).get(operation_id)
        if template:
            return template
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


def _templates(app: Any) -> dict[str, str]:
    """operationId → path template, from the app's OpenAPI schema (built once)."""
    found: dict[str, str] | None = getattr(app.state, "route_templates", None)
    if found is None:
        found = {}
        try:
            for path, operations in app.openapi().get("paths", {}).items():
                for operation in operations.values():
                    if isinstance(operation, dict) and operation.get("operationId"):
                        found[operation["operationId"]] = path
        except Exception:  # no schema: fall back to the routes' own paths
            access_logger.exception("building the route templates failed")
        app.state.route_templates = found
    return found


def build_route_templates(app: Any) -> None:
    """Build the route templates now (from the OpenAPI schema: ≈ 1.5 s), at start-up rather
    than in the first request."""
    _templates(app)


def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of this app (text exposition format)."""
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def install_observability(app: FastAPI) -> Observability:
    """Add the middleware and ``/metrics`` to ``app``; the caller starts and stops the
    returned :class:`Observability` with the database (in the app's lifespan)."""
    observability = Observability()
    app.state.observability = observability
    app.state.metrics = observability.metrics
    app.add_middleware(ObservabilityMiddleware, observability=observability)
    app.add_api_route(
        "/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False, name="metrics"
    )
    return observability


# -- one-line hooks for routes ---------------------------------------------------------------
def observe_search(
    principal: Principal,
    query: str,
    response: SearchResponse,
    *,
    collection: str | list[str] | None = None,
) -> None:
    """Metrics of a search's stages, and a ``search`` event (query, result count, latency
    so far in the request, the user the key acts for, the collection searched: past-query
    suggestions read them, engram.search.past_queries; a search of several collections
    records them as ``collections`` and feeds no collection's suggestions)."""
    context = current_request()
    if context is None:
        return
    context.principal = principal
    context.observability.metrics.observe_search(response.timings_ms)
    context.observability.record(
        EventWrite(
            principal.tenant,
            "search",
            user_id=principal.user_id,
            key_id=principal.key_id,
            query=query,
            result_count=len(response.results),
            latency_ms=context.elapsed_ms(),
            data={
                "mode": response.mode,
                "cached": bool(getattr(response, "cached", False)),
                **searched(collection),
            },
        )
    )


def observe_ingest(
    report: IngestReport, *, tenant: str | None = None, collection: str | None = None
) -> None:
    """Ingestion metrics (documents by outcome, chunks, embedding time) and, given the
    tenant, an ``ingest`` event with the report's counts (and the collection)."""
    context = current_request()
    if context is None:
        return
    context.observability.metrics.observe_ingest(report)
    if tenant is not None:
        principal = context.principal
        context.observability.record(
            ingest_event(
                report,
                tenant=tenant,
                collection=collection,
                key_id=principal.key_id if principal else None,
            )
        )


def ingest_event(
    report: IngestReport, *, tenant: str, collection: str | None, key_id: str | None
) -> EventWrite:
    """The ``ingest`` event of a report: its counts (and the collection)."""
    counts = report.to_dict()
    counts.pop("errors", None)
    if collection is not None:
        counts["collection"] = collection
    return EventWrite(
        tenant,
        "ingest",
        key_id=key_id,
        latency_ms=round(report.seconds * 1000, 3),
        data=counts,
    )


def observe_job_ingest(observability: Observability, job: Job, report: IngestReport) -> None:
    """What :func:`observe_ingest` records for a synchronous upload, for an uploaded file
    ingested by this process's job worker (no request: the job names the uploader's key)."""
    observability.metrics.observe_ingest(report)
    key_id = (job.payload or {}).get("key_id")
    observability.record(
        ingest_event(
            report,
            tenant=job.tenant,
            collection=job.collection,
            key_id=key_id if isinstance(key_id, str) else None,
        )
    )


def record_event(
    principal: Principal,
    kind: str,
    *,
    user_id: str | None = None,
    query: str | None = None,
    result_count: int | None = None,
    latency_ms: float | None = None,
    properties: dict[str, Any] | None = None,
    **data: Any,
) -> None:
    """Record an analytics event of the caller's tenant (``chat``, ``message``, ``memory``,
    ``click``, ``rating``, a custom kind...); ``properties`` and ``data`` (its None values
    left out) are stored as JSON. Written in the background."""
    context = current_request()
    if context is None:
        return
    context.principal = principal
    context.observability.record(
        EventWrite(
            principal.tenant,
            kind,
            user_id=user_id,
            key_id=principal.key_id,
            query=query,
            result_count=result_count,
            latency_ms=latency_ms,
            data={**(properties or {}), **{k: v for k, v in data.items() if v is not None}},
        )
    )
