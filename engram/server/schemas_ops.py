"""API schemas of analytics events and usage statistics (families as in schemas.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from .schemas_base import RequestModel


class EventCreate(RequestModel):
    """Feedback from a client: a result was clicked, or an answer was rated."""

    kind: Literal["click", "rating"]
    query: str | None = Field(None, max_length=4096, description="The query it answers.")
    document: str | None = Field(None, max_length=1024, description="Key of the document.")
    chunk_id: int | None = Field(None, ge=1, description="The clicked or rated result.")
    rating: int | None = Field(
        None, ge=-1, le=5, description="Thumbs (-1, 0, 1) or stars (1..5); ratings only."
    )
    user_id: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _complete(self) -> EventCreate:
        if self.kind == "rating" and self.rating is None:
            raise ValueError("a rating event needs a rating (-1..1 or 1..5)")
        if self.kind == "click" and self.rating is not None:
            raise ValueError("a click event has no rating")
        if self.kind == "click" and self.document is None and self.chunk_id is None:
            raise ValueError("a click event needs the clicked document or chunk_id")
        return self


class EventAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class DayCount(BaseModel):
    date: str = Field(description="UTC day, YYYY-MM-DD.")
    count: int


class MonthCount(BaseModel):
    month: str = Field(description="UTC month, YYYY-MM.")
    count: int


class QueryCount(BaseModel):
    query: str = Field(description="Normalised: lower case, whitespace collapsed.")
    count: int


class LatencyStats(BaseModel):
    count: int = Field(description="Searches with a recorded latency.")
    p50: float | None = Field(description="Median, in ms (nearest rank); null without data.")
    p95: float | None


class ActiveUsers(BaseModel):
    total: int = Field(description="Distinct user ids with an event in the window.")
    daily: list[DayCount]
    monthly: list[MonthCount]


class StatsPublic(BaseModel):
    """Usage of the caller's tenant over the last ``days`` days."""

    days: int
    since: str
    until: str
    counts: dict[str, int] = Field(description="Events by kind (search, chat, click...).")
    queries_per_day: list[DayCount] = Field(description="Searches per UTC day (days with any).")
    search_latency_ms: LatencyStats
    zero_result_rate: float | None = Field(
        description="Share of searches that found nothing; null without searches."
    )
    top_queries: list[QueryCount] = Field(description="The 10 most frequent search queries.")
    active_users: ActiveUsers = Field(
        description="Users (the user_id of chats, messages, memories, clicks and ratings)."
    )
