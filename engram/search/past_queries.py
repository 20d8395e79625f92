"""Past successful queries, the third source of suggestions, read from the analytics events.

The server records a ``search`` event per search with its normalised query, its result count
and (``data.collection``) the collection searched; this module counts, per tenant and
collection, how many times each query that returned results was asked. Nothing is written
for it: the events are the record (no second copy of users' questions to erase), and a
process keeps the counts in memory, caught up from the events by id at each suggestion, as
the embedded BM25 index catches up from the chunk log. So a query asked through any process
is suggested by every process.

Erasure (``erase_user``, ``delete_user_events``) deletes a user's events and writes an
``erasure`` event: a process that reads one starts its tenant's counts over, so an erased
user's queries stop being suggested everywhere. Event ids are the order of insertion, which
on PostgreSQL is not quite the order of commit (two processes' transactions may commit out
of order): a process also starts over every ``RELOAD_SECONDS``, which recounts any event it
skipped.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..store.contract import EventStore
from .bm25 import LAST_CHAR

BATCH = 10_000  # events read per statement while catching up
RELOAD_SECONDS = 300.0
MAX_QUERIES = 50_000  # distinct queries kept per collection; past it the rarest go


@dataclass(slots=True)
class _Queries:
    """One collection's queries: normal form → [times asked, the query as last asked]."""

    counts: dict[str, list[int | str]] = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)  # normal forms, sorted (when not stale)
    stale: bool = False

    def add(self, normal: str, query: str) -> None:
        entry = self.counts.get(normal)
        if entry is None:
            self.counts[normal] = [1, query]
            self.stale = True
        else:
            entry[0] = int(entry[0]) + 1
            entry[1] = query

    def prune(self) -> None:
        if len(self.counts) > MAX_QUERIES:
            keep = sorted(self.counts.items(), key=lambda kv: -int(kv[1][0]))[: MAX_QUERIES // 2]
            self.counts = dict(keep)
            self.stale = True

    def matching(self, prefixes: Sequence[str], limit: int) -> list[tuple[str, str, int]]:
        """(normal form, query, times asked) of the ``limit`` most asked queries whose normal
        form starts with one of ``prefixes``; ties in normal-form order."""
        if self.stale:
            self.ordered, self.stale = sorted(self.counts), False
        found: dict[str, int] = {}
        for prefix in prefixes:
            low = bisect_left(self.ordered, prefix)
            high = bisect_left(self.ordered, prefix + LAST_CHAR, low)
            for normal in self.ordered[low:high]:
                found[normal] = int(self.counts[normal][0])
        best = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [(normal, str(self.counts[normal][1]), n) for normal, n in best]


@dataclass(slots=True)
class _Tenant:
    last: int = 0  # the id of the last event counted
    erased: int = 0  # erasures up to this id are accounted for
    loaded_at: float = field(default_factory=time.monotonic)
    collections: dict[str, _Queries] = field(default_factory=dict)


class PastQueries:
    """Successful queries per tenant and collection, counted from the events."""

    def __init__(self, store: EventStore, normalise: Callable[[str], str]) -> None:
        self.store = store
        self.normalise = normalise  # query → the form prefixes are matched against
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

    def matching(
        self, tenant: str, collection: str, prefixes: Sequence[str], limit: int
    ) -> list[tuple[str, str, int]]:
        """(normal form, query, times asked) of the collection's most asked queries starting
        with one of ``prefixes`` (normal forms)."""
        with self._lock:
            queries = self._catch_up(tenant).collections.get(collection)
            return queries.matching(prefixes, limit) if queries else []

    def _catch_up(self, tenant: str) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None or time.monotonic() - state.loaded_at > RELOAD_SECONDS:
            state = self._tenants[tenant] = _Tenant(erased=state.erased if state else 0)
        while True:
            events = self.store.suggest_events(tenant, after=state.last, limit=BATCH)
            for event in events:
                if event.collection is None:  # an erasure: count again what is left
                    if event.id > state.erased:
                        state = self._tenants[tenant] = _Tenant(erased=event.id)
                        break
                    state.last = event.id
                    continue
                normal = self.normalise(event.query or "")
                if normal:
                    queries = state.collections.setdefault(event.collection, _Queries())
                    queries.add(normal, event.query or "")
                state.last = event.id
            else:
                if len(events) < BATCH:
                    break
        for queries in state.collections.values():
            queries.prune()
        return state
