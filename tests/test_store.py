"""The embedded store's own behaviour: index files catching up with the change log,
migrations, two handles on one data directory. The contract every backend keeps is in
tests/contract, one module per concern."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from contract.kit import EMB, keys_of, put

from engram.errors import MigrationError
from engram.store.sqlite import SQLiteStore


def test_vector_index_catches_up_and_rebuilds(tmp_path: Path) -> None:
    path, index_dir = tmp_path / "e.db", tmp_path / "vectors"
    s1 = SQLiteStore(path, index_dir=index_dir)
    c = s1.create_collection("c", model_id=EMB.model_id, dimension=32, language="en", settings={})
    put(s1, c, "a", "apples and pears")
    s1.close()  # saves the index file and prunes the log
    s2 = SQLiteStore(path, index_dir=index_dir)
    put(s2, c, "b", "bananas and kiwis")  # s2 appends to the log, and is killed without saving
    s2._conn.close()
    for lost in index_dir.glob(f"{c.id}.*.hnsw"):  # and the index file is lost too
        lost.unlink()
    s3 = SQLiteStore(path, index_dir=index_dir)
    hits = s3.vector_search(c, EMB.embed_query("bananas and kiwis"), k=2)
    assert sorted(keys_of(s3, c, hits)) == ["a", "b"]
    s3.close()


def test_migrations_are_recorded_and_hash_checked(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    SQLiteStore(path).close()
    SQLiteStore(path).close()  # re-opening applies nothing twice
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
    conn.execute("UPDATE schema_migrations SET sha256 = 'tampered' WHERE version = 1")
    conn.commit()
    conn.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        SQLiteStore(path)


def test_two_processes_share_one_data_directory(tmp_path: Path) -> None:
    """A second handle whose indexes are behind a log another handle pruned reloads the
    other's saved index files instead of missing the pruned changes."""
    path, index_dir = tmp_path / "e.db", tmp_path / "idx"
    writer = SQLiteStore(path, index_dir=index_dir)
    coll = writer.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
    put(writer, coll, "a", "alpha words")
    reader = SQLiteStore(path, index_dir=index_dir)
    assert keys_of(reader, coll, reader.keyword_search(coll, ["alpha"], k=5)) == [
        "a"
    ]  # reader at seq 1
    put(writer, coll, "b", "beta words")
    writer.delete_documents(coll, ["a"])
    writer.sync()  # saves files and prunes the log past the reader's position
    assert writer._read("SELECT count(*) FROM chunk_log")[0][0] == 0
    assert keys_of(reader, coll, reader.keyword_search(coll, ["word"], k=5)) == ["b"]
    hits = reader.vector_search(coll, EMB.embed_query("beta words"), k=5)
    assert keys_of(reader, coll, hits) == ["b"]
    writer.close()
    reader.close()


def test_a_racing_collection_create_is_a_conflict_however_the_driver_says_it(
    tmp_path: Path,
) -> None:
    """Two first writes to one new collection: the loser gets Conflict (the engine then uses
    the winner's collection), also when sqlite3 reports the unique violation as a plain
    DatabaseError, as it did under concurrent requests."""
    from engram.errors import Conflict

    store = SQLiteStore(tmp_path / "e.db", index_dir=tmp_path / "idx")
    args = {"model_id": "m", "dimension": 2, "language": "en", "settings": {}}
    store.create_collection("c", **args)
    with pytest.raises(Conflict):
        store.create_collection("c", **args)

    class Racing:  # the connection as the losing thread saw it
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, sql: str, *params: object) -> object:
            if sql.startswith("INSERT INTO collections"):
                raise sqlite3.DatabaseError(
                    "UNIQUE constraint failed: collections.tenant, collections.name"
                )
            return self.conn.execute(sql, *params)

    real, store._conn = store._conn, Racing(store._conn)  # type: ignore[assignment]
    try:
        with pytest.raises(Conflict):
            store.create_collection("d", **args)
    finally:
        store._conn = real
    store.close()
