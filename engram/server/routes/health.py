"""``/v1/health`` (the process answers) and ``/v1/ready`` (it can serve requests)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from ...engine import Engram
from ...errors import EngramError
from ..deps import DB
from ..errors import api_error
from ..schemas import CheckResult, Health, Readiness
from . import error_responses

router = APIRouter(tags=["health"])
logger = logging.getLogger("engram.server")


@router.get("/health", operation_id="health")
async def health() -> Health:
    """Liveness: the process is up and answering. Touches nothing else."""
    return Health()


@router.get("/ready", operation_id="ready", responses=error_responses(503))
def ready(db: DB) -> Readiness:
    """Readiness: the database answers a query and the embedding model is loaded (loading
    it on the first call). 503, with every check in ``details.checks``, if one fails."""
    checks = {"store": _check(lambda: _ping_store(db)), "embedder": _check(db.embedder)}
    failed = [name for name, check in checks.items() if check.status != "ok"]
    if failed:
        raise api_error(
            503,
            "not_ready",
            f"not ready: {', '.join(failed)} failed",
            hint="see details.checks; the server log has the cause",
            checks={name: check.model_dump() for name, check in checks.items()},
        )
    return Readiness(checks=checks)


def _ping_store(db: Engram) -> None:
    # An indexed point lookup: proves the database answers, costs the same at any size.
    db.store.cached_embeddings("readiness-probe", ["readiness-probe"])


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
