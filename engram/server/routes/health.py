"""``/v1/health`` (the process answers) and ``/v1/ready`` (it can serve requests).

Readiness requires the store and the embedding model; the reranker, the LLM endpoints and
Redis are reported too, but their failure only makes the status ``degraded``: search
without reranking, and extractive answers, still work.

On PostgreSQL the store is probed through its connection pool (engram.store.postgres.status): ``store``
(reachable, latency, server version, connections, pool usage), ``schema`` (the applied
migrations against this code's: pending or unknown ones make the process not ready),
``pgvector`` (installed, its version) and ``rls`` (a superuser or BYPASSRLS role skips the
tenant policies: a warning, which makes the status ``degraded``)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from ...engine import Engram
from ...errors import EngramError
from ...providers.llms.probe import probe_llms
from ...providers.models import resolve_model
from ..deps import DB
from ..errors import api_error
from ..schemas import CheckResult, Health, Readiness, error_responses

router = APIRouter(tags=["health"])
logger = logging.getLogger("engram.server")


@router.get("/health", operation_id="health")
async def health() -> Health:
    """Liveness: the process is up and answering. Touches nothing else."""
    return Health()


@router.get(
    "/ready",
    operation_id="ready",
    responses=error_responses(503),
    response_model_exclude_none=True,
)
def ready(db: DB) -> Readiness:
    """Readiness: the database answers a query and the embedding model is loaded (loading
    it on the first call). 503, with every check in ``details.checks``, if one fails.
    Also reports whether the models of the collections load (engram.embedders: each
    collection keeps its own), whether the reranker's files resolve, the LLM endpoints answer (2 s
    each) and Redis answers; their failure makes the status ``degraded``, not 503.
    On PostgreSQL: also the schema version (pending migrations: 503), pgvector, whether
    row-level security applies to the role (if not: a warning) and the pool's usage."""
    checks, failed = readiness_checks(db)
    if failed:
        raise api_error(
            503,
            "not_ready",
            f"not ready: {', '.join(failed)} failed",
            hint=next(
                (h for h in (checks[name].hint for name in failed) if h),
                "see details.checks; the server log has the cause",
            ),
            checks={name: check.model_dump(exclude_none=True) for name, check in checks.items()},
        )
    degraded = any(check.status in ("error", "warning") for check in checks.values())
    return Readiness(status="degraded" if degraded else "ok", checks=checks)


def readiness_checks(db: Engram) -> tuple[dict[str, CheckResult], list[str]]:
    """Every check of ``/v1/ready`` by component, and the names of the failed required ones
    (store, schema, embedder…: the process is not ready). The web app's Operations page
    shows the same checks."""
    checks = _postgres_checks(db) if db.settings.database_url else _sqlite_checks(db)
    checks["embedder"] = _check(db.embedder)
    failed = [name for name, check in checks.items() if check.status == "error"]
    # The models of the collections (each keeps its own): one that cannot load fails the
    # searches of its collections only, so the server is degraded, not unready.
    checks["collection_models"] = _check(db.embedders.check)
    checks["reranker"] = _check(lambda: _reranker_path(db.settings.reranker_model))
    checks["llm"] = _llm_check(db.settings.llm)
    checks["redis"] = _redis_check(db)
    return checks, failed


def _sqlite_checks(db: Engram) -> dict[str, CheckResult]:
    return {"store": _check(lambda: _ping_store(db))}


def _postgres_checks(db: Engram) -> dict[str, CheckResult]:
    from ...store.postgres.status import PGVECTOR_HINT, RLS_HINT, pool_stats, store_status

    started = time.perf_counter()
    try:
        found = store_status(db.store)
    except Exception as exc:  # reported, whatever it is: readiness never raises
        if isinstance(exc, EngramError):
            error, hint = exc.message, exc.hint
            logger.warning("readiness check failed: %s", exc)
        else:
            error, hint = "internal error", None
            logger.exception("readiness check failed")
        latency = round((time.perf_counter() - started) * 1000, 3)
        details = {"backend": "postgres", "pool": pool_stats(db.store)}
        return {
            "store": CheckResult(
                status="error", latency_ms=latency, error=error, hint=hint, details=details
            )
        }
    store = CheckResult(
        status="ok",
        latency_ms=found.latency_ms,
        details={
            "backend": "postgres",
            "server_version": found.server_version,
            "database": found.database,
            "connections": found.connections,
            "max_connections": found.max_connections,
            "pool": pool_stats(db.store),
        },
    )
    schema = CheckResult(
        status="ok" if found.schema_ok else "error",
        latency_ms=0.0,
        error=None if found.schema_ok else found.schema_detail(),
        hint=found.schema_hint,
        details={
            "version": found.schema_version,
            "expected": found.code_version,
            "pending": list(found.pending),
        },
    )
    if not found.schema_ok:
        logger.warning("readiness: %s", found.schema_detail())
    pgvector = CheckResult(
        status="ok" if found.pgvector else "error",
        latency_ms=0.0,
        error=None if found.pgvector else f"pgvector is not installed in {found.database}",
        hint=None if found.pgvector else PGVECTOR_HINT,
        details={"version": found.pgvector},
    )
    bypass = found.rls_bypass_reason()
    rls = CheckResult(
        status="warning" if bypass else "ok",
        latency_ms=0.0,
        error=bypass,
        hint=RLS_HINT if bypass else None,
        details={"role": found.role, "enforced": found.rls_enforced},
    )
    return {"store": store, "schema": schema, "pgvector": pgvector, "rls": rls}


def _ping_store(db: Engram) -> None:
    # An indexed point lookup: proves the database answers, costs the same at any size.
    db.store.cached_embeddings("readiness-probe", ["readiness-probe"])


@functools.lru_cache(maxsize=8)
def _reranker_path(name: str) -> str:
    # Resolving finds the files without loading the model; a success is remembered, so a
    # probe every few seconds does not walk the disk (or ask a model hub) each time.
    return str(resolve_model(name, kind="reranker").path)


def _llm_check(specs: str) -> CheckResult:
    if not specs.strip():
        return CheckResult(status="not_configured", latency_ms=0.0)
    probes = probe_llms(specs, timeout=2.0)
    down = [f"{p.name} ({p.url or 'bad spec'}): {p.error}" for p in probes if not p.ok]
    latency = round(sum(p.latency_ms for p in probes), 3)
    if down:
        logger.warning("readiness: LLM endpoints unreachable: %s", "; ".join(down))
        return CheckResult(
            status="error", latency_ms=latency, error="unreachable: " + "; ".join(down)
        )
    return CheckResult(status="ok", latency_ms=latency)


def _redis_check(db: Engram) -> CheckResult:
    if not getattr(db.settings, "redis_url", None):
        return CheckResult(status="not_configured", latency_ms=0.0)
    ping = getattr(getattr(db.searcher, "result_cache", None), "ping", None)
    if ping is None:
        return CheckResult(status="error", latency_ms=0.0, error="the caches do not use Redis")
    return _check(ping)


def _check(probe: Callable[[], Any]) -> CheckResult:
    started = time.perf_counter()
    error = None
    try:
        probe()
    except EngramError as exc:
        error = exc.message
        logger.warning("readiness check failed: %s", exc)
    except Exception:
        error = "internal error"
        logger.exception("readiness check failed")
    latency = round((time.perf_counter() - started) * 1000, 3)
    return CheckResult(status="error" if error else "ok", latency_ms=latency, error=error)
