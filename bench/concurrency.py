"""Many processes on one embedded data directory: ``engram serve --workers N`` taking writes
and searches over HTTP while CLI processes ingest, update and delete into the same files.

    python bench/concurrency.py --workers 2 --cli-writers 4 --searchers 2 --duration 300

What runs at once, all on one data directory (SQLite file + index files):
- ``engram serve --workers N`` (real uvicorn worker processes, no authentication on loopback);
- ``--cli-writers`` loops, each running ``engram ingest`` (a JSONL of new documents, or of
  new versions of its own earlier ones) and ``engram delete`` as fresh processes;
- ``--http-writers`` threads posting batches of new documents and new versions;
- ``--searchers`` threads searching (keyword, vector and hybrid) over HTTP.

Every writer owns its keys, so the final state is known exactly. After ``--duration``
seconds the writers stop, the server is stopped (SIGTERM) and the directory is checked with
the library: the set of keys equals the expected one (none lost, none left that was
deleted), every document holds its last written text at the expected version, no document
has more chunks than it should (no duplicates), a keyword search for each document's unique
marker finds that document and only it, and ``engram doctor`` passes.

Printed: one JSON object (requests, errors by kind, 5xx, lost/duplicated/stale documents,
throughput). Exit status 1 when anything is wrong. The model is ``hash`` by default (the
store is under test, not the model); ``--model bge-small-en-v1.5`` runs the real one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

COLLECTION = "shared"
ENGRAM = [sys.executable, "-c", "from engram.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Expected:
    """What each writer says it wrote and acknowledged: key → (text, version)."""

    docs: dict[str, tuple[str, int]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, text: str) -> None:
        with self.lock:
            version = self.docs[key][1] + 1 if key in self.docs else 1
            self.docs[key] = (text, version)
            self.deleted.discard(key)

    def delete(self, key: str) -> None:
        with self.lock:
            self.docs.pop(key, None)
            self.deleted.add(key)


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, kind: str) -> None:
        with self.lock:
            self.requests[kind] += 1

    def error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.requests[kind] += 1
            self.errors[kind] += 1
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {detail[-400:]}")


def text_for(key: str, revision: int, rng: random.Random) -> str:
    words = ["alpha", "budget", "contract", "delivery", "invoice", "ledger", "payroll", "refund"]
    body = " ".join(rng.choice(words) for _ in range(12))
    marker = "m" + "".join(ch for ch in key if ch.isalnum())
    return f"{marker} revision{revision} {body}."


def cli_writer(
    wid: int, data_dir: Path, env: dict[str, str], stop: threading.Event, exp: Expected, t: Tally
) -> None:
    rng = random.Random(wid)
    mine: list[str] = []
    revisions: Counter[str] = Counter()
    work = Path(tempfile.mkdtemp(prefix=f"cli{wid}-"))
    round_ = 0
    while not stop.is_set():
        round_ += 1
        action = rng.random()
        if action < 0.15 and mine:
            key = mine.pop(rng.randrange(len(mine)))
            proc = subprocess.run(
                [*ENGRAM, "--data-dir", str(data_dir), "delete", key, "-c", COLLECTION],
                env=env,
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                exp.delete(key)
                t.ok("cli delete")
            else:
                t.error("cli delete", proc.stderr)
            continue
        if action < 0.35 and mine:
            keys = rng.sample(mine, min(3, len(mine)))
        else:
            keys = [f"cli{wid}-{round_}-{j}" for j in range(5)]
        docs = []
        for key in keys:
            revisions[key] += 1
            docs.append({"id": key, "text": text_for(key, revisions[key], rng)})
        path = work / "batch.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        proc = subprocess.run(
            [*ENGRAM, "--data-dir", str(data_dir), "ingest", str(path), "-c", COLLECTION],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0 and "0 failed" in proc.stdout:
            for d in docs:
                exp.put(d["id"], d["text"])
                if d["id"] not in mine:
                    mine.append(d["id"])
            t.ok("cli ingest")
        else:
            t.error("cli ingest", proc.stdout + proc.stderr)
            for d in docs:  # unknown outcome: never written again, checked leniently
                exp.docs.pop(d["id"], None)
                if d["id"] in mine:
                    mine.remove(d["id"])


def http_writer(wid: int, base: str, stop: threading.Event, exp: Expected, t: Tally) -> None:
    rng = random.Random(1000 + wid)
    mine: list[str] = []
    revisions: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=120) as client:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            if rng.random() < 0.3 and mine:
                keys = rng.sample(mine, min(2, len(mine)))
            else:
                keys = [f"http{wid}-{round_}-{j}" for j in range(4)]
            docs = []
            for key in keys:
                revisions[key] += 1
                docs.append({"id": key, "text": text_for(key, revisions[key], rng)})
            try:
                res = client.post(
                    f"/v1/collections/{COLLECTION}/documents:batch", json={"documents": docs}
                )
            except httpx.HTTPError as exc:
                t.error("http write", repr(exc))
                continue
            if res.status_code in (200, 201) and res.json()["failed"] == 0:
                for d in docs:
                    exp.put(d["id"], d["text"])
                    if d["id"] not in mine:
                        mine.append(d["id"])
                t.ok("http write")
            else:
                t.error(f"http write {res.status_code}", res.text)


STATE_PATH = "/v1/state/bench/shared/counter"


def state_counter(cid: int, base: str, stop: threading.Event, done: list[int], t: Tally) -> None:
    """Increments one agent-state counter by compare-and-set (GET, then PUT with If-Match;
    a 412 means another writer got there first: read again). The server's workers share
    it: at the end the counter must equal the increments that succeeded."""
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            try:
                got = client.get(STATE_PATH)
                if got.status_code != 200:
                    t.error(f"state get {got.status_code}", got.text)
                    continue
                res = client.put(
                    STATE_PATH,
                    json={"value": got.json()["value"] + 1},
                    headers={"If-Match": got.headers["etag"]},
                )
            except httpx.HTTPError as exc:
                t.error("state", repr(exc))
                continue
            if res.status_code == 200:
                done[cid] += 1
                t.ok("state increment")
            elif res.status_code == 412:
                t.ok("state conflict (retried)")
            else:
                t.error(f"state put {res.status_code}", res.text)


def searcher(sid: int, base: str, stop: threading.Event, t: Tally) -> None:
    rng = random.Random(2000 + sid)
    words = ["budget contract", "invoice refund", "ledger", "payroll delivery", "alpha"]
    with httpx.Client(base_url=base, timeout=120) as client:
        while not stop.is_set():
            body = {
                "query": rng.choice(words),
                "collection": COLLECTION,
                "mode": rng.choice(["keyword", "vector", "hybrid"]),
                "k": 10,
            }
            try:
                res = client.post("/v1/search", json=body)
            except httpx.HTTPError as exc:
                t.error("search", repr(exc))
                continue
            # 404: the collection does not exist yet (before the first write): not an error.
            if res.status_code == 200 or (
                res.status_code == 404 and "collection" in res.json()["error"]["code"]
            ):
                t.ok("search")
            else:
                t.error(f"search {res.status_code}", res.text)


def start_server(data_dir: Path, env: dict[str, str], workers: int, log: Path) -> tuple[Any, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *ENGRAM,
            "--data-dir",
            str(data_dir),
            "serve",
            "--workers",
            str(workers),
            "--port",
            str(port),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/v1/ready", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def verify(data_dir: Path, model: str, exp: Expected, env: dict[str, str]) -> dict[str, Any]:
    import engram

    found: dict[str, Any] = {}
    with engram.open(data_dir, embedding_model=model) as db:
        try:
            collection = db.collection(COLLECTION)
        except engram.EngramError:
            return {"lost": sorted(exp.docs), "unexpected": [], "stale": [], "duplicated": []}
        docs = db.documents(COLLECTION, limit=1_000_000)
        found = {d.key: d for d in docs}
        lost = sorted(set(exp.docs) - set(found))
        unexpected = sorted(k for k in found if k in exp.deleted)
        stale, duplicated, unfindable = [], [], []
        for key, (_text, version) in exp.docs.items():
            doc = found.get(key)
            if doc is None:
                continue
            if doc.version != version:
                stale.append(f"{key}: version {doc.version}, expected {version}")
            if doc.chunk_count != 1:
                duplicated.append(f"{key}: {doc.chunk_count} chunks")
        for key, (text, _) in list(exp.docs.items()):
            marker = text.split()[0]
            hits = db.search(marker, collection=COLLECTION, mode="keyword", k=5).results
            keys = [h.document_key for h in hits]
            if keys != [key] or f"revision{text.split()[1][8:]}" not in hits[0].text:
                unfindable.append(f"{key}: {keys}")
        chunks = collection.chunk_count
    doctor = subprocess.run(
        [*ENGRAM, "--data-dir", str(data_dir), "doctor"], env=env, capture_output=True, text=True
    )
    return {
        "documents": len(found),
        "chunks": chunks,
        "lost": lost,
        "unexpected": unexpected,
        "stale": stale,
        "duplicated": duplicated,
        "unfindable": unfindable[:20],
        "unfindable_count": len(unfindable),
        "doctor_ok": doctor.returncode == 0,
        "doctor": doctor.stdout.strip().splitlines()[-3:],
    }


def count_5xx(log: str) -> int:
    """Access lines (JSON) of the server's log with a 5xx status."""
    count = 0
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and int(record.get("status") or 0) >= 500:
            count += 1
    return count


def server_env(model: str) -> dict[str, str]:
    """The environment of a loaded ``engram serve`` on loopback: no authentication, the given
    embedding model, no rate limits (the load is the point; limits are tested elsewhere)."""
    env = {
        **os.environ,
        "ENGRAM_AUTH": "none",
        "ENGRAM_EMBEDDING_MODEL": model,
        "ENGRAM_RATE_LIMIT_PER_MINUTE": "0",
        "ENGRAM_RATE_LIMIT_IP_PER_MINUTE": "0",
    }
    env.pop("ENGRAM_DATA_DIR", None)
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="engram-concurrency-"))
    env = server_env(args.model)
    log = data_dir.parent / f"{data_dir.name}-server.log"
    server, base = start_server(data_dir, env, args.workers, log)
    exp, tally, stop = Expected(), Tally(), threading.Event()
    increments = [0] * args.state_clients
    with httpx.Client(base_url=base, timeout=60) as client:
        client.put(STATE_PATH, json={"value": 0}).raise_for_status()
    threads = [
        *(
            threading.Thread(target=state_counter, args=(i, base, stop, increments, tally))
            for i in range(args.state_clients)
        ),
        *(
            threading.Thread(target=cli_writer, args=(i, data_dir, env, stop, exp, tally))
            for i in range(args.cli_writers)
        ),
        *(
            threading.Thread(target=http_writer, args=(i, base, stop, exp, tally))
            for i in range(args.http_writers)
        ),
        *(
            threading.Thread(target=searcher, args=(i, base, stop, tally))
            for i in range(args.searchers)
        ),
    ]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        stop.wait(args.duration)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        counter = None
        if args.state_clients:
            with httpx.Client(base_url=base, timeout=60) as client:
                counter = client.get(STATE_PATH).json()["value"]
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    server_log = log.read_text(errors="replace")
    result = {
        "workers": args.workers,
        "cli_writers": args.cli_writers,
        "http_writers": args.http_writers,
        "searchers": args.searchers,
        "seconds": round(elapsed, 1),
        "requests": dict(tally.requests),
        "errors": dict(tally.errors),
        "error_samples": tally.samples,
        "server_5xx": count_5xx(server_log),
        "server_tracebacks": server_log.count("Traceback"),
        **verify(data_dir, args.model, exp, env),
        # Compare-and-set across the server's workers: the counter holds every increment.
        "state_increments": sum(increments),
        "state_counter": counter,
    }
    result["ok"] = not (
        result["errors"]
        or result["server_5xx"]
        or result["server_tracebacks"]
        or result["lost"]
        or result["unexpected"]
        or result["stale"]
        or result["duplicated"]
        or result["unfindable_count"]
        or not result["doctor_ok"]
        or (args.state_clients and counter != sum(increments))
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="engram serve --workers")
    parser.add_argument("--cli-writers", type=int, default=4)
    parser.add_argument("--http-writers", type=int, default=2)
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument(
        "--state-clients", type=int, default=2, help="agent-state compare-and-set clients"
    )
    parser.add_argument("--duration", type=float, default=300, help="seconds of load")
    parser.add_argument("--model", default="hash", help="embedding model (default: hash)")
    parser.add_argument("--data-dir", help="default: a new temporary directory")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
