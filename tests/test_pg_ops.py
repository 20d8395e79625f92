"""Operations on PostgreSQL: ``/v1/ready``, ``engram doctor`` and the pool gauges of
``/metrics`` report reachability and latency, the schema against the code's migrations,
pgvector, whether row-level security applies to the role, and the pool's usage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner, Result
from conftest import PgCluster
from fastapi.testclient import TestClient
from live import free_port

from engram.cli import cli
from engram.config import Settings
from engram.server.app import create_app
from engram.store.migrations import load_migrations
from engram.store.postgres.status import MIGRATE_HINT, PGVECTOR_HINT, RLS_HINT, url_status

MIGRATIONS = load_migrations("postgres")
LATEST = MIGRATIONS[-1]
ALL_NAMES = [f"{m.version:04d}_{m.name}" for m in MIGRATIONS]


def _name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _admin(cluster: PgCluster, url: str) -> psycopg.Connection[Any]:
    """A superuser connection to the database of ``url`` (to break it behind engram's back)."""
    return psycopg.connect(cluster.url(_name(url), admin=True), autocommit=True)


@pytest.fixture
def pg_settings(settings: Settings, pg_url: str) -> Settings:
    settings.database_url = pg_url
    settings.database_pool_size = 3
    return settings


@pytest.fixture
def client(pg_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(pg_settings)) as c:
        yield c


def doctor(url: str, data_dir: Path, *args: str) -> Result:
    env = {"ENGRAM_DATABASE_URL": url, "ENGRAM_LLM": None, "ENGRAM_REDIS_URL": None}
    env |= {"ENGRAM_RERANKER_MODEL": None, "ENGRAM_DATABASE_POOL_SIZE": None}
    return CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "--model", "hash", "doctor", *args], env=env
    )


def lines(result: Result) -> dict[str, str]:
    """Check name → its output line (✓, ! or ✗)."""
    return {
        line[2:].split("  ")[0].strip(): line
        for line in result.output.splitlines()
        if line[:1] in ("✓", "!", "✗")
    }


# -- /v1/ready ---------------------------------------------------------------------------------
def test_ready_reports_the_postgres_server_schema_pgvector_rls_and_pool(
    client: TestClient, pg_cluster: PgCluster, pg_url: str
) -> None:
    # The background job worker polls through the same pool: stopped, so that the pool
    # counts below see the probe alone (under load its recovery and poll could overlap).
    client.app.state.jobs.stop()  # type: ignore[attr-defined]
    res = client.get("/v1/ready")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {
        "store": "ok",
        "schema": "ok",
        "pgvector": "ok",
        "rls": "ok",
        "embedder": "ok",
        "collection_models": "ok",
        "reranker": "ok",
        "llm": "not_configured",
        "redis": "not_configured",
    }
    with _admin(pg_cluster, pg_url) as admin:
        version, server = admin.execute(
            "SELECT extversion, current_setting('server_version') FROM pg_extension"
            " WHERE extname = 'vector'"
        ).fetchone()  # type: ignore[misc]
    store = checks["store"]
    assert store["latency_ms"] > 0 and "error" not in store
    details = store["details"]
    assert details["backend"] == "postgres" and details["server_version"] == server
    assert details["database"] == _name(pg_url)
    pool = details["pool"]
    # (the pool may be opening a connection the server does not list yet: no order between them)
    assert pool["pool_size"] >= 1 and 1 <= details["connections"] <= details["max_connections"]
    assert (pool["pool_min"], pool["pool_max"], pool["requests_waiting"]) == (1, 3, 0)
    # The probe's own connection is back in the pool when the pool is read (a last poll of
    # the stopped job worker may still be returning another one).
    assert pool["pool_in_use"] == pool["pool_size"] - pool["pool_available"] <= 1, pool
    assert checks["schema"]["details"] == {
        "version": LATEST.version,
        "expected": LATEST.version,
        "pending": [],
    }
    assert checks["pgvector"]["details"] == {"version": version}
    assert checks["rls"]["details"] == {"role": PgCluster.ROLE, "enforced": True}
    assert all("hint" not in c and "error" not in c for c in checks.values())


def test_a_pending_migration_makes_the_server_not_ready_with_a_hint(
    client: TestClient, pg_cluster: PgCluster, pg_url: str
) -> None:
    with _admin(pg_cluster, pg_url) as admin:
        admin.execute("DELETE FROM schema_migrations WHERE version = %s", (LATEST.version,))
    res = client.get("/v1/ready")
    assert res.status_code == 503, res.text
    error = res.json()["error"]
    assert error["code"] == "not_ready" and "schema" in error["message"]
    assert error["hint"] == MIGRATE_HINT and "engram migrate" in error["hint"]
    schema = error["details"]["checks"]["schema"]
    assert schema["status"] == "error"
    assert schema["error"] == (
        f"schema version {LATEST.version - 1} of {LATEST.version}:"
        f" 1 migration(s) pending ({ALL_NAMES[-1]})"
    )
    assert schema["details"]["pending"] == [ALL_NAMES[-1]]
    assert error["details"]["checks"]["store"]["status"] == "ok"
    # Recorded again (as `engram migrate` would): ready again, nothing else to do.
    with _admin(pg_cluster, pg_url) as admin:
        admin.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
            (LATEST.version, LATEST.name, LATEST.sha256),
        )
    assert client.get("/v1/ready").status_code == 200


@pytest.mark.parametrize(
    ("change", "message", "hint"),
    [
        (
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (9999, 'future', 'x')",
            "the database has migration 9999, which this engram version does not know",
            "upgrade engram",
        ),
        (
            "UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1",
            "migration 1 (init) was changed after it was applied",
            "migrations are immutable",
        ),
    ],
)
def test_a_schema_from_another_version_makes_the_server_not_ready(
    client: TestClient, pg_cluster: PgCluster, pg_url: str, change: str, message: str, hint: str
) -> None:
    with _admin(pg_cluster, pg_url) as admin:
        admin.execute(change)
    error = client.get("/v1/ready").json()["error"]
    schema = error["details"]["checks"]["schema"]
    assert schema["status"] == "error" and schema["error"] == message
    assert hint in schema["hint"] and hint in error["hint"]


def test_a_dropped_pgvector_makes_the_server_not_ready(
    client: TestClient, pg_cluster: PgCluster, pg_url: str
) -> None:
    with _admin(pg_cluster, pg_url) as admin:
        admin.execute("DROP EXTENSION vector CASCADE")
    res = client.get("/v1/ready")
    assert res.status_code == 503, res.text
    check = res.json()["error"]["details"]["checks"]["pgvector"]
    assert check == {
        "status": "error",
        "latency_ms": 0.0,
        "error": f"pgvector is not installed in {_name(pg_url)}",
        "hint": PGVECTOR_HINT,
        "details": {"version": None},
    }


def test_an_unreachable_database_makes_the_server_not_ready(
    client: TestClient, pg_cluster: PgCluster, pg_url: str
) -> None:
    assert client.get("/v1/ready").status_code == 200
    pg_cluster.drop(_name(pg_url))  # every connection is closed, and none can open
    res = client.get("/v1/ready")
    assert res.status_code == 503, res.text
    error = res.json()["error"]
    store = error["details"]["checks"]["store"]
    assert store["status"] == "error" and "PostgreSQL" in store["error"], store
    assert store["hint"] and error["hint"] == store["hint"]
    assert store["details"]["backend"] == "postgres"
    assert set(error["details"]["checks"]) >= {"store", "embedder"}
    assert "engram_test:engram_test@" not in res.text  # no password in the answer


def test_a_role_that_bypasses_rls_is_a_warning(
    pg_settings: Settings, pg_cluster: PgCluster, pg_url: str
) -> None:
    superuser = pg_settings.model_copy(
        update={"database_url": pg_cluster.url(_name(pg_url), admin=True)}
    )
    with TestClient(create_app(superuser)) as c:
        res = c.get("/v1/ready")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "degraded"
    rls = body["checks"]["rls"]
    role = rls["details"]["role"]
    assert rls == {
        "status": "warning",
        "latency_ms": 0.0,
        "error": f"role {role!r} is a superuser: row-level security does not apply to it",
        "hint": RLS_HINT,
        "details": {"role": role, "enforced": False},
    }
    assert [n for n, check in body["checks"].items() if check["status"] == "error"] == []


# -- /metrics ----------------------------------------------------------------------------------
def _gauges(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name.startswith("engram_db_pool")
    }


def test_metrics_expose_the_connection_pool(client: TestClient) -> None:
    pool = client.app.state.db.store._pool  # type: ignore[attr-defined]
    in_use = 'engram_db_pool_connections{state="in_use"}'
    deadline = time.monotonic() + 10
    # At start-up the job worker's first queries may still hold a connection.
    while (idle := _gauges(client.get("/metrics").text))[in_use] != 0:
        assert time.monotonic() < deadline, idle
        time.sleep(0.05)
    assert idle["engram_db_pool_max_connections"] == 3
    assert idle["engram_db_pool_requests_waiting"] == 0
    with pool.connection(), pool.connection():
        busy = _gauges(client.get("/metrics").text)
    # Two held here (the job worker may be polling with a third).
    assert busy[in_use] in (2, 3), busy
    assert busy[in_use] + busy['engram_db_pool_connections{state="idle"}'] <= 3


def test_metrics_have_no_pool_gauges_on_sqlite(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:
        assert _gauges(c.get("/metrics").text) == {}


# -- engram doctor -----------------------------------------------------------------------------
def test_doctor_on_a_healthy_postgres_database(pg_url: str, tmp_path: Path) -> None:
    result = doctor(pg_url, tmp_path / "data")
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert set(found) == {
        "data directory",
        "disk space",
        "database",
        "schema",
        "pgvector",
        "row-level security",
        "embedding model",
        "reranker",
        "llm",
    }
    assert all(line.startswith("✓") for line in found.values()), result.output
    server = url_status(pg_url).server_version
    assert f"PostgreSQL {server}, answered in" in found["database"]
    assert "up to 10 per engram process" in found["database"]
    assert "engram_test:***@" in found["database"] and ":engram_test@" not in result.output
    assert f"schema version {LATEST.version} of {LATEST.version}" in found["schema"]
    assert f"applies to role '{PgCluster.ROLE}'" in found["row-level security"]
    assert result.output.rstrip().endswith("all checks passed")


def test_doctor_finds_pending_migrations_without_applying_them(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create(migrated=False)
    try:
        result = doctor(url, tmp_path)
        assert result.exit_code == 1, result.output
        found = lines(result)
        assert found["schema"].startswith("✗")
        assert (
            f"schema version 0 of {LATEST.version}: {len(ALL_NAMES)} migration(s)"
            in (found["schema"])
        )
        assert f"hint: {MIGRATE_HINT}" in result.output
        assert found["pgvector"].startswith("✓")  # the fixture created the extension
        assert result.output.rstrip().endswith(f"1 of {len(found)} checks failed")
        with psycopg.connect(url) as conn:  # read-only: nothing was created
            assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
        migrated = CliRunner().invoke(cli, ["migrate"], env={"ENGRAM_DATABASE_URL": url})
        assert migrated.exit_code == 0, migrated.output
        assert doctor(url, tmp_path).exit_code == 0
    finally:
        pg_cluster.drop(_name(url))


def test_doctor_reports_a_missing_pgvector(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.create(migrated=False)
    try:
        with _admin(pg_cluster, url) as admin:
            admin.execute("DROP EXTENSION vector")
        result = doctor(url, tmp_path, "--json")
        assert result.exit_code == 1
        checks = {c["name"]: c for c in map(json.loads, result.output.splitlines())}
        assert checks["pgvector"] == {
            "name": "pgvector",
            "ok": False,
            "detail": f"not installed in database {_name(url)!r}",
            "hint": PGVECTOR_HINT,
            "warning": False,
        }
    finally:
        pg_cluster.drop(_name(url))


@pytest.fixture
def bypass_role(pg_cluster: PgCluster) -> Iterator[str]:
    """A login role that is no superuser but has BYPASSRLS, a member of the test role (so
    it can read engram's tables)."""
    name = "engram_test_bypass"
    pg_cluster.admin.execute(f"DROP ROLE IF EXISTS {name}")
    pg_cluster.admin.execute(
        f"CREATE ROLE {name} LOGIN PASSWORD '{name}' NOSUPERUSER BYPASSRLS IN ROLE {PgCluster.ROLE}"
    )
    yield name
    pg_cluster.admin.execute(f"DROP ROLE IF EXISTS {name}")


def test_doctor_warns_when_the_role_bypasses_rls(
    pg_url: str, bypass_role: str, tmp_path: Path
) -> None:
    url = pg_url.replace(f"{PgCluster.ROLE}:{PgCluster.ROLE}@", f"{bypass_role}:{bypass_role}@")
    result = doctor(url, tmp_path)
    assert result.exit_code == 0, result.output
    line = lines(result)["row-level security"]
    assert line.startswith("!")
    assert f"role '{bypass_role}' has BYPASSRLS: row-level security does not apply" in line
    assert f"hint: {RLS_HINT}" in result.output
    assert result.output.rstrip().endswith("all checks passed, 1 warning")


def test_doctor_reports_an_unreachable_server(tmp_path: Path) -> None:
    url = f"postgresql://someone:s3cret@127.0.0.1:{free_port()}/engram"
    result = doctor(url, tmp_path)
    assert result.exit_code == 1
    line = lines(result)["database"]
    assert line.startswith("✗")
    assert "cannot connect to PostgreSQL at postgresql://someone:***@127.0.0.1" in line
    assert "hint: check ENGRAM_DATABASE_URL" in result.output
    assert "s3cret" not in result.output
    assert "schema" not in lines(result)
