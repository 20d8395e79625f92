"""The HTTP API application: ``create_app(settings)`` → a FastAPI app serving ``/v1``.

One :class:`~engram.engine.Engram` per process, opened when the app starts and closed when it
stops. Route handlers are plain functions, so FastAPI runs them in its threadpool: embedding
and search are CPU-bound and must not block the event loop.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from .. import tracing
from ..analytics.worker import AnalyticsWorker
from ..config import Settings
from ..engine import Engram
from ..jobs import JobWorker
from ..keys import VERIFIED_TTL, VerifiedKeys, revision_path
from ..providers.llms import llm_chain
from ..providers.llms.observed import ObservedChain
from ..web.app import install_web
from ..web.sessions import WebSessions
from .docs_pages import install_docs
from .errors import UnexpectedErrorMiddleware, api_error, install_error_handlers
from .jwt_auth import JwtVerifier
from .limits import MAX_REQUEST_BYTES, RequestSizeLimitMiddleware
from .observability import build_route_templates, install_observability, observe_job_ingest
from .ratelimit_setup import make_limiter
from .routes import api_router

if TYPE_CHECKING:
    from ..mcp.http import McpEndpoint

DESCRIPTION = (
    "Hybrid BM25 + vector search over your documents, with exact citations. Every error has "
    'the body `{"error": {"code", "message", "hint"?, "details"?}}`.'
)


def create_app(settings: Settings, *, db: Engram | None = None) -> FastAPI:
    """The API app for ``settings``. It opens its own :class:`Engram` at startup and closes
    it at shutdown; a ``db`` passed in is used instead and left open (its owner closes it)."""

    if settings.tracing and not tracing.enabled():
        tracing.enable()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = db is None
        app.state.db = db if db is not None else await run_in_threadpool(Engram, settings)
        # uvicorn accepts connections once this startup is over: the first search must not
        # wait for the model and the indexes to load (1.6 s against 11 ms measured).
        await run_in_threadpool(app.state.db.warm_up)
        await run_in_threadpool(build_route_templates, app)  # the OpenAPI schema, once
        # web app sign-ins (engram.web); expired ones are dropped at each start
        app.state.web_sessions = WebSessions(app.state.db.store)
        await run_in_threadpool(app.state.web_sessions.purge)
        app.state.observability.start(app.state.db)  # metrics, analytics events
        # The answer model chain is built once; None means extractive answers.
        app.state.llm = (
            ObservedChain(
                llm_chain(
                    settings.llm,
                    timeout=settings.llm_timeout,
                    retries=settings.llm_retries,
                    deadline=settings.llm_deadline,
                ),
                app.state.metrics,  # engram_llm_* metrics, per model of the chain
            )
            if settings.llm
            else None
        )
        # background jobs (engram.jobs), their outcomes counted in engram_jobs_finished_total,
        # uploaded files' ingestion in the ingest metrics and events as a synchronous upload
        observability = app.state.observability
        app.state.jobs = JobWorker(
            app.state.db,
            on_finish=app.state.metrics.job_finished,
            on_ingest=lambda job, report: observe_job_ingest(observability, job, report),
            llm=app.state.llm,
        )
        app.state.jobs.start()
        # forwarding to an external analytics endpoint and the retention purge, if configured
        app.state.analytics = AnalyticsWorker.from_settings(app.state.db.store, settings)
        if app.state.analytics is not None:
            app.state.analytics.start()
        try:
            async with app.state.mcp.running() if app.state.mcp else nullcontext():
                yield
        finally:
            if app.state.llm is not None:
                app.state.llm.close()
            await run_in_threadpool(app.state.jobs.stop)  # the running job is queued again
            await run_in_threadpool(app.state.observability.stop)  # writes queued events
            if app.state.analytics is not None:
                await run_in_threadpool(app.state.analytics.stop)
            for limiter in (app.state.key_limiter, app.state.ip_limiter):
                if limiter is not None:
                    await limiter.aclose()
            await app.state.verified_keys.aclose()
            opened, app.state.db = app.state.db, None
            if owned:
                await run_in_threadpool(opened.close)

    app = FastAPI(
        title="engram",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # engram.server.docs_pages serves /docs and /redoc from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    # Verified keys are remembered only where every process can learn of a revocation at
    # once: the shared data directory (embedded) or Redis. Servers sharing a PostgreSQL
    # database without Redis may run on other hosts, so they check the database every time.
    shared_revocations = settings.redis_url is not None or settings.database_url is None
    app.state.verified_keys = VerifiedKeys(
        revision_path(settings.data_dir),
        redis_url=settings.redis_url,
        ttl=VERIFIED_TTL if shared_revocations else 0.0,
    )
    # Shared by every process through Redis when ENGRAM_REDIS_URL is set (ratelimit_redis).
    app.state.key_limiter = make_limiter(
        settings.rate_limit_per_minute, redis_url=settings.redis_url, name="key"
    )
    app.state.jwt = JwtVerifier(settings) if settings.jwt_secret or settings.jwt_jwks_url else None
    app.state.ip_limiter = make_limiter(
        settings.rate_limit_ip_per_minute, redis_url=settings.redis_url, name="ip"
    )
    install_error_handlers(app)
    # The last middleware added runs first: the catch-all wraps the size limit.
    app.add_middleware(RequestSizeLimitMiddleware, max_bytes=MAX_REQUEST_BYTES)
    app.add_middleware(UnexpectedErrorMiddleware)
    if settings.cors_origins:
        # Browsers may call the API only from the listed origins; none by default.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Request-ID", "Location"],
        )
    # Outermost: request ids, metrics and the access log see every response, errors too.
    install_observability(app)
    app.include_router(api_router)
    install_docs(app)
    install_web(app)  # the web app at / (engram.web)
    app.state.mcp = _mount_mcp(app, settings)
    return app


def _mount_mcp(app: FastAPI, settings: Settings) -> McpEndpoint | None:
    """MCP over streamable HTTP at /mcp (engram.mcp.http) when the SDK is installed; else
    /mcp says how to install it."""
    if importlib.util.find_spec("mcp") is None:

        def missing() -> None:
            raise api_error(
                404,
                "not_found",
                "MCP is not enabled on this server: the MCP SDK is not installed",
                hint="pip install 'engram[mcp]' where engram serve runs, and restart it",
            )

        app.add_api_route("/mcp", missing, methods=["GET", "POST"], include_in_schema=False)
        return None
    from ..mcp.http import mount

    return mount(app, settings)


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (several workers, reload): settings come from
    ``ENGRAM_*`` environment variables and ``.env``."""
    return create_app(Settings.build())


def _version() -> str:
    try:
        return version("engram")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
