"""Analytics events written off the request path.

A request only puts its event on a queue; one thread writes queued events in batches (one
transaction each). So a search never waits for SQLite's write lock, which a large ingestion
may hold for seconds. Events are best effort: when the queue is full or a write fails they
are dropped and counted (``engram_events_dropped_total``), never failing the request.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from ..store.base import EventWrite, Store

logger = logging.getLogger("engram.server")

MAX_QUEUED = 10_000
BATCH = 500


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class _Flush:
    """A marker: the writer sets ``done`` once every event queued before it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


class EventRecorder:
    """Queues events and writes them to ``store`` from a background thread."""

    def __init__(
        self,
        store: Store,
        *,
        on_drop: Callable[[int], None] | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.store = store
        self._on_drop = on_drop
        self._queue: queue.Queue[EventWrite | _Flush | None] = queue.Queue(max_queued)
        self._thread = threading.Thread(target=self._run, name="engram-events", daemon=True)
        self._thread.start()

    def record(self, event: EventWrite) -> None:
        """Queue ``event``; never blocks, never raises. It is stamped now, not when written."""
        if event.created_at is None:
            event = dataclasses.replace(event, created_at=_now())
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            # No log line per event: a flood of them is what filled the queue.
            self._dropped(1)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far is written; False on timeout."""
        if not self._thread.is_alive():
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[EventWrite] = []
            markers: list[_Flush] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(batch)
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _write(self, batch: list[EventWrite]) -> None:
        if not batch:
            return
        try:
            self.store.record_events(batch)
        except Exception:
            logger.exception("writing %d analytics event(s) failed; dropped", len(batch))
            self._dropped(len(batch))

    def _dropped(self, count: int) -> None:
        if self._on_drop is not None:
            self._on_drop(count)
