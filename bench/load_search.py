"""Load test of POST /v1/search over a real socket.

    python bench/load_search.py --data-dir /tmp/loaddata --workers 2            # every run
    python bench/load_search.py --data-dir /tmp/loaddata --run cached --repeat 3

Needs `wrk` (Debian package) and a data directory holding SciFact in collection ``scifact``
of tenant ``bench`` plus a read key in ``<data-dir>/key.txt`` (``--prepare`` builds both; the
first build embeds SciFact, ≈ 5 minutes on 2 cores). Each run starts a fresh
``engram serve --workers N`` (API keys on, rate limits off, JSON access log to /dev/null):

* ``cached`` — one query repeated: the result cache answers (what a hot FAQ query costs);
* ``uncached`` — ``ENGRAM_CACHE_SIZE=0``, the 300 SciFact test queries in turn, hybrid:
  every request embeds its query and runs both legs;
* ``embed-warm`` — caches on, the query embeddings already computed (warm-up passes), but
  every request asks for a (query, k) pair not seen before: no result-cache hit, so both legs
  run, without the model. A different measurement from ``uncached``: labelled apart;
* ``open`` — like ``uncached`` but open-loop: requests *scheduled* at a fixed rate
  (``--rate``) over 50 connections, latency counted from the scheduled time (so queueing
  behind a slow request counts; no coordinated omission).

Closed-loop runs use ``wrk -t2 -c50``. For each run the JSON line has requests/s, latency
percentiles, errors, the CPU seconds the server processes (master + workers) and the load
generator used per request — read from /proc and ``wait4``, so robust to other processes on
the machine, unlike requests/s — and the 1-minute load average before the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
CONNECTIONS = 50
RUNS = ("cached", "uncached", "embed-warm", "open")

# Each wrk thread sends every T-th body (T = threads), starting at its own index, so two
# threads never send the same body at the same time.
LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local bodies = {}
local f = io.open("%(queries)s")
for line in f:lines() do bodies[#bodies + 1] = line end
f:close()
local i = 0
local stride = %(threads)d
function init(args)
  i = tonumber(wrk.thread:get("id"))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  local body = bodies[i %% #bodies + 1]
  i = i + stride
  return wrk.format(nil, "/v1/search", nil, body)
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


# -- CPU accounting ----------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for child in _children(pid):
        pids += process_tree(child)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (each one's own threads included)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- the server --------------------------------------------------------------------------------
class Server:
    def __init__(self, data_dir: Path, workers: int, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "ENGRAM_DATA_DIR": str(data_dir),
            "ENGRAM_RATE_LIMIT_PER_MINUTE": "0",
            "ENGRAM_RATE_LIMIT_IP_PER_MINUTE": "0",
            **env,
        }
        engram = str(Path(sys.executable).parent / "engram")
        cmd = [engram, "serve", "--port", str(self.port), "--workers", str(workers)]
        self.proc = subprocess.Popen(
            cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and self.proc.poll() is None, "server did not start"
            time.sleep(0.2)
        time.sleep(1.0)  # let every worker finish starting
        self.pids = process_tree(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# -- closed loop: wrk --------------------------------------------------------------------------
def wrk(url: str, bodies: list[str], key: str, seconds: int, connections: int) -> dict[str, Any]:
    """Run wrk; returns its figures and its own CPU seconds (from wait4)."""
    with tempfile.TemporaryDirectory() as tmp:
        qfile, script, out = Path(tmp) / "q.txt", Path(tmp) / "s.lua", Path(tmp) / "out.txt"
        qfile.write_text("\n".join(bodies) + "\n")
        script.write_text(LUA % {"queries": qfile, "key": key, "threads": 2})
        cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
        with out.open("w") as sink:
            proc = subprocess.Popen([*cmd, "-s", str(script), url], stdout=sink)
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = 0
        text = out.read_text()
    m = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", text)
    assert m, text
    n, duration_us = int(m[1]), int(m[2])
    return {
        "requests": n,
        "req_per_s": round(n / (duration_us / 1e6), 1),
        "p50_ms": float(m[3]),
        "p95_ms": float(m[4]),
        "p99_ms": float(m[5]),
        "max_ms": float(m[6]),
        "errors": int(m[7]),
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }


# -- open loop (and warm-up): a small asyncio HTTP/1.1 client ----------------------------------
def _request(port: int, body: str, key: str) -> bytes:
    data = body.encode()
    head = (
        f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def _open_loop(
    port: int, raws: list[bytes], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """Requests scheduled every 1/rate s (cycling through ``raws``) on up to ``connections``
    keep-alive connections; latency from each request's scheduled time."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    embed_hits = embeds = 0
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def one(i: int) -> None:
        nonlocal errors, embed_hits, embeds
        scheduled = start + i / rate
        conn = await pool.get()
        try:
            status, body = await _exchange(*conn, raws[i % len(raws)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            return
        pool.put_nowait(conn)
        latencies.append(loop.time() - scheduled)
        if status != 200:
            errors += 1
            return
        timings = json.loads(body[body.rindex(b'"timings_ms":') + 13 : body.rindex(b',"exp')])
        if "embed" in timings:
            embeds += 1
            embed_hits += timings["embed"] < 0.5  # a cache hit takes microseconds

    tasks = []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "target_rate": rate,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "errors": errors,
        "embedding_cache_hit_share": round(embed_hits / embeds, 3) if embeds else None,
    }


def open_loop(port: int, bodies: list[str], key: str, rate: float, seconds: float) -> dict:
    raws = [_request(port, b, key) for b in bodies]
    before = os.times()
    result = asyncio.run(_open_loop(port, raws, rate, seconds, CONNECTIONS))
    after = os.times()
    result["client_cpu_s"] = round((after.user - before.user) + (after.system - before.system), 2)
    return result


# -- runs ----------------------------------------------------------------------------------------
def body(query: str, k: int = 10, offset: int = 0) -> str:
    return json.dumps({"query": query, "collection": "scifact", "k": k, "offset": offset})


def run(
    name: str,
    data_dir: Path,
    workers: int,
    queries: list[str],
    seconds: int,
    rate: float,
    env: dict[str, str],
) -> dict[str, Any]:
    cache = "0" if name in ("uncached", "open") else "2048"
    server = Server(data_dir, workers, {"ENGRAM_CACHE_SIZE": cache, **env})
    key = (data_dir / "key.txt").read_text().strip()
    extra: dict[str, Any] = {}
    try:
        if name == "cached":
            bodies = [body(queries[0])]
        elif name == "embed-warm":
            # Every query's embedding is computed in each worker (several passes: the kernel
            # spreads connections over the workers unevenly), then the run asks for pages
            # (query, offset) never asked before: result-cache misses, embedding-cache hits,
            # and the same work as offset 0 (10 results of a 150-deep fusion).
            for warm_pass in range(4 * workers):
                warm = [body(q, offset=141 + warm_pass) for q in queries]  # result misses
                warmed = open_loop(server.port, warm, key, rate=150, seconds=len(warm) / 150)
            extra["warm_last_pass_embedding_hit_share"] = warmed["embedding_cache_hit_share"]
            bodies = [body(q, offset=o) for o in range(1, 141) for q in queries]
        else:
            bodies = [body(q) for q in queries]
        if name != "embed-warm":  # warm up: load the models and indexes in every worker
            wrk(server.url, bodies, key, 5, 8)
        load = os.getloadavg()[0]
        cpu0 = server.cpu()
        if name == "open":
            figures = open_loop(server.port, bodies, key, rate, seconds)
        else:
            figures = wrk(server.url, bodies, key, seconds, CONNECTIONS)
        server_cpu = server.cpu() - cpu0
    finally:
        server.stop()
    n = max(1, figures["requests"])
    return {
        "run": name,
        "workers": workers,
        "connections": CONNECTIONS,
        **{k: v for k, v in figures.items() if k != "client_cpu_s"},
        "server_cpu_ms_per_req": round(server_cpu / n * 1000, 3),
        "client_cpu_ms_per_req": round(figures["client_cpu_s"] / n * 1000, 3),
        "load_avg_1m_before": round(load, 2),
        **extra,
        "env": env,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--run", action="append", choices=RUNS, help="repeatable; default: all")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rate", type=float, default=100.0, help="open loop: requests/s")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    ap.add_argument("--prepare", action="store_true")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.data_dir)
    env = dict(item.split("=", 1) for item in args.env)
    queries = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()][:300]
    for _ in range(args.repeat):
        for name in args.run or RUNS:
            result = run(
                name, args.data_dir.resolve(), args.workers, queries, args.seconds, args.rate, env
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
