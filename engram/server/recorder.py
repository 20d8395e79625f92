"""Analytics events written off the request path.

A request only appends its event to an in-memory buffer (no lock, no thread wake-up); one
thread writes the buffer every ``interval`` seconds, or as soon as it holds ``BATCH`` events,
in one transaction. So a search never waits for the database's write lock, which a large
ingestion may hold for seconds, and under load thousands of events cost a few transactions a
second instead of one each. Events are best effort: when the buffer is full or a write fails
they are dropped and counted (``engram_events_dropped_total``), never failing the request.
:meth:`EventRecorder.flush` waits for what is buffered (the stats route calls it).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from ..errors import ServerUnavailable, StoreLocked
from ..store.contract import EventStore
from ..store.records import EventWrite

logger = logging.getLogger("engram.server")

MAX_QUEUED = 10_000
BATCH = 500
RETRIES = 3  # a batch refused by a busy or restarting database is tried again, then dropped
INTERVAL = 0.5  # seconds between writes while events trickle in


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class EventRecorder:
    """Buffers events and writes them to ``store`` from a background thread."""

    def __init__(
        self,
        store: EventStore,
        *,
        on_drop: Callable[[int], None] | None = None,
        max_queued: int = MAX_QUEUED,
        interval: float = INTERVAL,
        outbox: bool = False,
    ) -> None:
        self.store = store
        self.outbox = outbox  # queue the events for forwarding too (engram.analytics.forwarder)
        self.max_queued = max_queued
        self.interval = interval
        self._on_drop = on_drop
        # deque.append and popleft are atomic: producers never take a lock.
        self._buffer: deque[EventWrite] = deque()
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._generation = 0  # completed write passes, for flush()
        self._wanted = 0  # the pass a flush() waits for: run passes back to back until then
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="engram-events", daemon=True)
        self._thread.start()

    def record(self, event: EventWrite) -> None:
        """Buffer ``event``; never blocks, never raises. It is stamped now, not when written."""
        if event.created_at is None:
            event = dataclasses.replace(event, created_at=_now())
        size = len(self._buffer)
        if size >= self.max_queued:
            # No log line per event: a flood of them is what filled the buffer.
            self._dropped(1)
            return
        self._buffer.append(event)
        if size + 1 == BATCH:
            self._wake.set()  # a full batch: write it now rather than at the next tick

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event buffered so far is written; False on timeout."""
        if not self._thread.is_alive():
            return True
        with self._written:
            target = self._generation + 2  # the pass under way may have missed our events
            self._wanted = max(self._wanted, target)
            self._wake.set()
            return self._written.wait_for(
                lambda: self._generation >= target or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered, then stop the thread."""
        if self._thread.is_alive():
            self._stop = True
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            if self._generation >= self._wanted:
                self._wake.wait(self.interval)
            self._wake.clear()
            stop = self._stop
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(BATCH, len(self._buffer)))]
                self._write(batch)
            with self._written:
                self._generation += 1
                self._written.notify_all()
            if stop:
                return

    def _write(self, batch: list[EventWrite]) -> None:
        if not batch:
            return
        for attempt in range(RETRIES + 1):
            try:
                self.store.record_events(batch, outbox=self.outbox)
                return
            except (StoreLocked, ServerUnavailable) as exc:  # busy, or restarting: worth a retry
                if attempt == RETRIES or self._stop:
                    logger.warning(
                        "writing %d analytics event(s) failed; dropped: %s", len(batch), exc
                    )
                    break
                time.sleep(0.2 * 2**attempt)
            except Exception:
                logger.exception("writing %d analytics event(s) failed; dropped", len(batch))
                break
        self._dropped(len(batch))

    def _dropped(self, count: int) -> None:
        if self._on_drop is not None:
            self._on_drop(count)
