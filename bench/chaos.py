"""SIGKILL ``engram`` CLI processes at random moments while they add, update and delete, and
check after every kill that the store is consistent; at the end, that it equals a clean run.

    python bench/chaos.py --kills 100                       # embedded store (SQLite + files)
    python bench/chaos.py --kills 100 --backend postgres    # a throwaway pgserver database

A deterministic list of operations is generated: ``engram ingest`` of a JSONL batch (new
documents and new versions of earlier ones) or ``engram delete`` of a few keys. First every
operation runs once, undisturbed, into a *clean* store (its duration calibrates the kills).
Then, into the *chaos* store, each operation is started and killed with SIGKILL after a
random delay (20–95 % of its clean duration), several times, before it is run to completion — as
an operator re-running a command after a crash would. After each kill:

- SQLite: ``PRAGMA integrity_check``;
- chunks ↔ versions: every document's chunks belong to its current version and number what
  that version recorded;
- keyword index ↔ chunks: the BM25 index (embedded: the index file caught up from the change
  log; PostgreSQL: the postings, the vocabulary's document frequencies and the collection's
  N and total length) holds exactly the chunks, with their lengths;
- vector index ↔ chunks: the HNSW index (embedded) holds exactly the chunk ids (on
  PostgreSQL vectors live in the chunk rows themselves).

At the end the chaos store must equal the clean one: the same (key, version, content hash)
for every document, and the same top-10 for 50 queries in keyword, vector and hybrid mode.
Prints one JSON object; exit status 1 on any inconsistency.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import engram

ENGRAM = [sys.executable, "-c", "from engram.cli import main; main()"]
COLLECTION = "chaos"
WORDS = [
    "audit",
    "balance",
    "budget",
    "contract",
    "credit",
    "debit",
    "delivery",
    "deposit",
    "invoice",
    "ledger",
    "loan",
    "margin",
    "payroll",
    "pension",
    "refund",
    "rent",
    "salary",
    "supplier",
    "tax",
    "transfer",
    "vendor",
    "warranty",
]


def make_ops(n_ops: int, batch: int, seed: int) -> list[dict[str, Any]]:
    """Ingest and delete operations over a growing pool of keys (each op self-contained)."""
    rng = random.Random(seed)
    live: list[str] = []
    revision: dict[str, int] = {}
    ops: list[dict[str, Any]] = []
    next_id = 0
    for _ in range(n_ops):
        if live and rng.random() < 0.2:
            keys = rng.sample(live, min(len(live), rng.randint(2, 8)))
            for key in keys:
                live.remove(key)
            ops.append({"kind": "delete", "keys": keys})
            continue
        docs = []
        updates = rng.sample(live, min(len(live), batch // 4)) if live else []
        for key in updates:
            revision[key] += 1
            docs.append(key)
        while len(docs) < batch:
            key = f"doc{next_id}"
            next_id += 1
            revision[key] = 1
            live.append(key)
            docs.append(key)
        records = []
        for key in docs:
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
            records.append(
                {"id": key, "text": f"{key} revision {revision[key]} {body}", "title": key}
            )
        ops.append({"kind": "ingest", "records": records})
    return ops


def command(op: dict[str, Any], work: Path, index: int) -> list[str]:
    if op["kind"] == "delete":
        return ["delete", *op["keys"], "-c", COLLECTION]
    path = work / f"op{index}.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in op["records"]))
    return ["ingest", str(path), "-c", COLLECTION]


def run_op(
    target: dict[str, Any], op: dict[str, Any], work: Path, index: int, kill_after: float | None
) -> tuple[bool, float, str]:
    """Run one operation against ``target``; kill it after ``kill_after`` s if still running.
    Returns (killed, seconds, output)."""
    args = [*ENGRAM, *target["args"], *command(op, work, index)]
    started = time.monotonic()
    proc = subprocess.Popen(
        args, env=target["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if kill_after is not None:
        try:
            out, _ = proc.communicate(timeout=kill_after)
            return False, time.monotonic() - started, out
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return True, time.monotonic() - started, ""
    out, _ = proc.communicate(timeout=600)
    # A delete re-run after an attempt that completed finds nothing left: that is done too.
    redone = op["kind"] == "delete" and "Deleted 0 document(s)" in out
    if proc.returncode != 0 and not redone:
        raise SystemExit(f"operation {index} failed:\n{out}")
    return False, time.monotonic() - started, out


def open_target(target: dict[str, Any]) -> engram.Engram:
    if target["backend"] == "postgres":
        return engram.open(
            target["data_dir"], embedding_model=target["model"], database_url=target["url"]
        )
    return engram.open(target["data_dir"], embedding_model=target["model"])


def check(target: dict[str, Any]) -> list[str]:
    """Every inconsistency between chunks, versions, the keyword and the vector index."""
    problems: list[str] = []
    if target["backend"] == "sqlite":
        import sqlite3

        db_path = Path(target["data_dir"]) / "engram.db"
        if not db_path.exists():
            return problems
        with sqlite3.connect(db_path, timeout=30) as conn:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                problems.append(f"integrity_check: {ok}")
    with open_target(target) as db:
        try:
            coll = db.collection(COLLECTION)
        except engram.EngramError:
            return problems  # killed before the collection was created
        store = db.store
        run = _runner(db)
        bad_versions = run(
            "SELECT count(*) FROM documents d WHERE"
            " (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) !="
            " (SELECT v.chunk_count FROM document_versions v WHERE v.document_id = d.id"
            "  AND v.version = d.version)"
            " OR EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id"
            "  AND c.version != d.version)",
        )[0][0]
        if bad_versions:
            problems.append(f"{bad_versions} document(s) whose chunks disagree with their version")
        chunk_rows = run("SELECT id FROM chunks WHERE collection_id = ?", (coll.id,))
        chunks = {int(r[0]) for r in chunk_rows}
        if target["backend"] == "sqlite":
            indexes = store._catch_up(coll)  # type: ignore[attr-defined]
            keyword_ids = set(indexes.keywords._slot_of)
            vector_ids = set(indexes.vectors._live)
            lengths = dict(run("SELECT id, terms FROM chunks WHERE collection_id = ?", (coll.id,)))
            total = sum(len(t.split()) for t in lengths.values())
            if abs(indexes.keywords._total_length - total) > 0.5:
                problems.append("keyword index: total length differs from the chunks'")
        else:
            keyword_ids = {
                int(r[0])
                for r in run(
                    "SELECT DISTINCT chunk_id FROM postings WHERE collection_id = ?", (coll.id,)
                )
            }
            vector_ids = chunks  # vectors are columns of the chunk rows
            stats = run(
                "SELECT chunk_count, total_length FROM collections WHERE id = ?", (coll.id,)
            )[0]
            actual = run(
                "SELECT count(*), coalesce(sum(length), 0) FROM chunks WHERE collection_id = ?",
                (coll.id,),
            )[0]
            if tuple(map(int, stats)) != tuple(map(int, actual)):
                problems.append(f"BM25 statistics {stats} != chunks {actual}")
            df = run(
                "SELECT count(*) FROM vocabulary v WHERE collection_id = ? AND df !="
                " (SELECT count(*) FROM postings p WHERE p.collection_id = v.collection_id"
                "  AND p.term = v.term)",
                (coll.id,),
            )[0][0]
            if df:
                problems.append(f"{df} vocabulary row(s) with a wrong document frequency")
        for name, ids in (("keyword", keyword_ids), ("vector", vector_ids)):
            if ids != chunks:
                problems.append(
                    f"{name} index: {len(ids - chunks)} extra, {len(chunks - ids)} missing chunk(s)"
                )
    return problems


def _runner(db: engram.Engram) -> Any:
    """Run SQL with ``?`` placeholders on either backend (read-only checks)."""
    store = db.store
    if hasattr(store, "_read"):
        return store._read
    import psycopg

    url = store.url  # type: ignore[attr-defined]

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            conn.execute("SELECT set_config('engram.tenant', '*', false)")
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    return run


def state(target: dict[str, Any], queries: list[str]) -> tuple[set[tuple[str, int, str]], dict]:
    with open_target(target) as db:
        docs = {(d.key, d.version, d.content_hash) for d in db.documents(COLLECTION, limit=10**6)}
        tops = {}
        for mode in ("keyword", "vector", "hybrid"):
            for q in queries:
                hits = db.search(q, collection=COLLECTION, mode=mode, k=10).results  # type: ignore[arg-type]
                # Chunk ids differ between the stores (a killed transaction used some).
                tops[(mode, q)] = [(h.document_key, h.start, h.end) for h in hits]
    return docs, tops


def make_target(backend: str, root: Path, name: str, model: str, server: Any) -> dict[str, Any]:
    data_dir = root / name
    env = {**os.environ, "ENGRAM_EMBEDDING_MODEL": model}
    for var in ("ENGRAM_DATA_DIR", "ENGRAM_DATABASE_URL"):
        env.pop(var, None)
    target: dict[str, Any] = {
        "backend": backend,
        "data_dir": data_dir,
        "model": model,
        "args": ["--data-dir", str(data_dir)],
        "env": env,
    }
    if backend == "postgres":
        server.psql(f"CREATE DATABASE {name} OWNER chaos;")
        server.psql(f"\\c {name}\nCREATE EXTENSION IF NOT EXISTS vector;")
        url = server.get_uri(name).replace("postgres:@", "chaos:chaos@", 1)
        target["url"] = url
        env["ENGRAM_DATABASE_URL"] = url
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--kills", type=int, default=100, help="SIGKILLs that hit a running process")
    ap.add_argument("--ops", type=int, default=30, help="operations in the workload")
    ap.add_argument("--batch", type=int, default=120, help="documents per ingest operation")
    ap.add_argument("--model", default="hash")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    ops = make_ops(args.ops, args.batch, args.seed)
    queries: list[str] = []
    while len(queries) < args.queries:
        query = " ".join(rng.sample(WORDS, 2))
        if query not in queries:
            queries.append(query)
    with tempfile.TemporaryDirectory(prefix="engram-chaos-") as tmp:
        root = Path(tmp)
        work = root / "ops"
        work.mkdir()
        server = None
        if args.backend == "postgres":
            import pgserver

            server = pgserver.get_server(root / "pg", cleanup_mode="stop")
            server.psql("CREATE ROLE chaos LOGIN PASSWORD 'chaos';")
        clean = make_target(args.backend, root, "clean", args.model, server)
        chaos = make_target(args.backend, root, "chaos", args.model, server)

        durations = []
        for i, op in enumerate(ops):
            durations.append(run_op(clean, op, work, i, None)[1])

        kills = attempts = checks = 0
        problems: list[str] = []
        kills_per_op = max(1, -(-args.kills // len(ops)))  # ceil
        started = time.monotonic()
        for i, op in enumerate(ops):
            op_kills = tries = 0
            # Kills land from a fifth of the clean duration on: past most of the process
            # start-up, into opening the store, loading, embedding, writing and saving
            # index files (a run that ends first is an attempt without a kill).
            while op_kills < kills_per_op and tries < kills_per_op * 4 and kills < args.kills:
                tries += 1
                attempts += 1
                delay = rng.uniform(0.2 * durations[i], 0.95 * durations[i])
                killed, _, _ = run_op(chaos, op, work, i, delay)
                found = check(chaos)
                checks += 1
                problems += [f"after op {i} try {tries}: {p}" for p in found]
                if killed:
                    kills += 1
                    op_kills += 1
                    if kills % 10 == 0:
                        print(f"{kills} kills, {len(problems)} problems", file=sys.stderr)
            run_op(chaos, op, work, i, None)  # the operator re-runs the command
            found = check(chaos)
            checks += 1
            problems += [f"after op {i} completed: {p}" for p in found]

        clean_docs, clean_tops = state(clean, queries)
        chaos_docs, chaos_tops = state(chaos, queries)
        differing = [k for k in clean_tops if clean_tops[k] != chaos_tops[k]]
        result = {
            "backend": args.backend,
            "model": args.model,
            "operations": len(ops),
            "kills": kills,
            "attempts": attempts,
            "consistency_checks": checks,
            "problems": problems[:50],
            "problem_count": len(problems),
            "documents": len(chaos_docs),
            "documents_equal_clean": chaos_docs == clean_docs,
            "documents_only_clean": len(clean_docs - chaos_docs),
            "documents_only_chaos": len(chaos_docs - clean_docs),
            "top10_compared": len(clean_tops),
            "top10_differing": len(differing),
            "top10_differing_examples": [list(k) for k in differing[:5]],
            "seconds": round(time.monotonic() - started, 1),
        }
        result["ok"] = (
            not problems
            and kills >= args.kills
            and result["documents_equal_clean"]
            and not differing
        )
        print(json.dumps(result, indent=2))
        if server is not None:
            server.cleanup()
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
