"""Short runs of the reliability scripts in bench/ (their long runs are in
docs/benchmarks.md): many processes on one data directory, and SIGKILLs during ingests on
both backends. Each script checks everything itself and exits 1 on any problem."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REQUIRE_SERVICES

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(script: str, *args: str, timeout: float = 600) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert proc.returncode == 0 and result["ok"], json.dumps(result, indent=1) + proc.stderr[-3000:]
    return result


@pytest.mark.slow
def test_serve_workers_and_cli_writers_share_one_data_directory() -> None:
    result = _run(
        "concurrency.py",
        "--workers",
        "2",
        "--cli-writers",
        "2",
        "--http-writers",
        "1",
        "--searchers",
        "1",
        "--duration",
        "20",
    )
    assert result["requests"]["cli ingest"] >= 2 and result["requests"]["search"] > 10
    assert result["server_5xx"] == 0 and not result["lost"] and not result["duplicated"]
    # Agent state's compare-and-set across both server workers lost no increment.
    assert result["state_increments"] > 10
    assert result["state_counter"] == result["state_increments"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkills_during_ingest_leave_a_consistent_store(backend: str) -> None:
    if backend == "postgres" and importlib.util.find_spec("pgserver") is None:
        if REQUIRE_SERVICES:
            pytest.fail("pgserver is required (ENGRAM_REQUIRE_SERVICES=1)")
        pytest.skip("pgserver missing")
    result = _run(
        "chaos.py",
        "--backend",
        backend,
        "--kills",
        "5",
        "--ops",
        "4",
        "--batch",
        "60",
        "--queries",
        "20",
    )
    assert result["kills"] >= 5 and result["problem_count"] == 0
    assert result["documents_equal_clean"] and result["top10_differing"] == 0


def test_web_bench_at_a_tiny_size() -> None:
    """bench_web.py end to end at a tiny size: it builds, serves, signs in, times every page
    (the ones not built yet answer 404 and are named) and weighs the first load."""
    result = _run("bench_web.py", "--chunks", "200", "--events", "300", "--requests", "2")
    measured = {p["page"]: p for p in result["pages"] if not p["skipped"]}
    assert measured["jobs"]["status"] == 200 and measured["jobs"]["p95_ms"] > 0
    assert measured["dashboard (30 days)"]["status"] == 200
    assert result["first_load"]["raw"] > result["first_load"]["gzip"] > 0
    assert set(result["skipped"]) | set(measured) == {p["page"] for p in result["pages"]}


def test_peers_bench_at_a_tiny_size(tmp_path: Path) -> None:
    """bench_peers.py end to end on a tiny BEIR directory with random vectors (no model
    run): engram's build, keyword leg and hybrid search are timed; peers that are not
    installed (they are bench-only dependencies) are left out."""
    rng = random.Random(0)
    words = [f"word{i}" for i in range(300)]
    with (tmp_path / "corpus.jsonl").open("w") as fh:
        for i in range(60):
            text = " ".join(rng.choices(words, k=40))
            fh.write(json.dumps({"_id": str(i), "title": f"t{i}", "text": text}) + "\n")
    with (tmp_path / "queries.jsonl").open("w") as fh:
        for i in range(8):
            fh.write(json.dumps({"_id": f"q{i}", "text": " ".join(rng.choices(words, k=3))}) + "\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_peers.py"), "--dataset", str(tmp_path)]
        + ["--docs", "all", "--vectors", "random", "--repeat", "2", "--systems", "engram"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["docs"] == 60 and result["queries"] == 8
    assert len(result["build_s"]["engram"]["runs_wall"]) == 2
    assert result["keyword_ms"]["engram"]["k=150"]["p50"] > 0
    assert result["hybrid_ms"]["engram"]["p50"] > 0
