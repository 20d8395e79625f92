"""``db.analytics``: custom event kinds, tracking, statistics, export and retention, for the
library, the CLI and the HTTP API alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import EngramError, InvalidInput
from ..keys import ApiKey
from ..store.records import EventWrite
from . import export
from .kinds import BUILT_IN, EventKinds
from .worker import purge_before

logger = logging.getLogger("engram.analytics")

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.contract import EventStore

DEFAULT_TENANT = "default"
MAX_DAYS = 366


def window(days: int, now: datetime | None = None) -> tuple[str, str]:
    """(since, until) of the last ``days`` days, as ISO timestamps."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1 to {MAX_DAYS}, not {days}")
    until = now or datetime.now(UTC)
    since = until - timedelta(days=days)
    return since.isoformat(timespec="microseconds"), until.isoformat(timespec="microseconds")


class Analytics:
    """Events of a store: what engram records, what clients add, what is read back."""

    def __init__(self, store: EventStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.kinds = EventKinds(store)

    @property
    def forwarding(self) -> bool:
        """Whether recorded events are queued for the external analytics endpoint."""
        return bool(self.settings.analytics_forward_url)

    # -- kinds -------------------------------------------------------------------------------
    def register_kind(
        self, name: str, schema: dict[str, Any], *, tenant: str = DEFAULT_TENANT
    ) -> None:
        """Register a custom event kind whose properties must match ``schema`` (a JSON
        schema of the subset engram.analytics.schema checks), or replace its schema."""
        self.kinds.register(tenant, name, schema)

    def event_kinds(self, *, tenant: str = DEFAULT_TENANT) -> dict[str, dict[str, Any]]:
        """name → schema of the tenant's custom kinds."""
        return self.store.event_kinds(tenant)

    def remove_kind(self, name: str, *, tenant: str = DEFAULT_TENANT) -> None:
        """Unregister a custom kind (its recorded events stay); NotFound if unknown."""
        self.kinds.remove(tenant, name)

    # -- recording ---------------------------------------------------------------------------
    def track(
        self,
        kind: str,
        properties: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        tenant: str = DEFAULT_TENANT,
        created_at: str | None = None,
    ) -> None:
        """Record one event now (synchronously). A custom kind must be registered and its
        properties match its schema; built-in kinds are taken as they are."""
        props = dict(properties or {})
        if kind not in BUILT_IN:
            self.kinds.validate(tenant, kind, props)
        self.record([EventWrite(tenant, kind, user_id=user_id, data=props, created_at=created_at)])

    def record(self, events: Sequence[EventWrite]) -> None:
        """Write events in one transaction, queued for forwarding when that is configured."""
        self.store.record_events(events, outbox=self.forwarding)

    def key_changed(self, key: ApiKey, kind: str) -> None:
        """A ``key_created`` / ``key_revoked`` event of the key's tenant; a key change never
        fails because its event could not be written."""
        data = {"scopes": list(key.scopes), "user_bound": key.user_id is not None}
        try:
            self.record([EventWrite(key.tenant, kind, key_id=key.id, data=data)])
        except EngramError as exc:
            logger.warning("recording the %s event of key %s failed: %s", kind, key.id, exc)

    # -- reading -----------------------------------------------------------------------------
    def stats(
        self,
        *,
        tenant: str = DEFAULT_TENANT,
        days: int = 30,
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """Usage statistics (``event_stats``) and retention, cohorts and breakdowns
        (``event_insights``) of the last ``days`` days, or of ``since <= t < until``."""
        start, end = window(days)
        start, end = since or start, until or end
        return {
            "days": days,
            "since": start,
            "until": end,
            **self.store.event_stats(tenant, start, end),
            **self.store.event_insights(tenant, start, end),
        }

    def export(
        self,
        *,
        tenant: str = DEFAULT_TENANT,
        format: str = "jsonl",
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[str]:
        """The tenant's events (``since <= created_at < until``, all by default), oldest
        first, as JSON Lines or CSV lines; read lazily, a page at a time."""
        fmt = export.check_format(format)
        start, end = since or "0001", until or "9999"
        return export.lines(self.store.export_events(tenant, start, end), fmt)

    # -- retention ---------------------------------------------------------------------------
    def purge(self, *, older_than_days: int | None = None) -> int:
        """Delete every tenant's events older than ``older_than_days`` (default: the
        ``analytics_retention_days`` setting; 0 keeps everything); returns how many."""
        days = (
            self.settings.analytics_retention_days if older_than_days is None else older_than_days
        )
        if days <= 0:
            return 0
        return self.store.purge_events(purge_before(days))
