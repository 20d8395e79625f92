"""The analytics part of the store contract beyond writing and counting events, written once
for both backends over a :class:`~engram.store.session.Session`: the registry of custom
event kinds (``event_kinds``), the forwarding outbox (``event_outbox``), the export of a
tenant's events and the purge of old ones.

The outbox is a queue with leases, claimable by senders in many processes. A claim is one
``UPDATE … WHERE id IN (SELECT … due … LIMIT n) RETURNING``, the lease being the row's
``next_attempt_at`` pushed past now and ``claimed_by`` naming the claimer: on SQLite inside
``BEGIN IMMEDIATE`` (one writer at a time), on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` in
the pick, so two senders never hold the same row. An acknowledgement deletes only rows the
sender still holds; a failure gives them back with ``attempts + 1`` and the next attempt
after an exponential backoff. A sender that dies mid-send loses its rows when the lease ends:
they are sent again (at least once), each under the same ``uuid``, which the endpoint
deduplicates on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from . import rows as shared
from .session import ALL_TENANTS, Session, Tables

EXPORT_PAGE = 1000  # events read per statement while exporting
PURGE_BATCH = 5000  # rows deleted per transaction while purging (short write locks)


@dataclass(frozen=True)
class OutboxItem:
    """An event claimed for forwarding: its row id, the event (:func:`rows.outbox_payload`)
    and how many sends of it failed before."""

    id: int
    tenant: str
    event: dict[str, Any]
    attempts: int


def event_dict(r: Sequence[Any], decoding: shared.Decoding) -> dict[str, Any]:
    """One exported event from (id, kind, user_id, key_id, query, result_count, latency_ms,
    data, created_at)."""
    data = r[7]
    return {
        "id": int(r[0]),
        "kind": r[1],
        "user_id": r[2],
        "key_id": r[3],
        "query": r[4],
        "result_count": r[5],
        "latency_ms": r[6],
        "properties": data if isinstance(data, dict) else json.loads(data),
        "created_at": decoding.time(r[8], False),
    }


class AnalyticsTables(Tables):
    """Event kinds, the outbox, export and purge in a backend's tables."""

    # Appended to the outbox claim's pick (PostgreSQL: " FOR UPDATE SKIP LOCKED").
    outbox_lock: ClassVar[str]

    def _event_time(self, value: str, name: str) -> Any:
        """An ISO 8601 bound as the backend compares it (SQLite: the text itself)."""
        return value

    def _now_value(self, delta: float = 0.0) -> Any:
        return self.dialect.time_value(datetime.now(UTC) + timedelta(seconds=delta))

    # -- the registry of event kinds (tenant-scoped) -------------------------------------------
    def put_event_kind(self, tenant: str, name: str, schema: dict[str, Any]) -> None:
        """Register ``name`` with its JSON schema, or replace the schema it had."""
        text = json.dumps(schema, ensure_ascii=False, sort_keys=True)
        with self._session(tenant, write=True) as s:
            s.run(
                "INSERT INTO event_kinds (tenant, name, schema, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, name) DO UPDATE SET schema = excluded.schema",
                (tenant, name, text, self._now_value()),
            )

    def event_kinds(self, tenant: str) -> dict[str, dict[str, Any]]:
        """name → JSON schema of every kind the tenant registered, by name."""
        with self._session(tenant) as s:
            found = s.rows(
                "SELECT name, schema FROM event_kinds WHERE tenant = ? ORDER BY name", (tenant,)
            )
        return {name: json.loads(text) for name, text in found}

    def delete_event_kind(self, tenant: str, name: str) -> bool:
        with self._session(tenant, write=True) as s:
            return (
                s.run("DELETE FROM event_kinds WHERE tenant = ? AND name = ?", (tenant, name)) > 0
            )

    # -- export and retention ----------------------------------------------------------------
    def export_events(self, tenant: str, since: str, until: str) -> Iterator[dict[str, Any]]:
        """The tenant's events with ``since <= created_at < until``, oldest first (ties by
        id), read a page at a time: a long export holds no transaction open. The ``erasure``
        markers (engram's own bookkeeping for past-query suggestions) are left out."""
        bounds = (self._event_time(since, "since"), self._event_time(until, "until"))
        after: tuple[Any, int] | None = None
        while True:
            where = "tenant = ? AND created_at >= ? AND created_at < ? AND kind <> 'erasure'"
            params = [tenant, *bounds]
            if after is not None:
                where += " AND (created_at > ? OR (created_at = ? AND id > ?))"
                params += [after[0], after[0], after[1]]
            with self._session(tenant) as s:
                page = s.rows(
                    "SELECT id, kind, user_id, key_id, query, result_count, latency_ms, data,"
                    f" created_at FROM events WHERE {where} ORDER BY created_at, id LIMIT ?",
                    (*params, EXPORT_PAGE),
                )
            for r in page:
                yield event_dict(r, self.dialect.decoding)
            if len(page) < EXPORT_PAGE:
                return
            after = (page[-1][8], int(page[-1][0]))

    def purge_events(self, before: str) -> int:
        """Delete events (and outbox rows) of every tenant created before ``before`` (an ISO
        timestamp), a batch per transaction; returns how many events went."""
        cutoff, total = self._event_time(before, "before"), 0
        for table in ("events", "event_outbox"):
            while True:
                with self._session(ALL_TENANTS, write=True) as s:
                    gone = s.run(
                        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table}"
                        " WHERE created_at < ? ORDER BY created_at LIMIT ?)",
                        (cutoff, PURGE_BATCH),
                    )
                if table == "events":
                    total += gone
                if gone < PURGE_BATCH:
                    break
        return total

    # -- the outbox (every tenant: the sender's side) ----------------------------------------
    def claim_outbox(self, owner: str, *, limit: int, lease: float) -> list[OutboxItem]:
        """Take up to ``limit`` due events, oldest first, for ``lease`` seconds."""
        now = self._now_value()
        with self._session(ALL_TENANTS, write=True) as s:
            found = s.rows(
                "UPDATE event_outbox SET claimed_by = ?, next_attempt_at = ?"
                " WHERE id IN (SELECT id FROM event_outbox WHERE next_attempt_at <= ?"
                f" ORDER BY next_attempt_at, id LIMIT ?{self.outbox_lock})"
                " RETURNING id, tenant, payload, attempts",
                (owner, self._now_value(lease), now, limit),
            )
        return sorted(
            (OutboxItem(int(r[0]), r[1], json.loads(r[2]), int(r[3])) for r in found),
            key=lambda item: item.id,
        )

    def ack_outbox(self, owner: str, ids: Sequence[int]) -> int:
        """Delete sent events that ``owner`` still holds; returns how many."""
        return self._outbox_update("DELETE FROM event_outbox", (), owner, ids)

    def release_outbox(self, owner: str, ids: Sequence[int], *, delay: float, error: str) -> int:
        """Give back events whose send failed: tried again after ``delay`` seconds."""
        return self._outbox_update(
            "UPDATE event_outbox SET claimed_by = NULL, attempts = attempts + 1,"
            " next_attempt_at = ?, last_error = ?",
            (self._now_value(delay), error[:1000]),
            owner,
            ids,
        )

    def _outbox_update(
        self, head: str, values: tuple[Any, ...], owner: str, ids: Sequence[int]
    ) -> int:
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        with self._session(ALL_TENANTS, write=True) as s:
            return s.run(f"{head} WHERE claimed_by = ? AND id IN ({marks})", (*values, owner, *ids))

    def outbox_depth(self) -> int:
        """Events waiting to be forwarded, of every tenant."""
        with self._session(ALL_TENANTS) as s:
            found = s.row("SELECT count(*) FROM event_outbox")
        return int(found[0]) if found else 0


def write_outbox(s: Session, rows: Sequence[tuple[Any, ...]], now: Any) -> None:
    """Queue events for forwarding inside the transaction that records them; ``rows`` are
    :func:`rows.outbox_values` tuples."""
    s.run_many(
        "INSERT INTO event_outbox (tenant, user_id, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(*r, now) for r in rows],
    )


def erase_outbox(session: Session, tenant: str, user_id: str) -> int:
    """Delete a user's queued events (erasure); returns how many."""
    return session.run(
        "DELETE FROM event_outbox WHERE tenant = ? AND user_id = ?", (tenant, user_id)
    )
