"""engram backup / restore: backup -> write more -> restore -> the state is the backup's.

SQLite through the online backup API; PostgreSQL through a real pg_dump / pg_restore (the
pgserver package's, PostgreSQL 16); the logical method through the portable export.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import Conflict, InvalidInput, StoreError
from engram.transfer import backups as backup_module
from engram.transfer import export_data
from engram.transfer.backups import backup, find_pg_tools, restore


def fill(db: engram.Engram, tag: str) -> None:
    db.add(
        [
            {
                "id": f"{tag}-1",
                "text": f"First {tag} document about refunds.",
                "metadata": {"t": tag},
            },
            {"id": f"{tag}-2", "text": f"Second {tag} document about keys."},
        ],
        collection="kb",
    )
    memory = db.memory.add(f"The {tag} user prefers tea.", user_id="u1")
    db.memory.update(memory.id, f"The {tag} user prefers green tea.")
    conv = db.memory.create_conversation("u1", title=tag)
    db.memory.append(conv.id, "user", f"hello {tag}")
    db.store.record_event("default", "search", query=tag, result_count=1, latency_ms=2.0)
    db.create_key(tenant="default", scopes=["read"], name=tag)


def state(db: engram.Engram, path: Path) -> tuple[dict[str, bytes], list[str]]:
    """Everything the export holds, plus the API keys (which it leaves out)."""
    export_data(db.store, path)
    files = {f.relative_to(path).as_posix(): f.read_bytes() for f in sorted(path.rglob("*.jsonl"))}
    return files, sorted(f"{k.id}:{k.name}" for k in db.store.list_api_keys())


def _cycle(
    settings: Settings, tmp_path: Path, method: str = "auto"
) -> tuple[dict[str, bytes], list[str]]:
    """Backup -> write more -> restore; returns the state at backup time."""
    with engram.open(settings=settings) as db:
        fill(db, "before")
        saved = state(db, tmp_path / "state-before")
        report = backup(settings, tmp_path / "backup", method=method)  # type: ignore[arg-type]
        assert report.bytes > 0
        fill(db, "after")
        db.delete(["before-1"], collection="kb")
        assert state(db, tmp_path / "state-changed") != saved

    with pytest.raises(Conflict, match="holds data") as err:
        restore(settings, tmp_path / "backup")
    assert "--force" in (err.value.hint or "")
    restored = restore(settings, tmp_path / "backup", force=True)
    assert restored.extra["method"] in ("native", "logical")

    with engram.open(settings=settings) as db:
        assert state(db, tmp_path / "state-after") == saved
        hits = db.search("refunds", collection="kb", k=3).results
        assert [h.document_key for h in hits][:1] == ["before-1"]
        for mode in ("keyword", "vector"):  # no trace of what was written after the backup
            found = db.search("first second document refunds keys", collection="kb", mode=mode)
            assert {h.document_key for h in found.results} == {"before-1", "before-2"}
    return saved


def test_sqlite_backup_write_restore(settings: Settings, tmp_path: Path) -> None:
    _cycle(settings, tmp_path)
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["format"] == "engram-backup" and manifest["backend"] == "sqlite"
    # Rows of the tables: 2 documents, and 1 message in its user's recall index.
    assert manifest["method"] == "native" and manifest["counts"]["documents"] == 3
    # The index files travel with the database (copied first, so never newer than it).
    assert "engram.db" in manifest["files"]
    assert any(name.startswith("indexes/") and name.endswith(".hnsw") for name in manifest["files"])
    assert any(settings.index_dir.glob("*.hnsw"))


def test_sqlite_restore_into_a_new_data_dir(settings: Settings, tmp_path: Path) -> None:
    with engram.open(settings=settings) as db:
        fill(db, "one")
        saved = state(db, tmp_path / "s1")
    backup(settings, tmp_path / "b")
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "elsewhere"})
    restore(elsewhere, tmp_path / "b")  # empty target: no --force needed
    with engram.open(settings=elsewhere) as db:
        assert state(db, tmp_path / "s2") == saved


def test_logical_backup(settings: Settings, tmp_path: Path) -> None:
    with engram.open(settings=settings) as db:
        fill(db, "one")
        saved = state(db, tmp_path / "s1")[0]
    report = backup(settings, tmp_path / "b", method="logical")
    assert any("no API keys" in n for n in report.notes)
    fresh = settings.model_copy(update={"data_dir": tmp_path / "fresh"})
    restore(fresh, tmp_path / "b")
    with engram.open(settings=fresh) as db:
        assert state(db, tmp_path / "s2")[0] == saved
        assert db.store.list_api_keys() == []  # secrets are not part of a logical backup


def test_bad_backups(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="not an engram backup"):
        restore(settings, empty)
    with pytest.raises(InvalidInput, match="no database to back up"):
        backup(settings, tmp_path / "b0")
    with engram.open(settings=settings) as db:
        fill(db, "x")
    backup(settings, tmp_path / "b")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        backup(settings, tmp_path / "b")
    db_file = tmp_path / "b" / "engram.db"
    db_file.write_bytes(db_file.read_bytes()[:-100])
    with pytest.raises(InvalidInput, match="damaged or was modified"):
        restore(settings, tmp_path / "b", force=True)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    (tmp_path / "b" / "manifest.json").write_text(json.dumps({**manifest, "format_version": 7}))
    with pytest.raises(InvalidInput, match="version 7"):
        restore(settings, tmp_path / "b")


def test_cli(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    with engram.open(settings=settings) as db:
        fill(db, "x")
    runner = CliRunner()
    data = ["--data-dir", str(settings.data_dir)]
    res = runner.invoke(cli, [*data, "backup", str(tmp_path / "b"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["backend"] == "sqlite" and out["counts"]["documents"] == 3 and out["bytes"] > 0
    res = runner.invoke(cli, [*data, "restore", str(tmp_path / "b")])
    assert res.exit_code == 1 and "holds data" in res.output and "--force" in res.output
    res = runner.invoke(cli, [*data, "restore", str(tmp_path / "b"), "--force"])
    assert res.exit_code == 0 and res.stdout.startswith("restore: ")


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture
def pg_settings(settings: Settings, pg_url: str) -> Settings:
    return settings.model_copy(update={"database_url": pg_url})


def test_postgres_backup_write_restore(pg_settings: Settings, pg_cluster, tmp_path: Path) -> None:
    saved = _cycle(pg_settings, tmp_path, method="native")
    # Into another, empty database: no --force needed, same state.
    fresh = pg_settings.model_copy(update={"database_url": pg_cluster.create()})
    restore(fresh, tmp_path / "backup")
    with engram.open(settings=fresh) as db:
        assert state(db, tmp_path / "state-fresh") == saved  # API keys included
        assert {d.key for d in db.documents("kb")} == {"before-1", "before-2"}
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["backend"] == "postgres" and manifest["method"] == "native"
    assert manifest["pg_dump"]["version"] >= manifest["server_version"] == 16
    import psycopg

    # The restore brought back the security and the indexes, not only the rows.
    with psycopg.connect(pg_settings.database_url or "") as conn:
        rls = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname IN ('collections', 'documents', 'chunks', 'memories', 'events')"
        ).fetchall()
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'chunks_vec_%'"
        ).fetchone()
        migrations = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert len(rls) == 5 and all(r[1] and r[2] for r in rls)
    assert indexes and indexes[0] == 1  # the collection's HNSW index
    assert migrations and migrations[0] >= 2


def test_postgres_logical_backup(pg_settings: Settings, pg_cluster, tmp_path: Path) -> None:
    with engram.open(settings=pg_settings) as db:
        fill(db, "one")
        saved = state(db, tmp_path / "s1")[0]
    report = backup(pg_settings, tmp_path / "b", method="logical")
    assert report.extra == {"backend": "postgres", "method": "logical"}
    with pytest.raises(Conflict, match="empty database only"):
        restore(pg_settings, tmp_path / "b", force=True)
    fresh = pg_settings.model_copy(update={"database_url": pg_cluster.create()})
    restore(fresh, tmp_path / "b")
    with engram.open(settings=fresh) as db:
        assert state(db, tmp_path / "s2")[0] == saved


def test_old_pg_dump_is_refused_with_the_reason(
    pg_settings: Settings, tmp_path: Path, monkeypatch
) -> None:
    """Only the machine's pg_dump 15 (Debian) in reach: it cannot dump a 16 server."""
    monkeypatch.setattr(backup_module, "_candidate_dirs", lambda: [Path("/usr/bin")])
    if not Path("/usr/bin/pg_dump").exists():
        pytest.skip("no system pg_dump")
    tools = find_pg_tools(pg_settings.database_url or "", need="pg_dump")
    assert (
        tools.error
        and "major version >= 16" in tools.error
        and "/usr/bin/pg_dump (15)" in tools.error
    )
    with pytest.raises(StoreError, match="no pg_dump of major version >= 16") as err:
        backup(pg_settings, tmp_path / "b", method="native")
    assert "pgserver" in (err.value.hint or "")
    with engram.open(settings=pg_settings) as db:
        fill(db, "x")
    report = backup(pg_settings, tmp_path / "auto")  # auto: falls back to the logical export
    assert report.extra["method"] == "logical"
    assert any("logical backup instead" in n for n in report.notes)


def test_backend_mismatch(settings: Settings, pg_settings: Settings, tmp_path: Path) -> None:
    with engram.open(settings=settings) as db:
        fill(db, "x")
    backup(settings, tmp_path / "b")
    with pytest.raises(InvalidInput, match="this is a sqlite backup"):
        restore(pg_settings, tmp_path / "b")


def test_backup_keep_rotates_a_folder_of_backups(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with engram.open(data, embedding_model="hash") as db:
        db.add([{"id": "a", "text": "kept in every backup"}])
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a backup: left alone")
    (folder / "engram-20000101T000000Z").mkdir()  # the same name, but not a backup: kept
    made = []
    for _ in range(3):
        result = CliRunner().invoke(
            cli,
            [
                "--data-dir",
                str(data),
                "--model",
                "hash",
                "backup",
                str(folder),
                "--keep",
                "2",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        made.append(json.loads(result.output)["path"])
        time.sleep(1.1)
    backups = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and (p / "manifest.json").exists()
    )
    assert backups == sorted(Path(m).name for m in made[1:])
    assert (folder / "notes.txt").exists() and (folder / "engram-20000101T000000Z").exists()
    # Each backup holds the collection's current index files and no lock or temporary file.
    names = {p.name for p in (folder / backups[-1] / "indexes").iterdir()}
    assert "1.manifest.json" in names and not any(n.endswith((".lock", ".tmp")) for n in names)
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(tmp_path / "back"),
            "--model",
            "hash",
            "restore",
            str(folder / backups[-1]),
        ],
    )
    assert result.exit_code == 0, result.output
    with engram.open(tmp_path / "back", embedding_model="hash") as db:
        assert db.search("kept", mode="keyword").results[0].document_key == "a"
