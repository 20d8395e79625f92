"""A long run at steady data size: does ``engram serve`` leak memory or start failing?

    python bench/soak.py --minutes 45 --warmup 15 --workers 2    # 30 minutes after warm-up

``engram serve --workers N`` on a fresh data directory is loaded with ``--docs`` documents,
then for ``--minutes`` minutes writer threads replace random documents with new versions
(the data size stays the same: same keys, new texts), searcher threads search in every mode,
and one thread adds and deletes memories and conversation turns. Every ``--sample`` seconds
the resident memory (RSS) of each server process is read from /proc.

Printed: one JSON object — requests and errors by kind (any non-2xx is an error), the RSS of
the server processes after warm-up (the first ``--warmup`` minutes: caches, index capacity
and allocator arenas fill for about ten minutes under this load before memory levels off)
and at the end, the growth in percent, and the samples. Exit status 1 when an error occurred or RSS grew by
``--max-growth`` percent (10) or more after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import WORDS  # noqa: E402
from concurrency import server_env, start_server  # noqa: E402

COLLECTION = "soak"


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process: all of it (VmRSS), or the part that is private heap
    (RssAnon) or mapped files (RssFile: code, and SQLite files that readers map)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def server_pids(root: int) -> list[int]:
    """The server's process and its children (uvicorn's workers)."""
    pids = [root]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == root:
            pids.append(int(entry))
    return pids


def text(rng: random.Random, key: str, revision: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 150)))
    return f"{key} revision {revision} {body}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--warmup", type=float, default=15, help="minutes before the RSS baseline")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--writers", type=int, default=1)
    ap.add_argument("--searchers", type=int, default=3)
    ap.add_argument("--sample", type=float, default=10, help="seconds between RSS samples")
    ap.add_argument("--max-growth", type=float, default=10.0)
    ap.add_argument("--model", default="hash")
    args = ap.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="engram-soak-"))
    env = server_env(args.model)
    server, base = start_server(data_dir, env, args.workers, data_dir.parent / "soak.log")
    rng = random.Random(1)
    revisions = Counter[str]()
    keys = [f"doc{i}" for i in range(args.docs)]
    with httpx.Client(base_url=base, timeout=120) as client:
        for i in range(0, len(keys), 500):
            batch = [{"id": k, "text": text(rng, k, 1)} for k in keys[i : i + 500]]
            res = client.post(
                f"/v1/collections/{COLLECTION}/documents:batch?async=false",
                json={"documents": batch},
            )
            res.raise_for_status()
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    samples_err: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def note(kind: str, res: httpx.Response | None, exc: Exception | None = None) -> None:
        with lock:
            requests[kind] += 1
            if exc is not None or res is None or res.status_code >= 300:
                errors[kind] += 1
                if len(samples_err) < 20:
                    samples_err.append(f"{kind}: {exc!r}" if exc else f"{kind}: {res.text[:300]}")  # type: ignore[union-attr]

    def call(kind: str, client: httpx.Client, method: str, url: str, **kw: Any) -> Any:
        try:
            res = client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            note(kind, None, exc)
            return None
        note(kind, res)
        return res

    def writer(wid: int) -> None:
        local = random.Random(100 + wid)
        with httpx.Client(base_url=base, timeout=120) as client:
            while not stop.is_set():
                batch = []
                for key in local.sample(keys, 5):
                    with lock:
                        revisions[key] += 1
                        rev = revisions[key] + 1
                    batch.append({"id": key, "text": text(local, key, rev)})
                call(
                    "write",
                    client,
                    "POST",
                    f"/v1/collections/{COLLECTION}/documents:batch",
                    json={"documents": batch},
                )
                stop.wait(0.2)

    def searcher(sid: int) -> None:
        local = random.Random(200 + sid)
        with httpx.Client(base_url=base, timeout=120) as client:
            while not stop.is_set():
                body = {
                    "query": " ".join(local.sample(WORDS, 2)),
                    "collection": COLLECTION,
                    "mode": local.choice(["keyword", "vector", "hybrid"]),
                    "k": 10,
                    "offset": local.choice([0, 0, 10]),
                }
                call("search", client, "POST", "/v1/search", json=body)

    def memory_user() -> None:
        local = random.Random(300)
        with httpx.Client(base_url=base, timeout=120) as client:
            n = 0
            while not stop.is_set():
                n += 1
                user = f"user{n % 50}"
                res = call(
                    "memory add",
                    client,
                    "POST",
                    "/v1/memories",
                    json={"content": f"{user} likes {local.choice(WORDS)} {n}", "user_id": user},
                )
                if res is not None and res.status_code < 300:
                    call("memory delete", client, "DELETE", f"/v1/memories/{res.json()['id']}")
                res = call(
                    "conversation", client, "POST", "/v1/conversations", json={"user_id": user}
                )
                if res is not None and res.status_code < 300:
                    cid = res.json()["id"]
                    call(
                        "message",
                        client,
                        "POST",
                        f"/v1/conversations/{cid}/messages",
                        json={"role": "user", "content": f"hello {n}"},
                    )
                    call("conversation delete", client, "DELETE", f"/v1/conversations/{cid}")
                stop.wait(0.5)

    threads = [
        *(threading.Thread(target=writer, args=(i,)) for i in range(args.writers)),
        *(threading.Thread(target=searcher, args=(i,)) for i in range(args.searchers)),
        threading.Thread(target=memory_user),
    ]
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    for t in threads:
        t.start()
    try:
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            pids = server_pids(server.pid)
            samples.append(
                {
                    "t": round(elapsed),
                    "rss_kb": {str(p): rss_kb(p) for p in pids},
                    "total_kb": sum(rss_kb(p) for p in pids),
                    "anon_kb": sum(rss_kb(p, "RssAnon") for p in pids),
                    "fds": sum(open_fds(p) for p in pids),
                }
            )
            time.sleep(args.sample)
    finally:
        stop.set()
        for t in threads:
            t.join()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    after_warmup = [s for s in samples if s["t"] >= args.warmup * 60]
    base_kb = after_warmup[0]["total_kb"] if after_warmup else samples[0]["total_kb"]
    tail = samples[-3:]  # the end, averaged over the last few samples
    end_kb = sum(s["total_kb"] for s in tail) / len(tail)
    growth = 100.0 * (end_kb - base_kb) / base_kb if base_kb else 0.0
    result = {
        "minutes": args.minutes,
        "workers": args.workers,
        "documents": args.docs,
        "requests": dict(requests),
        "errors": dict(errors),
        "error_samples": samples_err,
        "rss_after_warmup_mb": round(base_kb / 1024, 1),
        "rss_end_mb": round(end_kb / 1024, 1),
        "rss_peak_mb": round(max(s["total_kb"] for s in samples) / 1024, 1),
        "rss_growth_pct": round(growth, 2),
        "fds_after_warmup": (after_warmup or samples)[0]["fds"],
        "fds_end": samples[-1]["fds"],
        "rss_anon_after_warmup_mb": round((after_warmup or samples)[0]["anon_kb"] / 1024, 1),
        "rss_anon_end_mb": round(samples[-1]["anon_kb"] / 1024, 1),
        # (seconds, RSS MB, of which private heap MB, open descriptors)
        "samples": [
            (s["t"], round(s["total_kb"] / 1024, 1), round(s["anon_kb"] / 1024, 1), s["fds"])
            for s in samples
        ],
    }
    result["ok"] = not errors and growth < args.max_growth
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
