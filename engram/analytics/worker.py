"""The analytics housekeeping thread of a server or worker process: forwarding queued events
(engram.analytics.forwarder) and the retention purge.

Retention is enforced here, by the worker, not on write: every ``PURGE_INTERVAL`` seconds
(and once at start) events older than ``analytics_retention_days`` days are deleted, with any
of them still queued for forwarding, a bounded batch per transaction. Every running server
and ``engram worker`` does it; a purge that finds nothing costs one indexed read.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .forwarder import Forwarder

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.contract import EventStore

logger = logging.getLogger("engram.analytics")

PURGE_INTERVAL = 3600.0


def purge_before(days: int, now: datetime | None = None) -> str:
    """The cutoff of a retention of ``days`` days, as an ISO timestamp."""
    moment = (now or datetime.now(UTC)) - timedelta(days=days)
    return moment.isoformat(timespec="microseconds")


def forwarder_for(store: EventStore, settings: Settings) -> Forwarder | None:
    """The forwarder ``settings`` configure, or None."""
    if not settings.analytics_forward_url:
        return None
    return Forwarder(
        store,
        settings.analytics_forward_url,
        settings.analytics_forward_key or "",
        batch=settings.analytics_forward_batch,
        include_queries=settings.analytics_forward_queries,
    )


class AnalyticsWorker:
    """Forwards the outbox and purges old events in a background thread."""

    def __init__(
        self,
        store: EventStore,
        *,
        forwarder: Forwarder | None = None,
        retention_days: int = 0,
        interval: float = 1.0,
        purge_interval: float = PURGE_INTERVAL,
    ) -> None:
        self.store = store
        self.forwarder = forwarder
        self.retention_days = retention_days
        self.interval = interval
        self.purge_interval = purge_interval
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, store: EventStore, settings: Settings) -> AnalyticsWorker | None:
        """The worker ``settings`` ask for (forwarding, retention), or None for neither."""
        forwarder = forwarder_for(store, settings)
        if forwarder is None and not settings.analytics_retention_days:
            return None
        return cls(store, forwarder=forwarder, retention_days=settings.analytics_retention_days)

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="engram-analytics", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Send now rather than at the next tick."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.forwarder is not None:
            self.forwarder.close()

    def purge(self) -> int:
        """Delete events past the retention now; returns how many."""
        if not self.retention_days:
            return 0
        gone = self.store.purge_events(purge_before(self.retention_days))
        if gone:
            logger.info(
                "purged %d analytics event(s) older than %d days", gone, self.retention_days
            )
        return gone

    def _run(self) -> None:
        next_purge = time.monotonic()
        while not self._stop:
            if self.retention_days and time.monotonic() >= next_purge:
                try:
                    self.purge()
                except Exception:
                    logger.exception("purging old analytics events failed")
                next_purge = time.monotonic() + self.purge_interval
            wait = self.interval
            if self.forwarder is not None:
                sent, delay = self.forwarder.run_once()
                if sent == self.forwarder.batch:
                    continue  # more may be waiting
                if delay is not None:
                    wait = max(wait, min(delay, self.forwarder.max_delay))
            self._wake.wait(wait)
            self._wake.clear()
