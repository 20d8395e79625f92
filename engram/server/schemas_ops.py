"""API schemas of analytics events and usage statistics (families as in schemas.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .schemas_base import RequestModel


class EventCreate(RequestModel):
    """Feedback from a client (a result was clicked, an answer was rated), or an event of a
    custom kind registered with ``POST /v1/admin/event-kinds``."""

    kind: str = Field(
        min_length=1,
        max_length=64,
        description="click, rating, or a custom kind registered for the tenant.",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="A custom kind's properties, checked against its JSON schema.",
    )
    query: str | None = Field(None, max_length=4096, description="The query it answers.")
    document: str | None = Field(None, max_length=1024, description="Key of the document.")
    chunk_id: int | None = Field(None, ge=1, description="The clicked or rated result.")
    rating: int | None = Field(
        None, ge=-1, le=5, description="Thumbs (-1, 0, 1) or stars (1..5); ratings only."
    )
    user_id: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _complete(self) -> EventCreate:
        if self.kind not in ("click", "rating"):
            return self  # a custom kind: checked against the tenant's registry
        if self.properties:
            raise ValueError(f"a {self.kind} event has no properties")
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


class FeedbackCounts(BaseModel):
    up: int = Field(description="Answers rated helpful (feedback events, rating up).")
    down: int = Field(description="Answers rated unhelpful (rating down).")


class ActiveUsers(BaseModel):
    total: int = Field(description="Distinct user ids with an event in the window.")
    daily: list[DayCount]
    monthly: list[MonthCount]


class RetentionDay(BaseModel):
    day: int = Field(description="N: the day after the first-seen day (1, 7, 30).")
    eligible: int = Field(description="Users first seen in the window whose day N has begun.")
    retained: int = Field(description="Of them, those with an event on exactly day N.")
    rate: float | None = Field(description="retained / eligible; null when none is eligible.")


class Cohort(BaseModel):
    week: str = Field(description="Monday (UTC) of the week the users were first seen in.")
    users: int = Field(description="Users first seen that week.")
    active: list[int] = Field(
        description="Of them, how many had an event that week and each week after it, up to"
        " the window's last: active[0] == users."
    )


class CollectionUsage(BaseModel):
    collection: str
    events: int
    searches: int
    zero_result_rate: float | None
    chats: int
    users: int = Field(description="Distinct user ids among the collection's events.")


class UserUsage(BaseModel):
    user_id: str
    events: int
    searches: int
    chats: int
    first_seen: str = Field(description="The user's first event in the window.")
    last_seen: str


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
    top_zero_result_queries: list[QueryCount] = Field(
        description="The 10 most frequent search queries that found nothing."
    )
    feedback: FeedbackCounts = Field(description="Thumbs up and down on answers.")
    active_users: ActiveUsers = Field(
        description="Users (the user_id of chats, messages, memories, clicks and ratings)."
    )
    retention: list[RetentionDay] = Field(
        description="Day-N retention of the users first seen in the window (their first event"
        " ever, UTC days)."
    )
    cohorts: list[Cohort] = Field(description="Users by first-seen week, and their activity.")
    by_collection: list[CollectionUsage] = Field(
        description="The 50 collections with the most events (searches, chats, ingestion)."
    )
    by_user: list[UserUsage] = Field(description="The 20 users with the most events.")


class EventKindCreate(RequestModel):
    """A custom event kind: its name and the JSON schema its events' properties must match
    (a subset of JSON Schema: type, enum, const, properties, required,
    additionalProperties, items, min/max lengths, items and properties, pattern, bounds)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.:-]*$")
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON schema (an object).")


class EventKindPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str
    schema_: dict[str, Any] = Field(alias="schema")


class EventKindList(BaseModel):
    data: list[EventKindPublic]
    count: int
    built_in: list[str] = Field(description="Kinds engram records itself or clients post.")


# -- import batches --------------------------------------------------------------------------
class ImportBatchPublic(BaseModel):
    id: str
    tenant: str
    kind: str = Field(description="Where the import came from: jsonl, chroma or export.")
    source: str
    collections: list[str]
    status: str = Field(description="running, finished, failed or rolled_back.")
    counts: dict[str, int]
    started_at: str
    finished_at: str | None
    rolled_back_at: str | None
    irreversible: str | None = Field(description="Why it cannot be rolled back (None: it can).")


class ImportBatchList(BaseModel):
    data: list[ImportBatchPublic]
    count: int


class RollbackPublic(BaseModel):
    batch: ImportBatchPublic
    counts: dict[str, int] = Field(
        description="Documents deleted (the import added them), restored (it updated them), "
        "re-created (it deleted them); conversations and memories removed."
    )
    conflicts: list[str] = Field(description="What later writes had changed (with force).")
