"""PostgreSQL-only guarantees: row-level security, surviving a lost connection or a server
restart, concurrent migrations, BM25 identical to the embedded backend, HNSW recall and use.

The contract itself runs on PostgreSQL through the ``store`` and ``db`` fixtures."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from click.testing import CliRunner

from engram.cli import cli
from engram.config import Settings
from engram.errors import CollectionNotFound, ConfigError, MigrationError, ServerUnavailable
from engram.providers.embedders.fake import HashEmbedder
from engram.search.ann import HnswParams
from engram.store.contract import Store
from engram.store.records import ChunkWrite, DocumentWrite
from engram.store.sqlite import SQLiteStore
from engram.types import Collection

EMB = HashEmbedder(dimension=32)
WORDS = [f"w{i}" for i in range(60)]


def pg_store(url: str, **kw: Any) -> Store:
    from engram.store.postgres import PostgresStore

    return PostgresStore(url, pool_size=kw.pop("pool_size", 4), **kw)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Any]:
    s = pg_store(pg_url)
    yield s
    s.close()


def document(key: str, *texts: str, metadata: dict[str, Any] | None = None) -> DocumentWrite:
    chunks, pos = [], 0
    for i, text in enumerate(texts):
        h = hashlib.sha256(text.encode()).hexdigest()[:32]
        chunks.append(ChunkWrite(i, text, pos, pos + len(text), h, text))
        pos += len(text) + 1
    content = hashlib.sha256("|".join(texts).encode()).hexdigest()
    return DocumentWrite(key, key, content, chunks, metadata or {})


def write(store: Store, coll: Collection, *docs: DocumentWrite) -> None:
    vectors = {c.text_hash: EMB.embed_batch([c.text])[0] for d in docs for c in d.chunks}
    store.write_documents(coll, list(docs), vectors)


def new_collection(store: Store, name: str = "c", tenant: str = "default") -> Collection:
    return store.create_collection(
        name, model_id=EMB.model_id, dimension=32, language="none", settings={}, tenant=tenant
    )


def dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url)


# -- row-level security ----------------------------------------------------------------------
TENANT_TABLES = (
    "collections",
    "documents",
    "document_versions",
    "chunks",
    "postings",
    "vocabulary",
    "posting_blocks",
)


def test_every_tenant_table_is_guarded_by_a_forced_policy(pg: Any, pg_url: str) -> None:
    assert pg.rls_enforced, "the tests must run as a role that row-level security applies to"
    with connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant'"
            " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
        ).fetchall()
    names = {t[0] for t in tables}
    assert {*TENANT_TABLES, "api_keys", "memories", "jobs", "events"} <= names
    unguarded = [t[0] for t in tables if not (t[1] and t[2] and t[3] >= 1)]
    assert unguarded == []


def test_unscoped_queries_see_one_tenant_and_cannot_write_another(pg: Any, pg_url: str) -> None:
    import psycopg

    for tenant in ("acme", "globex"):
        coll = new_collection(pg, "kb", tenant)
        write(pg, coll, document(f"{tenant}-doc", f"{tenant} secret plans", "shared words"))
    from engram.keys import ApiKey

    pg.create_api_key(
        ApiKey("0123456789ab", "acme", "k", ("read",), "2024-01-01T00:00:00+00:00"), "h"
    )
    pg.create_api_key(
        ApiKey("ba9876543210", "globex", "k", ("read",), "2024-01-01T00:00:00+00:00"), "h"
    )

    with connect(pg_url) as conn:
        for table in (*TENANT_TABLES, "api_keys"):
            # No tenant set: nothing at all.
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        conn.rollback()
        with conn.transaction():
            conn.execute("SELECT set_config('engram.tenant', 'acme', true)")
            for table in (*TENANT_TABLES, "api_keys"):
                # Deliberately unscoped: no WHERE tenant = ... anywhere.
                tenants = {r[0] for r in conn.execute(f"SELECT tenant FROM {table}")}
                assert tenants == {"acme"}, table
            texts = {r[0] for r in conn.execute("SELECT text FROM chunks")}
            assert texts == {"acme secret plans", "shared words"}
        globex_collection = pg.get_collection("kb", tenant="globex").id
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security")
        with refused, conn.transaction():
            conn.execute("SELECT set_config('engram.tenant', 'acme', true)")
            conn.execute(
                "INSERT INTO documents (tenant, collection_id, key, version, content_hash,"
                " created_at, updated_at) VALUES ('globex', %s, 'x', 1, 'h', now(), now())",
                (globex_collection,),
            )
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security")
        with refused, conn.transaction():
            conn.execute("SELECT set_config('engram.tenant', 'acme', true)")
            conn.execute("UPDATE collections SET tenant = 'globex'")  # move rows out
        with conn.transaction():
            conn.execute("SELECT set_config('engram.tenant', 'acme', true)")
            # Updating or deleting another tenant's rows silently touches nothing.
            assert conn.execute("DELETE FROM chunks WHERE tenant = 'globex'").rowcount == 0
    # globex is intact.
    globex = pg.get_collection("kb", tenant="globex")
    assert globex.chunk_count == 2 and pg.keyword_search(globex, ["globex"], k=5)


def test_superuser_connection_is_reported(
    pg_cluster: Any, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = pg_cluster.url(dbname(pg_url), admin=True)
    with caplog.at_level(logging.WARNING, logger="engram.store.postgres"):
        store = pg_store(admin, pool_size=1)
    store.close()
    assert not store.rls_enforced
    assert "row-level security does not apply" in caplog.text


# -- connections -----------------------------------------------------------------------------
def test_a_killed_connection_does_not_break_the_next_call(pg: Any, pg_cluster: Any) -> None:
    coll = new_collection(pg)
    write(pg, coll, document("a", "alpha beta"))
    name = dbname(pg.url)
    killed = pg_cluster.admin.execute(
        # with a timeout, pg_terminate_backend waits until the backend is gone (its socket
        # closed), as after any real restart or kill
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = %s",
        (name,),
    ).fetchone()[0]
    assert killed >= 1  # the pool's idle connection(s)
    assert [k for k, _ in pg.keyword_search(coll, ["alpha"], k=3)]  # no error: reconnected
    write(pg, coll, document("b", "gamma"))
    assert pg.get_collection("c").document_count == 2


def test_server_restart_fails_fast_then_recovers(pg_cluster: Any, pg_url: str) -> None:
    if pg_cluster.server is None:
        pytest.skip("the server is external (ENGRAM_TEST_DATABASE_URL): not restarted")
    store = pg_store(pg_url, pool_size=2, timeout=2.0)
    try:
        coll = new_collection(store)
        write(store, coll, document("a", "alpha beta"))
        pg_cluster.stop()
        try:
            t0 = time.monotonic()
            with pytest.raises(ServerUnavailable):
                store.keyword_search(coll, ["alpha"], k=3)
            assert time.monotonic() - t0 < 10, "a request got stuck while the server was down"
        finally:
            pg_cluster.start()
        assert [k for k, _ in store.keyword_search(coll, ["alpha"], k=3)]
        write(store, coll, document("b", "gamma"))
    finally:
        store.close()


def test_unreachable_server_and_bad_url_are_clear_errors(tmp_path: Any) -> None:
    with pytest.raises(ServerUnavailable, match="cannot connect to PostgreSQL"):
        pg_store(f"postgresql://nobody:secret@/nodb?host={tmp_path}", timeout=1.0)
    with pytest.raises(ConfigError, match="database_url"):
        Settings.build(database_url="mysql://x")


# -- migrations ------------------------------------------------------------------------------
def test_concurrent_migrations_apply_once(pg_cluster: Any) -> None:
    from engram.store.migrations import load_migrations

    url = pg_cluster.create(migrated=False)
    try:
        barrier = threading.Barrier(4)
        applied: list[list[str]] = []
        errors: list[BaseException] = []

        def open_one() -> None:
            try:
                barrier.wait()
                store = pg_store(url, pool_size=1)
                applied.append([m.name for m in store.applied])
                store.close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        names = [m.name for m in load_migrations("postgres")]
        assert sorted(n for a in applied for n in a) == sorted(names)  # each applied once
        with connect(url) as conn:
            rows = conn.execute(
                "SELECT version, count(*) FROM schema_migrations GROUP BY 1"
            ).fetchall()
            assert sorted(rows) == [(i + 1, 1) for i in range(len(names))]
            conn.execute("UPDATE schema_migrations SET sha256 = 'tampered' WHERE version = 1")
            conn.commit()
        with pytest.raises(MigrationError, match="changed after it was applied"):
            pg_store(url)
    finally:
        pg_cluster.drop(dbname(url))


def test_migrate_command_reports_on_both_backends(pg_url: str, tmp_path: Any) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["--data-dir", str(tmp_path / "d"), "migrate"])
    assert first.exit_code == 0, first.output
    assert "0001_init  applied now" in first.output and "sqlite database" in first.output
    again = runner.invoke(cli, ["--data-dir", str(tmp_path / "d"), "migrate"])
    assert "Up to date" in again.output and "applied now" not in again.output
    pg = runner.invoke(cli, ["migrate"], env={"ENGRAM_DATABASE_URL": pg_url})
    assert pg.exit_code == 0, pg.output
    assert "postgres database" in pg.output and "engram_test:***@" in pg.output
    assert "0001_init  already applied" in pg.output and "Up to date" in pg.output


# -- BM25: identical to the embedded backend ---------------------------------------------------
def test_keyword_scores_equal_the_embedded_backend(pg: Any) -> None:
    rng = random.Random(7)
    sqlite = SQLiteStore(":memory:")
    stores = {"sqlite": sqlite, "postgres": pg}
    colls = {name: new_collection(s) for name, s in stores.items()}
    pg.postings_cache.min_postings = 1  # every posting list is cached, then revalidated

    def random_text() -> str:
        return " ".join(rng.choice(WORDS[: rng.randint(5, 60)]) for _ in range(rng.randint(0, 30)))

    def apply(*docs: DocumentWrite) -> None:
        for name, s in stores.items():
            write(s, colls[name], *docs)

    def delete(keys: list[str]) -> None:
        assert len({s.delete_documents(colls[n], keys) for n, s in stores.items()}) == 1

    def compare(where: dict[str, Any] | None = None) -> None:
        for _ in range(15):
            query = rng.sample(WORDS, rng.randint(1, 5))
            if rng.random() < 0.5:  # repeated words: query-term frequency, on both backends
                query += rng.choices(query, k=rng.randint(1, 3))
            results = {}
            for name, s in stores.items():
                hits = s.keyword_search(colls[name], query, k=200, where=where)
                records = s.get_chunks(colls[name], [i for i, _ in hits])
                results[name] = [
                    ((records[i].document_key, records[i].start), score) for i, score in hits
                ]
            expected, got = results["sqlite"], results["postgres"]
            assert dict(got) == pytest.approx(dict(expected), rel=1e-6, abs=1e-9)
            # Same order, up to the float32 rounding of near-equal scores in the embedded index.
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], rel=1e-6)
        for name in stores:
            assert stores[name].term_frequencies(colls[name], WORDS) == sqlite.term_frequencies(
                colls["sqlite"], WORDS
            )
        assert sorted(sqlite.vocabulary(colls["sqlite"])) == pg.vocabulary(colls["postgres"])

    keys = [f"d{i}" for i in range(80)]
    for key in keys:
        apply(
            document(
                key,
                *(random_text() for _ in range(rng.randint(1, 3))),
                metadata={"n": int(key[1:])},
            )
        )
    apply(document("empty", ""))  # a chunk without terms still counts in N and avgdl
    compare()
    delete(rng.sample(keys, 25) + ["missing"])
    compare()
    with connect(pg.url) as conn:  # the next chunks land in other posting blocks
        conn.execute("SELECT setval(pg_get_serial_sequence('chunks', 'id'), 5 * 65536)")
        conn.commit()
    for key in rng.sample(keys, 15):  # new versions replace old chunks
        apply(document(key, random_text(), metadata={"n": -1}))
    apply(document("dup", "w1 w2"), document("dup", "w1 w1 w3"))  # twice in one call: v1, v2
    compare()
    compare(where={"n": {"$gte": 40}})
    assert [v.version for v in pg.document_versions(colls["postgres"], "dup")] == [1, 2]
    assert pg.postings_cache.hits > 0 and pg.postings_cache.misses > 0
    sqlite.close()


def test_cached_posting_lists_follow_writes_of_other_processes(pg_url: str) -> None:
    """A posting block held by one process is re-read as soon as another process changes it,
    even when the change leaves the term's document frequency as it was; blocks a write did
    not touch stay in memory."""
    reader, writer, fresh = (
        pg_store(pg_url),
        pg_store(pg_url),
        pg_store(pg_url, postings_cache_mb=0),
    )
    try:
        assert fresh.postings_cache is None
        cache = reader.postings_cache
        cache.min_postings = 1
        coll = new_collection(writer)
        write(writer, coll, document("a", "w1 w2"), document("b", "w1 w3 w3"))

        def check(terms: list[str]) -> tuple[list[tuple[int, float]], int, int]:
            hits, misses = cache.hits, cache.misses
            got = reader.keyword_search(coll, terms, k=10)
            assert got == fresh.keyword_search(coll, terms, k=10)
            return got, cache.hits - hits, cache.misses - misses

        first, _, read = check(["w1", "w3"])
        assert read == 2  # one block each
        assert check(["w1", "w3"]) == (first, 2, 0)
        # New version of "b": same terms, so no document frequency moves; its new chunk lands
        # in block 3 (ids from 3 * 65536), its old one leaves block 0.
        with connect(pg_url) as conn:
            conn.execute("SELECT setval(pg_get_serial_sequence('chunks', 'id'), 3 * 65536)")
            conn.commit()
        write(writer, coll, document("b", "w1 w3 w4 w4 w4 w4"))
        second, hits, read = check(["w1", "w3"])
        assert second != first and (hits, read) == (0, 3)  # w1: blocks 0 and 3, w3: block 3
        write(writer, coll, document("c", "w1 w5"))  # block 3 of w1 only
        assert check(["w1", "w3"])[1:] == (2, 1)
        writer.delete_documents(coll, ["a"])  # block 0 of w1 empties: its row goes
        got, hits, read = check(["w1", "w3"])
        assert (len(got), hits, read) == (2, 2, 0)  # "b" and "c", from memory
    finally:
        for s in (reader, writer, fresh):
            s.close()


def assert_consistent(pg_url: str, coll: Collection) -> int:
    """Everything a write keeps in step agrees, read over a second connection: the collection's
    statistics with its chunks, every term's document frequency and every posting block's
    count with the postings, postings
    with the chunks' terms, and each document with exactly the chunks of its current version
    (whose texts make up its content hash) and versions 1..version. Returns the documents."""
    with connect(pg_url) as conn:
        conn.execute("SELECT set_config('engram.tenant', '*', false)")

        def one(query: str) -> Any:
            return conn.execute(query, {"c": coll.id}).fetchone()

        assert one("SELECT chunk_count, total_length FROM collections WHERE id = %(c)s") == one(
            "SELECT count(*), coalesce(sum(length), 0) FROM chunks WHERE collection_id = %(c)s"
        )
        bad_df = one(
            "SELECT count(*) FROM (SELECT term, df FROM vocabulary WHERE collection_id = %(c)s) v"
            " FULL JOIN (SELECT term, count(*) AS n FROM postings WHERE collection_id = %(c)s"
            " GROUP BY term) p ON p.term = v.term WHERE v.df IS DISTINCT FROM p.n"
        )[0]
        assert bad_df == 0
        bad_blocks = one(
            "SELECT count(*) FROM (SELECT term, block, postings FROM posting_blocks"
            " WHERE collection_id = %(c)s) b FULL JOIN (SELECT term, chunk_id >> 16 AS block,"
            " count(*) AS n FROM postings WHERE collection_id = %(c)s GROUP BY 1, 2) p"
            " ON p.term = b.term AND p.block = b.block WHERE b.postings IS DISTINCT FROM p.n"
        )[0]
        assert bad_blocks == 0
        bad_postings = one(
            "SELECT count(*) FROM (SELECT term, chunk_id, tf FROM postings"
            " WHERE collection_id = %(c)s) p FULL JOIN (SELECT t.term, c.id, count(*) AS tf"
            " FROM chunks c, unnest(string_to_array(c.terms, ' ')) AS t(term)"
            " WHERE c.collection_id = %(c)s GROUP BY t.term, c.id) k"
            " ON k.term = p.term AND k.id = p.chunk_id WHERE p.tf IS DISTINCT FROM k.tf"
        )[0]
        assert bad_postings == 0
        docs = conn.execute(
            "SELECT d.id, d.key, d.version, d.content_hash,"
            " (SELECT array_agg(version ORDER BY version) FROM document_versions v"
            "  WHERE v.document_id = d.id),"
            " (SELECT chunk_count FROM document_versions v"
            "  WHERE v.document_id = d.id AND v.version = d.version),"
            " (SELECT coalesce(array_agg(c.text ORDER BY c.ordinal), '{}') FROM chunks c"
            "  WHERE c.document_id = d.id),"
            " (SELECT coalesce(array_agg(DISTINCT c.version), '{}') FROM chunks c"
            "  WHERE c.document_id = d.id)"
            " FROM documents d WHERE d.collection_id = %(c)s",
            {"c": coll.id},
        ).fetchall()
        for _, key, version, content_hash, versions, n, texts, chunk_versions in docs:
            assert versions == list(range(1, version + 1)), key
            assert chunk_versions == [version] and len(texts) == n, key
            assert hashlib.sha256("|".join(texts).encode()).hexdigest() == content_hash, key
        return len(docs)


def test_concurrent_writers_keep_the_statistics_exact(pg: Any, pg_url: str) -> None:
    """Four writers of one collection at once, with overlapping keys in different orders (a
    key twice in one call too), shared chunk texts, replacements and deletes: no deadlock,
    and every statistic, document frequency and document ends exact."""
    coll = new_collection(pg)
    rng = random.Random(3)
    texts = [" ".join(rng.choices(WORDS, k=12)) for _ in range(60)]  # shared by documents
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        mine = random.Random(n)
        try:
            barrier.wait()
            for i in range(12):
                keys = mine.sample(range(30), mine.randint(1, 20))  # collide across threads
                docs = [document(f"k{k}", *mine.sample(texts, mine.randint(1, 3))) for k in keys]
                if i % 4 == 3:
                    docs.append(document(f"k{keys[0]}", mine.choice(texts)))  # again: v+1
                write(pg, coll, *docs)
                if i % 3 == 2:
                    pg.delete_documents(coll, [f"k{k}" for k in mine.sample(range(30), 4)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert assert_consistent(pg_url, coll) > 0


def lock_waits(pg_url: str, count: int) -> list[str]:
    """The statements of the engram connections waiting for a lock, once there are
    ``count`` of them."""
    with connect(pg_url) as conn:
        conn.autocommit = True
        deadline = time.monotonic() + 20
        while True:
            rows = conn.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = 'engram'"
                " AND datname = current_database() AND wait_event_type = 'Lock'"
                " ORDER BY query_start"
            ).fetchall()
            if len(rows) >= count or time.monotonic() > deadline:
                return [r[0] for r in rows]
            time.sleep(0.02)


def test_writers_of_one_collection_wait_only_for_the_tail(pg: Any, pg_url: str) -> None:
    """While the collection row is being updated by another transaction (a writer at its last
    statement), a writer and a deleter do everything else and wait at their last statement;
    a second writer of the same new key waits at that document and then replaces what the
    first one wrote."""
    coll = new_collection(pg)
    write(pg, coll, document("old", "w1 w2 w3", "w4"))
    holder = connect(pg_url)
    holder.execute("SELECT set_config('engram.tenant', '*', false)")
    holder.execute("UPDATE collections SET revision = revision WHERE id = %s", (coll.id,))
    errors: list[BaseException] = []

    def run(call: Any, *args: Any) -> threading.Thread:
        def target() -> None:
            try:
                call(*args)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    try:
        first = run(write, pg, coll, document("new", "w5 w6", "w7"))  # no term of "old"
        deleter = run(pg.delete_documents, coll, ["old"])
        waits = lock_waits(pg_url, 2)
        assert len(waits) == 2 and all(q.startswith("UPDATE collections") for q in waits), waits
        second = run(write, pg, coll, document("new", "w8 w1"))
        waits = lock_waits(pg_url, 3)
        assert sorted(q.split()[0] for q in waits) == ["UPDATE", "UPDATE", "WITH"], waits
        assert any("INSERT INTO documents" in q for q in waits), waits
    finally:
        holder.commit()
        holder.close()
    for t in (first, deleter, second):
        t.join()
    assert errors == []
    assert assert_consistent(pg_url, coll) == 1
    assert [v.version for v in pg.document_versions(coll, "new")] == [1, 2]
    assert pg.term_frequencies(coll, ["w1", "w5", "w8", "w2"]) == {
        "w1": 1,
        "w5": 0,
        "w8": 1,
        "w2": 0,
    }
    assert pg.get_collection("c").chunk_count == 1


def test_writer_after_a_collection_is_deleted_fails_cleanly(pg: Any) -> None:
    coll = new_collection(pg)
    write(pg, coll, document("a", "w1 w2"))
    pg.delete_collection("c")
    with pytest.raises(CollectionNotFound):
        write(pg, coll, document("b", "w3"))
    assert pg.delete_documents(coll, ["a"]) == 0


# -- vectors ---------------------------------------------------------------------------------
def test_hnsw_index_is_used_and_recall_matches_exact(pg_url: str) -> None:
    from engram.store.postgres.connection import vector_text
    from engram.store.postgres.search import _ann_query

    store = pg_store(pg_url, hnsw=HnswParams(exact_below=100, expansion_add=64))
    try:
        coll = new_collection(store)
        rng = np.random.default_rng(5)
        centers = rng.normal(size=(20, 32))
        docs, vectors = [], {}
        for i in range(1500):
            text = f"t{i}"
            h = hashlib.sha256(text.encode()).hexdigest()[:32]
            vectors[h] = (centers[i % 20] + 0.3 * rng.normal(size=32)).astype(np.float32)
            docs.append(DocumentWrite(text, text, h, [ChunkWrite(0, text, 0, 2, h, text)]))
        store.write_documents(coll, docs, vectors)
        # The planner answers the ANN query from this collection's partial HNSW index.
        query = rng.normal(size=32).astype(np.float32)
        steer = {"enable_seqscan": "off", "enable_bitmapscan": "off", "enable_sort": "off"}
        with store._tx("default", settings=steer) as cur:
            cur.execute(
                b"EXPLAIN " + _ann_query(coll).as_bytes(cur),
                (vector_text(query), vector_text(query), 10),
            )
            plan = "\n".join(r["QUERY PLAN"] for r in cur.fetchall())
        assert f"chunks_vec_{coll.id}" in plan, plan
        # Recall of the index against exact search, and the same similarities.
        matrix = np.stack(list(vectors.values()))
        unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        recall = []
        for _ in range(30):
            q = (centers[rng.integers(20)] + 0.3 * rng.normal(size=32)).astype(np.float32)
            hits = store.vector_search(coll, q, k=10)
            # A filter (true of every chunk here) makes the search exact.
            exact = store.vector_search(coll, q, k=10, where={"n": {"$exists": False}})
            truth = unit @ (q / np.linalg.norm(q))
            best = np.argsort(-truth)[:10]
            assert [s for _, s in exact] == pytest.approx(truth[best].tolist(), abs=1e-5)
            recall.append(len({i for i, _ in hits} & {i for i, _ in exact}) / 10)
        assert np.mean(recall) >= 0.95, recall
        store.delete_collection("c")
        with connect(pg_url) as conn:
            left = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'chunks_vec_%'"
            )
            assert left.fetchall() == []
    finally:
        store.close()


# -- end to end: the CLI on PostgreSQL ---------------------------------------------------------
def test_cli_ingest_and_search_on_postgres(pg_url: str, corpus: Any, tmp_path: Any) -> None:
    env = {"ENGRAM_DATABASE_URL": pg_url, "ENGRAM_EMBEDDING_MODEL": "hash"}
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path / "unused")]
    ingested = runner.invoke(cli, [*args, "ingest", str(corpus)], env=env)
    assert ingested.exit_code == 0, ingested.output
    found = runner.invoke(cli, [*args, "search", "purring cats", "--json"], env=env)
    assert found.exit_code == 0, found.output
    assert '"cats.md"' in found.output
    assert not (tmp_path / "unused" / "engram.db").exists()  # nothing went to SQLite


# -- driver errors -----------------------------------------------------------------------------
def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda pg: pg.errors.UniqueViolation("duplicate key"), "Conflict"),
        (lambda pg: pg.DataError("PostgreSQL text fields cannot contain NUL"), "InvalidInput"),
        (lambda pg: pg.errors.InsufficientPrivilege("row-level security"), "StoreError"),
        (lambda pg: pg.OperationalError("server closed the connection"), "ServerUnavailable"),
        (lambda pg: pg.errors.AdminShutdown("terminating connection"), "ServerUnavailable"),
        (lambda pg: pg.errors.SyntaxError("syntax error"), "StoreError"),
        (lambda pg: pg.errors.DeadlockDetected("deadlock detected"), "ServerUnavailable"),
    ],
)
def test_psycopg_errors_are_translated(make: Any, expected: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    import engram.errors
    from engram.store.postgres.connection import translate

    with pytest.raises(getattr(engram.errors, expected)) as info, translate():
        _raise(make(psycopg))
    assert type(info.value) is getattr(engram.errors, expected)
    assert isinstance(info.value.__cause__, psycopg.Error)


def test_text_postgres_cannot_store_is_invalid_input(pg: Any) -> None:
    from engram.errors import InvalidInput

    coll = new_collection(pg)
    with pytest.raises(InvalidInput, match="NUL"):
        write(pg, coll, document("nul", "a\x00b"))
    assert pg.get_collection("c").document_count == 0  # nothing half-written


def test_typo_expansion_does_not_depend_on_vocabulary_order() -> None:
    """SQLite offers typo candidates in insertion order, PostgreSQL in the order its query
    returns them: with more neighbours at one distance than are kept, both must keep the same
    ones."""
    from engram.search.fuzzy import MAX_EXPANSIONS, closest

    terms = ["walkd", "walke", "walka", "walkb", "walkc", "other"]
    assert len(terms) - 1 > MAX_EXPANSIONS
    assert closest("walkx", terms) == closest("walkx", terms[::-1])


@pytest.mark.parametrize("spread", [1, 10_000_000])  # dense and sparse chunk ids
def test_client_side_bm25_ranking_sums_per_chunk_and_breaks_ties_by_id(spread: int) -> None:
    from collections import defaultdict

    from engram.store.postgres.bm25 import rank

    rng = np.random.default_rng(7)
    chunk = rng.integers(0, 300, size=2_000) * spread + 5
    contrib = rng.choice([0.5, 1.0, 1.5], size=len(chunk))  # many exact ties
    expected: dict[int, float] = defaultdict(float)
    for c, w in zip(chunk.tolist(), contrib.tolist()):
        expected[c] += w
    best = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[:25]
    got = rank(chunk.astype(np.int64), contrib, 25)
    assert [c for c, _ in got] == [c for c, _ in best]
    assert np.allclose([s for _, s in got], [s for _, s in best])
    assert len(rank(chunk.astype(np.int64), contrib, 10_000)) == len(expected)


def test_posting_blocks_migration_backfills_existing_postings(pg_url: str) -> None:
    """Migration 0003 on a database written before it: the blocks of existing postings are
    counted, so the first searches after the upgrade are exact."""
    store = pg_store(pg_url)
    coll = new_collection(store)
    write(store, coll, document("a", "w1 w2 w2"), document("b", "w1 w3"))
    with connect(pg_url) as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('chunks', 'id'), 65536)")
        conn.commit()
    write(store, coll, document("c", "w1 w2"))
    before = store.keyword_search(coll, ["w1", "w2"], k=10)
    store.close()
    with connect(pg_url) as conn:  # as the database stood before 0003
        conn.execute("DROP TABLE posting_blocks")
        conn.execute("DELETE FROM schema_migrations WHERE version = 3")
        conn.commit()
    store = pg_store(pg_url)
    try:
        assert [m.version for m in store.applied] == [3]
        assert assert_consistent(pg_url, coll) == 3
        assert store.keyword_search(coll, ["w1", "w2"], k=10) == before
    finally:
        store.close()
