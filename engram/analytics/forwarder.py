"""Forwarding events to an external analytics endpoint speaking PostHog's capture API.

Events to forward are queued in the store's outbox in the very transaction that records them
(``record_events(..., outbox=True)``), so an event is forwarded if and only if it was
recorded, and nothing queued is lost when a process stops. :meth:`Forwarder.run_once` claims a
batch (a lease: no other process sends those rows meanwhile), sends it as one
``POST {url}/batch/`` with ``{"api_key", "batch": [{"event", "distinct_id", "properties",
"timestamp", "uuid"}]}``, and deletes the rows once the endpoint answered 2xx. Any failure
(refused connection, timeout, non-2xx) gives the rows back, due again after an exponential
backoff (``base_delay`` × 2^attempts, at most ``max_delay``), kept in the database so that it
survives restarts. A process that dies mid-send loses its lease and the rows are sent again
by whichever process claims them next: delivery is at least once, and each event keeps the
``uuid`` it was queued with, on which PostHog deduplicates.

It runs in the background (:class:`engram.analytics.worker.AnalyticsWorker`): no request
ever waits for the endpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import httpx

from ..store.analytics_tables import OutboxItem
from ..store.contract import EventStore

logger = logging.getLogger("engram.analytics")

BATCH = 100
LEASE = 60.0  # seconds a claimed batch is this sender's
TIMEOUT = 10.0


def capture_event(item: OutboxItem, *, include_queries: bool) -> dict[str, Any]:
    """A queued event in PostHog's batch shape. The distinct id is the user, else the API key,
    else the tenant; the event's data become properties with the tenant and its counts."""
    e = item.event
    distinct = e.get("user_id") or (f"key:{e['key_id']}" if e.get("key_id") else None)
    properties: dict[str, Any] = {
        **(e.get("data") or {}),
        "tenant": item.tenant,
        "$lib": "engram",
    }
    for name in ("result_count", "latency_ms", "key_id"):
        if e.get(name) is not None:
            properties[name] = e[name]
    if e.get("kind") == "search" and e.get("result_count") is not None:
        properties["zero_result"] = e["result_count"] == 0
    if include_queries and e.get("query") is not None:
        properties["query"] = e["query"]
    return {
        "event": e["kind"],
        "distinct_id": distinct or f"tenant:{item.tenant}",
        "properties": properties,
        "timestamp": e["timestamp"],
        "uuid": e["uuid"],
    }


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try of a batch that failed ``attempts + 1`` times."""
    return float(min(cap, base * 2 ** min(attempts, 30)))


class Forwarder:
    """Sends the outbox to ``url`` (a PostHog host: ``https://eu.i.posthog.com``)."""

    def __init__(
        self,
        store: EventStore,
        url: str,
        api_key: str,
        *,
        batch: int = BATCH,
        lease: float = LEASE,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        include_queries: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.endpoint = url.rstrip("/") + "/batch/"
        self.api_key = api_key
        self.batch = batch
        self.lease = lease
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.include_queries = include_queries
        # Names this sender in the rows it claims: host, process, and a random part.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client = httpx.Client(timeout=TIMEOUT, transport=transport)
        self.sent = 0  # events the endpoint accepted, for tests and logs
        self.failures = 0  # batches that failed

    def run_once(self) -> tuple[int, float | None]:
        """Claim and send one batch: (events sent, seconds to wait before trying again after
        a failure, else None). Never raises."""
        try:
            items = self.store.claim_outbox(self.owner, limit=self.batch, lease=self.lease)
        except Exception as exc:
            logger.warning("claiming events to forward failed: %s", exc)
            return 0, self.base_delay
        if not items:
            return 0, None
        body = {
            "api_key": self.api_key,
            "batch": [capture_event(i, include_queries=self.include_queries) for i in items],
        }
        ids = [i.id for i in items]
        error = self._send(body)
        try:
            if error is None:
                self.store.ack_outbox(self.owner, ids)
                self.sent += len(items)
                return len(items), None
            delay = backoff(max(i.attempts for i in items), self.base_delay, self.max_delay)
            self.failures += 1
            logger.warning(
                "forwarding %d event(s) to %s failed (%s); next try in %.1fs",
                len(items),
                self.endpoint,
                error,
                delay,
            )
            self.store.release_outbox(self.owner, ids, delay=delay, error=error)
            return 0, delay
        except Exception as exc:  # the lease ends by itself: the rows are claimed again later
            logger.warning("updating the outbox failed: %s", exc)
            return 0, self.base_delay

    def _send(self, body: dict[str, Any]) -> str | None:
        """None when the endpoint took the batch, else what went wrong."""
        try:
            response = self._client.post(self.endpoint, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def close(self) -> None:
        self._client.close()
