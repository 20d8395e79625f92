"""API schemas of agent state (``/v1/state``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .schemas_base import RequestModel


class StatePut(RequestModel):
    value: Any = Field(description="Any JSON value.")
    ttl: float | None = Field(None, gt=0, description="Seconds until the item expires.")
    index: list[str] | None = Field(
        None, max_length=32, description="Fields of a JSON object to embed for semantic search."
    )


class StateItemPublic(BaseModel):
    namespace: list[str]
    key: str
    value: Any
    version: int
    created_at: str
    updated_at: str
    expires_at: str | None = None
    score: float | None = None


class StateList(BaseModel):
    data: list[StateItemPublic]
    next_cursor: str | None = None


class StateSearch(RequestModel):
    prefix: list[str] = Field(default_factory=list, max_length=16)
    query: str | None = Field(None, max_length=10_000)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class StateNamespacesRequest(RequestModel):
    prefix: list[str] = Field(default_factory=list, max_length=16)
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class StateNamespaces(BaseModel):
    data: list[list[str]]
