"""Latency of agent state: get, put (compare-and-set) and a prefix listing.

    python bench/bench_state.py                                   # embedded (SQLite)
    python bench/bench_state.py --database-url postgresql://...   # PostgreSQL

``--items`` values (small JSON objects: an agent's plan, a session's variables) are written
under ``--users`` namespaces ``user/<n>/agent/planner``; then ``--ops`` gets of random items,
as many compare-and-set puts (read the version, write with it: one get and one put each,
timed apart), and listings of one user's items. Printed: one JSON line per operation with
p50/p95/p99 in milliseconds, and one with the setup. Targets: p95 get and put ≤ 5 ms
embedded, ≤ 15 ms PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

import engram
from engram.config import Settings


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="engram-state-"))
    settings = Settings.build(
        data_dir=data_dir, embedding_model="hash", database_url=args.database_url
    )
    rng = random.Random(7)
    keys = [(f"user/{i % args.users}/agent/planner", f"item{i}") for i in range(args.items)]
    with engram.open(settings=settings) as db:
        started = time.perf_counter()
        for ns, key in keys:
            db.state.put(ns, key, {"step": 0, "plan": ["look", "think", "act"], "note": key})
        setup_s = time.perf_counter() - started
        gets, puts, lists = [], [], []
        for _ in range(args.ops):
            ns, key = rng.choice(keys)
            t0 = time.perf_counter()
            item = db.state.get(ns, key)
            t1 = time.perf_counter()
            db.state.put(
                ns, key, {**item.value, "step": item.value["step"] + 1}, if_version=item.version
            )
            t2 = time.perf_counter()
            gets.append(t1 - t0)
            puts.append(t2 - t1)
        for _ in range(max(args.ops // 10, 1)):
            user = rng.randrange(args.users)
            t0 = time.perf_counter()
            db.state.items(f"user/{user}")
            lists.append(time.perf_counter() - t0)
    backend = "postgres" if args.database_url else "sqlite"
    for op, samples in (("get", gets), ("put (compare-and-set)", puts), ("list one user", lists)):
        print(json.dumps({"backend": backend, "op": op, "n": len(samples), **percentiles(samples)}))
    print(json.dumps({"backend": backend, "items": args.items, "users": args.users,
                      "setup_puts_per_s": round(args.items / setup_s)}))  # fmt: skip


if __name__ == "__main__":
    main()
