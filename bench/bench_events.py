"""Analytics events ingestion into the store: events per second, through the server's batching
recorder and through the store directly, with and without the forwarding outbox.

    python bench/bench_events.py                                   # embedded (SQLite)
    python bench/bench_events.py --database-url postgresql://...   # PostgreSQL

``--events`` search events (a tenant among 5, a user among 2,000, a query among 500, a result
count, a latency and a collection, as the search route records them) are written:

- ``recorder``: each one handed to the server's :class:`EventRecorder` (what a request does),
  timed until :meth:`~EventRecorder.flush` has written them all (batches of 500);
- ``store``: :meth:`Store.record_events` in batches of ``--batch``;
- ``store+outbox``: the same, each event also queued for forwarding in the same transaction.

Then the admin statistics of one tenant over the window are timed (``event_stats`` plus
retention, cohorts and breakdowns). Printed: one JSON line per mode and one for the stats.
Target: ≥ 5,000 events/s into the store on both backends.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import engram
from engram.config import Settings
from engram.server.recorder import EventRecorder
from engram.store.records import EventWrite


def events(n: int, seed: int) -> list[EventWrite]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=29)
    return [
        EventWrite(
            f"t{rng.randrange(5)}",
            "search",
            user_id=f"u{rng.randrange(2000)}",
            key_id="k1",
            query=f"query {rng.randrange(500)}",
            result_count=rng.randrange(10),
            latency_ms=round(rng.uniform(2, 80), 3),
            data={"mode": "hybrid", "cached": False, "collection": f"c{rng.randrange(8)}"},
            created_at=(start + timedelta(seconds=i * 29 * 86400 / n)).isoformat(
                timespec="microseconds"
            ),
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="engram-events-"))
    settings = Settings.build(
        data_dir=data_dir, embedding_model="hash", database_url=args.database_url
    )
    backend = "postgres" if args.database_url else "sqlite"
    results = []
    with engram.open(settings=settings) as db:
        store = db.store
        batch = events(args.events, 1)
        recorder = EventRecorder(store, max_queued=args.events + 1)
        started = time.perf_counter()
        for event in batch:
            recorder.record(event)
        recorder.flush(timeout=600)
        results.append(("recorder", time.perf_counter() - started))
        recorder.close()

        for mode, seed, outbox in (("store", 2, False), ("store+outbox", 3, True)):
            batch = events(args.events, seed)
            started = time.perf_counter()
            for i in range(0, len(batch), args.batch):
                store.record_events(batch[i : i + args.batch], outbox=outbox)
            results.append((mode, time.perf_counter() - started))

        for mode, seconds in results:
            line = {
                "backend": backend,
                "mode": mode,
                "events": args.events,
                "seconds": round(seconds, 3),
                "events_per_s": round(args.events / seconds),
            }
            print(json.dumps(line))
        started = time.perf_counter()
        stats = db.analytics.stats(tenant="t0", days=30)
        print(
            json.dumps(
                {
                    "backend": backend,
                    "stats_ms": round((time.perf_counter() - started) * 1000, 1),
                    "tenant_events": sum(stats["counts"].values()),
                    "users": stats["active_users"]["total"],
                    "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                }
            )
        )


if __name__ == "__main__":
    main()
