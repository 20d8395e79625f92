"""Server time of every web page on a large data directory, and the weight of a first visit.

    python bench/bench_web.py                                    # 100,000 chunks, 10,000 events
    python bench/bench_web.py --chunks 2000 --events 500 --requests 5          # a quick look
    python bench/bench_web.py --data-dir /tmp/engram-web-bench   # built once, reused after

The data directory holds ``--chunks`` chunks (synthetic pseudo-word text, Zipf-distributed so
keyword search sees real term statistics; vectors from the deterministic hash embedder, one
document per ~4 chunks, 90 % in collection ``kb`` and 10 % in ``notes``), ``--events``
analytics events over the last 30 days (searches, some finding nothing, chats, messages,
thumbs up and down from 500 users), a few finished jobs and a failed one. It is built through
the library in batches; with ``--data-dir`` an existing build of the same sizes is reused.

Then ``engram serve``'s application runs in a thread (uvicorn on a loopback port), the
benchmark signs in with an admin key like a browser would (session cookie), and requests each
page ``--requests`` times after one warm-up: the search page for one collection and for all
(a different query each time, so no cache helps), chat, knowledge, a collection, a document,
its source, memory, jobs, the dashboard and operations. A page answering 404 belongs to an
area not built yet: it is skipped and named. Server time is the ``Server-Timing`` header's
when the app sends one, else the client's time over loopback (which includes it).

Printed: the machine, the build, a table of p50/p95 per page, the first-visit bytes of
/search (HTML and every asset it references, as sent and gzipped), then one JSON line with
everything (``ok``: every page answered 200 or 404). Targets (issue 13): p95 ≤ 50 ms per page
at 100k chunks and 10k events, first load ≤ 300 KB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import engram
from engram.config import Settings
from engram.jobs import JobWorker, enqueue_batch
from engram.server.app import create_app
from engram.store.records import EventWrite

SYLLABLES = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "un", "dri", "po", "ha", "shi"]
CHUNKS_PER_DOC = 4
WORDS_PER_DOC = 200  # ≈ 4 chunks of 64 tokens
BATCH = 500
MARKER = "bench-web.json"
P95_TARGET_MS = 50.0
FIRST_LOAD_TARGET = 300 * 1024


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    return sorted(words)


class Corpus:
    """Pseudo-word documents and queries from one Zipf-weighted vocabulary."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        self.weights = [1 / (i + 1) ** 1.05 for i in range(len(self.words))]

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, self.weights, k=n))

    def queries(self, n: int) -> list[str]:
        # Mid-frequency words: they match some documents, not all.
        band = self.words[50:2000]
        return [" ".join(self.rng.sample(band, self.rng.randint(1, 3))) for _ in range(n)]


def settings_for(data_dir: Path) -> Settings:
    return Settings.build(
        data_dir=data_dir, embedding_model="hash", chunk_tokens=64, chunk_overlap=0
    )


def build(data_dir: Path, chunks: int, events: int) -> dict[str, Any]:
    """Fill ``data_dir`` (unless a build of these sizes is there); returns what it holds."""
    marker = data_dir / MARKER
    if marker.exists():
        built = json.loads(marker.read_text())
        if built["chunks_wanted"] == chunks and built["events"] == events:
            return {**built, "reused": True}
    corpus = Corpus()
    docs = max(chunks // CHUNKS_PER_DOC, 1)
    started = time.perf_counter()
    made = 0
    with engram.open(settings=settings_for(data_dir)) as db:
        _, admin = db.create_key(scopes=["admin"], name="bench_web")
        for start in range(0, docs, BATCH):
            batch = []
            for i in range(start, min(start + BATCH, docs)):
                teams = ("search", "infra", "sales", "support")
                batch.append(
                    {
                        "id": f"guides/doc-{i:06d}.md",
                        "title": f"Guide {i}: {corpus.text(3)}",
                        "text": corpus.text(WORDS_PER_DOC),
                        "metadata": {"team": teams[i % 4], "year": 2020 + i % 6},
                    }
                )
            collection = "notes" if start % (BATCH * 10) == BATCH * 9 else "kb"
            report = db.add(batch, collection=collection)
            made += report.chunks_embedded
            done = min(start + BATCH, docs)
            if done % (BATCH * 20) == 0 or done == docs:
                rate = made / (time.perf_counter() - started)
                print(f"  built {made:,} chunks ({rate:,.0f}/s)", file=sys.stderr, flush=True)
        ingest_seconds = time.perf_counter() - started
        record_events(db, corpus, events)
        run_jobs(db, corpus)
    built = {
        "chunks_wanted": chunks,
        "chunks": made,
        "documents": docs,
        "events": events,
        "admin_key": admin,
        "ingest_seconds": round(ingest_seconds, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    marker.write_text(json.dumps(built))
    return {**built, "reused": False}


def record_events(db: engram.Engram, corpus: Corpus, n: int) -> None:
    """``n`` events over the last 30 days: 70 % searches (a tenth finding nothing), 10 %
    chats, 15 % messages, 5 % thumbs."""
    rng = random.Random(11)
    queries = corpus.queries(300)
    now = datetime.now(UTC)
    batch: list[EventWrite] = []
    for _ in range(n):
        at = (now - timedelta(seconds=rng.uniform(60, 30 * 86400))).isoformat()
        user = f"user-{rng.randrange(500)}"
        roll = rng.random()
        if roll < 0.70:
            event = EventWrite(
                "default",
                "search",
                user_id=user,
                query=rng.choice(queries),
                result_count=0 if rng.random() < 0.1 else rng.randint(1, 10),
                latency_ms=round(rng.uniform(3, 60), 3),
                data={"mode": "hybrid", "collection": "kb"},
                created_at=at,
            )
        elif roll < 0.80:
            event = EventWrite("default", "chat", user_id=user, created_at=at)
        elif roll < 0.95:
            event = EventWrite("default", "message", user_id=user, created_at=at)
        else:
            rating = "up" if rng.random() < 0.75 else "down"
            event = EventWrite(
                "default", "feedback", user_id=user, data={"rating": rating}, created_at=at
            )
        batch.append(event)
        if len(batch) == 1000:
            db.analytics.record(batch)
            batch = []
    db.analytics.record(batch)


def run_jobs(db: engram.Engram, corpus: Corpus) -> None:
    """Five finished jobs (the speed chart) and a failed one (a collection of another model)."""
    worker = JobWorker(db, retry_delay=0.01)
    for j in range(5):
        docs = [{"id": f"jobs/{j}-{i}", "text": corpus.text(WORDS_PER_DOC)} for i in range(40)]
        enqueue_batch(db.store, docs, collection="kb", tenant="default")
        worker.run_once()
    db.store.create_collection(
        "legacy", model_id="another-model", dimension=8, language="en", settings={}
    )
    enqueue_batch(db.store, [{"id": "x", "text": "x"}], collection="legacy", tenant="default")
    worker.run_once()
    db.delete_collection("legacy")  # the failed job stays; searches of every collection work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The application on a loopback port, in a thread (as tests/live.py)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def sign_in(client: httpx.Client, key: str) -> None:
    form = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise RuntimeError(f"no sign-in form: {form.status_code}")
    r = client.post("/sign-in", data={"credential": key, "csrf": csrf.group(1)})
    if r.status_code != 303:
        raise RuntimeError(f"sign-in failed: {r.status_code} {r.text[:200]}")


def server_ms(response: httpx.Response, client_ms: float) -> float:
    """The Server-Timing header's total when the app sends one, else the client's time."""
    header = response.headers.get("server-timing", "")
    durations = [float(m) for m in re.findall(r"dur=([0-9.]+)", header)]
    return max(durations) if durations else client_ms


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 1)))  # nearest rank
    return ordered[min(rank, len(ordered)) - 1]


def pages(queries: list[str]) -> list[tuple[str, Any]]:
    """(name, path or a function of the request number giving one)."""
    key = "guides/doc-000001.md"

    def search(collection: str) -> Any:
        return lambda i: httpx.URL(
            "/search", params={"q": queries[i % len(queries)], "collection": collection}
        )

    return [
        ("search (kb)", search("kb")),
        ("search (all collections)", search("*")),
        ("chat", "/chat"),
        ("knowledge", "/knowledge"),
        ("knowledge/kb", "/knowledge/kb"),
        ("document", f"/knowledge/kb/documents/{key}"),
        ("source", f"/source/kb/{key}"),
        ("memory", "/memory"),
        ("jobs", "/jobs"),
        ("dashboard (30 days)", "/dashboard?days=30"),
        ("operations", "/operations"),
    ]


def measure(client: httpx.Client, requests: int, queries: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name, target in pages(queries):
        path = target if isinstance(target, str) else None
        started = time.perf_counter()
        first = client.get(path or target(len(queries) - 1))
        first_ms = server_ms(first, (time.perf_counter() - started) * 1000)
        if first.status_code == 404:
            rows.append({"page": name, "status": 404, "skipped": True})
            continue
        timings, statuses = [], set()
        for i in range(requests):
            url = path or target(i)
            started = time.perf_counter()
            r = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            statuses.add(r.status_code)
            timings.append(server_ms(r, elapsed))
        rows.append(
            {
                "page": name,
                "status": sorted(statuses)[0] if len(statuses) == 1 else sorted(statuses),
                "skipped": False,
                "first_ms": round(first_ms, 1),
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(percentile(timings, 0.95), 1),
                "bytes": len(first.content),
            }
        )
    return rows


def first_load(client: httpx.Client, query: str) -> dict[str, Any]:
    """Bytes of a first visit to /search (/jobs while the search page is not built): the
    HTML and every static asset it references, as the server sent them
    (``Content-Encoding``) and gzipped here."""
    page = client.get("/search", params={"q": query})
    if page.status_code == 404:
        page = client.get("/jobs")
    assets = sorted(set(re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)))
    parts = [(page.url.path, page)] + [(a, client.get(a)) for a in assets]
    out = {"files": [], "sent": 0, "raw": 0, "gzip": 0, "server_gzips": False}
    for name, r in parts:
        raw = len(r.content)
        gz = len(gzip.compress(r.content, 6))
        encoded = r.headers.get("content-encoding", "")
        sent = r.num_bytes_downloaded
        out["server_gzips"] = out["server_gzips"] or encoded in ("gzip", "br")
        out["files"].append({"file": name.split("?")[0], "raw": raw, "gzip": gz, "sent": sent})
        out["sent"] += sent
        out["raw"] += raw
        out["gzip"] += gz
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=30, help="timed requests per page")
    ap.add_argument("--data-dir", type=Path, default=None, help="build here (reused if built)")
    args = ap.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="engram-web-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    machine = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"machine: {machine['machine']}, {machine['cpus']} CPUs, Python {machine['python']},"
        f" load average {' '.join(str(x) for x in machine['load'])}"
    )
    built = build(data_dir, args.chunks, args.events)
    print(
        f"data: {built['chunks']:,} chunks in {built['documents']:,} documents,"
        f" {built['events']:,} events"
        + (" (reused)" if built["reused"] else f"; built in {built['build_seconds']} s")
    )
    queries = Corpus(seed=99).queries(max(args.requests, 1) * 2)
    app = create_app(settings_for(data_dir))
    with Server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        sign_in(client, built["admin_key"])
        rows = measure(client, args.requests, queries)
        weight = first_load(client, queries[0])

    print(
        f"\n{'page':<26} {'status':>6} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'HTML bytes':>11}"
    )
    for row in rows:
        if row["skipped"]:
            print(f"{row['page']:<26} {'404':>6}   skipped: area not built yet")
            continue
        status = str(row["status"])
        line = f"{row['page']:<26} {status:>6} {row['first_ms']:>9} {row['p50_ms']:>8}"
        line += f" {row['p95_ms']:>8}"
        print(f"{line} {row['bytes']:>11,}")
    print(f"\nfirst load of {weight['files'][0]['file']} (server gzips: {weight['server_gzips']}):")
    for f in weight["files"]:
        print(f"  {f['file']:<28} raw {f['raw']:>8,}  gzip {f['gzip']:>7,}  sent {f['sent']:>8,}")
    total = f"raw {weight['raw']:>8,}  gzip {weight['gzip']:>7,}  sent {weight['sent']:>8,}"
    print(f"  {'total':<28} {total}")

    measured = [r for r in rows if not r["skipped"]]
    ok = all(r["status"] == 200 for r in measured)
    targets = all(r["p95_ms"] <= P95_TARGET_MS for r in measured) and (
        weight["sent"] <= FIRST_LOAD_TARGET
    )
    summary = {
        "ok": ok,
        "targets_met": targets,
        **machine,
        "chunks": built["chunks"],
        "events": built["events"],
        "build_seconds": built["build_seconds"],
        "requests": args.requests,
        "pages": rows,
        "skipped": [r["page"] for r in rows if r["skipped"]],
        "first_load": {k: v for k, v in weight.items() if k != "files"},
    }
    print(json.dumps(summary))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
