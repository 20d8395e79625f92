"""Load test of POST /v1/search over a real socket: wrk with 50 connections.

    python bench/load_search.py --data-dir /tmp/loaddata --workers 2

Needs `wrk` (Debian package) and a data directory holding SciFact in collection ``scifact``
of tenant ``bench`` plus a read key in ``<data-dir>/key.txt`` (``--prepare`` builds both; the
first build embeds SciFact, ≈ 5 minutes on 2 cores). Two runs, each against a fresh
``engram serve`` (API keys on, rate limits off):

* cached — one query repeated: the result cache answers (what a hot FAQ query costs);
* uncached — ``ENGRAM_CACHE_SIZE=0``, the 300 SciFact test queries in turn, hybrid, so every
  request embeds its query and runs both legs.

Prints requests/s and latency percentiles per run as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"

LUA = """
local bodies = {}
local i = 0
local f = io.open("%(queries)s")
for line in f:lines() do bodies[#bodies + 1] = line end
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/v1/search", nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%.1f %%.1f %%.1f %%.1f %%d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.timeout))
end
"""


def prepare(data_dir: Path) -> None:
    import engram

    with engram.open(data_dir) as db:
        db.ingest(DATA / "corpus.jsonl", collection="scifact", tenant="bench")
        (data_dir / "key.txt").write_text(db.create_key(tenant="bench", scopes=["read"])[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(data_dir: Path, workers: int, queries: list[str], cached: bool, seconds: int) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "ENGRAM_DATA_DIR": str(data_dir),
        "ENGRAM_RATE_LIMIT_PER_MINUTE": "0",
        "ENGRAM_RATE_LIMIT_IP_PER_MINUTE": "0",
        "ENGRAM_CACHE_SIZE": "4096" if cached else "0",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "engram"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        key = (data_dir / "key.txt").read_text().strip()
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        bodies = [
            json.dumps({"query": q, "collection": "scifact", "k": 10})
            for q in (queries[:1] if cached else queries)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            qfile, script = Path(tmp) / "q.txt", Path(tmp) / "s.lua"
            qfile.write_text("\n".join(bodies) + "\n")
            script.write_text(LUA % {"queries": qfile, "key": key})
            # Warm up: load the models and indexes in every worker.
            subprocess.run(
                ["wrk", "-t2", "-c8", "-d5s", "-s", str(script), url], capture_output=True
            )
            out = subprocess.run(
                ["wrk", "-t2", "-c50", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                capture_output=True,
                text=True,
            ).stdout
        m = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)
        assert m, out
        n, dur_us = int(m[1]), int(m[2])
        return {
            "run": "cached" if cached else "uncached",
            "workers": workers,
            "connections": 50,
            "requests": n,
            "req_per_s": round(n / (dur_us / 1e6), 1),
            "p50_ms": float(m[3]),
            "p95_ms": float(m[4]),
            "p99_ms": float(m[5]),
            "max_ms": float(m[6]),
            "errors": int(m[7]),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--prepare", action="store_true")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.data_dir)
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()][:300]
    for cached in (True, False):
        print(
            json.dumps(run(args.data_dir.resolve(), args.workers, queries, cached, args.seconds)),
            flush=True,
        )


if __name__ == "__main__":
    main()
