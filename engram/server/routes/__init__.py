"""The ``/v1`` API: one module per resource, gathered into :data:`api_router`."""

from __future__ import annotations

from fastapi import APIRouter

from ..schemas import error_responses


def _build() -> APIRouter:
    from . import (
        admin,
        chat,
        collections,
        conversations,
        documents,
        events,
        files,
        health,
        jobs,
        memories,
        openai_api,
        search,
        state,
        versions,
    )

    # Every route may answer 500. Routes with parameters list 422 themselves, which also
    # replaces FastAPI's default validation-error schema with the one error shape.
    router = APIRouter(prefix="/v1", responses=error_responses(500))
    # Routes behind authentication may also answer 401, 403 and 429; health checks may not.
    # Search first: routes are matched in order, and it is the route under load.
    for module in (
        search,
        collections,
        versions,  # before documents: their {key:path} routes would take these paths
        documents,
        files,
        chat,
        openai_api,
        memories,
        conversations,
        state,
        jobs,
        events,
        admin,
    ):
        router.include_router(module.router, responses=error_responses(401, 403, 429))
    router.include_router(health.router)
    return router


api_router = _build()
