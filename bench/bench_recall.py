"""Latency of conversation recall over one user's long history.

    python bench/bench_recall.py                                   # embedded, 100k messages
    python bench/bench_recall.py --messages 20000 --database-url postgresql://...

``--messages`` messages (8–30 words drawn from a Zipf vocabulary, as chat turns are) are
appended to ``--conversations`` conversations of one user, a batch of 1,000 at a time
through ``db.memory.append_many`` (each batch indexed as it is appended), with the
384-dimension hash embedder so that building does not take an hour on a CPU; the index has
the shape the bundled model's would (same dimension, same BM25). Then ``--queries`` recalls
(3–6 words, k=10, one turn of context each side) are timed: plain, narrowed to one
conversation, and narrowed to a time range; then single appends, each indexed before it
returns (embedding excluded: hash embedder). The query embedding is not in those figures; it
is timed apart with the bundled model (``embed_ms``). Printed: one JSON line per measure.
Target (issue 11): recall p95 ≤ 50 ms over 100k messages, query embedding apart.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

import engram
from engram.config import Settings


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)}


def vocabulary(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    rng = random.Random(7)
    words = vocabulary(20_000, rng)
    weights = [1 / (i + 1) for i in range(len(words))]

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choices(words, weights, k=rng.randint(low, high)))

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.build(
            data_dir=Path(tmp), embedding_model="hash-384", database_url=args.database_url
        )
        db = engram.Engram(settings)
        per = args.messages // args.conversations
        start = datetime(2025, 1, 1, tzinfo=UTC)
        conversations = []
        t0 = time.perf_counter()
        for c in range(args.conversations):
            conv = db.memory.create_conversation("bench-user", title=f"c{c}")
            conversations.append(conv.id)
            base = start + timedelta(days=c)
            batch = [
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": sentence(8, 30),
                    "created_at": (base + timedelta(seconds=30 * i)).isoformat(),
                }
                for i in range(per)
            ]
            for i in range(0, per, 1000):
                db.memory.append_many(conv.id, batch[i : i + 1000])
        db.store.sync()
        build = time.perf_counter() - t0
        total = per * args.conversations
        print(
            json.dumps(
                {
                    "setup": {
                        "backend": "postgres" if args.database_url else "sqlite",
                        "messages": total,
                        "conversations": args.conversations,
                        "append_and_index_s": round(build, 1),
                        "messages_per_s": round(total / build, 1),
                    }
                }
            ),
            flush=True,
        )
        queries = [sentence(3, 6) for _ in range(args.queries)]
        for q in queries[:20]:  # warm: the indexes load on first use
            db.memory.recall(q, user_id="bench-user")
        cases = {
            "recall": {},
            "recall_one_conversation": {"conversation_id": conversations[len(conversations) // 2]},
            "recall_time_range": {
                "since": (start + timedelta(days=30)).isoformat(),
                "until": (start + timedelta(days=60)).isoformat(),
            },
        }
        for name, filters in cases.items():
            samples = []
            for q in queries:
                t = time.perf_counter()
                db.memory.recall(q, user_id="bench-user", k=10, context=1, **filters)
                samples.append(time.perf_counter() - t)
            print(json.dumps({name: percentiles(samples)}), flush=True)
        # One message appended to a long history, indexed before the call returns.
        samples = []
        for i in range(100):
            t = time.perf_counter()
            db.memory.append(conversations[i % len(conversations)], "user", sentence(8, 30))
            samples.append(time.perf_counter() - t)
        print(json.dumps({"append_and_index_one": percentiles(samples)}), flush=True)
        db.close()

    # The query embedding, timed apart with the bundled model.
    model = engram.providers.get_embedder(Settings.build().embedding_model)
    model.embed_query("warm up")
    samples = []
    for q in queries[:100]:
        t = time.perf_counter()
        model.embed_query(q)
        samples.append(time.perf_counter() - t)
    print(json.dumps({"embed_query_bundled_model": percentiles(samples)}), flush=True)


if __name__ == "__main__":
    main()
