"""The production topology on loopback, end to end: one PostgreSQL database, the machine's
Redis, two ``engram serve`` processes and one ``engram worker`` process.

Each process has its own data directory, as on separate hosts: they share only PostgreSQL
and Redis. The topology is started once for the module (``topology``); each test uses its
own keys, tenants and collections, so the tests do not depend on one another's order.

Redis: db 13 of 127.0.0.1:6379, flushed before and after (skipped without Redis, unless
ENGRAM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import REQUIRE_SERVICES, PgCluster
from live import free_port

import engram
from engram.config import Settings
from engram.jobs import enqueue_batch
from engram.keys import VERIFIED_TTL

REDIS_URL = "redis://127.0.0.1:6379/13"
RATE_LIMIT = 40  # requests per minute and per key, in every process (one shared budget)
ENGRAM_BIN = Path(sys.executable).with_name("engram")


# -- processes -------------------------------------------------------------------------------
def _command(*args: str) -> list[str]:
    if ENGRAM_BIN.exists():
        return [str(ENGRAM_BIN), *args]
    return [sys.executable, "-c", "from engram.cli import main; main()", *args]


@dataclass
class Proc:
    """A child process whose output goes to a log file (a pipe could fill up and block it)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@dataclass
class Topology:
    pg_url: str
    tmp: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    settings: Settings | None = None
    worker_job: str = ""  # a job run by the worker process before the servers started
    cli_key: dict[str, Any] = field(default_factory=dict)  # from `engram keys create --json`
    clients: list[httpx.Client] = field(default_factory=list)  # closed after each test

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of process ``name``: its own data directory."""
        return {**self.env, "ENGRAM_DATA_DIR": str(self.tmp / name)}

    def start(self, name: str, *args: str) -> Proc:
        # The data directory of each "host" exists, as an operator's deployment makes it
        # (engram only writes the key revocation stamp there when PostgreSQL holds the data;
        # see test_revocation_stamp_needs_no_existing_data_directory).
        (self.tmp / name).mkdir(exist_ok=True)
        log = self.tmp / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            _command(*args),
            env=self.env_for(name),
            cwd=self.tmp,  # no stray .env file
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        proc = self.procs[name] = Proc(name, popen, log)
        return proc

    def cli(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an ``engram`` command as if on the host of process ``name``."""
        (self.tmp / name).mkdir(exist_ok=True)
        return subprocess.run(
            _command(*args),
            env=self.env_for(name),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.procs.values())

    def db(self, name: str = "admin") -> engram.Engram:
        """An Engram on the shared database, as if on the host of process ``name``."""
        assert self.settings is not None
        return engram.open(settings=self.settings.model_copy(update={"data_dir": self.tmp / name}))


def _wait(
    condition: Callable[[], Any], what: str, topology: Topology, timeout: float = 30.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        dead = [p.name for p in topology.procs.values() if p.popen.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: {'exited: ' + ', '.join(dead) if dead else 'timed out'}\n"
                + topology.logs()
            )
        time.sleep(0.05)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def _redis_flush() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        import redis  # noqa: F401

        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except (ImportError, OSError) as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required (ENGRAM_REQUIRE_SERVICES=1): {exc!r}")
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc!r}")
    _redis_flush()
    yield REDIS_URL
    _redis_flush()


@pytest.fixture(scope="module")
def topology(
    pg_cluster: PgCluster, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    pg_url = pg_cluster.create()
    tmp = tmp_path_factory.mktemp("topology")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    env.update(
        ENGRAM_DATABASE_URL=pg_url,
        ENGRAM_REDIS_URL=redis_url,
        ENGRAM_EMBEDDING_MODEL="hash",
        ENGRAM_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
        ENGRAM_DATABASE_POOL_SIZE="4",
        PYTHONUNBUFFERED="1",
    )
    top = Topology(pg_url, tmp, env)
    top.settings = Settings.build(
        database_url=pg_url, redis_url=redis_url, embedding_model="hash", data_dir=tmp / "admin"
    )
    try:
        # The worker first, alone: a job queued now can only be run by it.
        worker = top.start("worker", "worker", "--poll-interval", "0.1")
        created = top.cli(
            "server1", "keys", "create", "--tenant", "acme", "--scope", "write", "--json"
        )
        assert created.returncode == 0, created.stderr
        top.cli_key = json.loads(created.stdout)
        with top.db() as db:
            job = enqueue_batch(
                db.store,
                [
                    {"id": f"early-{i}", "text": f"Queued before any server ran, #{i}."}
                    for i in range(5)
                ],
                collection="early",
                tenant="acme",
            )
            top.worker_job = job.id
            _wait(
                lambda: db.store.get_job(job.id, tenant="acme").finished,
                "the worker did not run the job",
                top,
            )
        assert f"job {job.id} (acme) succeeded" in worker.output(), worker.output()
        for name in ("server1", "server2"):
            port = free_port()
            top.urls[name] = f"http://127.0.0.1:{port}"
            top.start(name, "serve", "--port", str(port))
        for name, url in top.urls.items():
            _wait(lambda url=url: _healthy(url), f"{name} did not start", top)  # type: ignore[misc]
        yield top
    finally:
        codes = {name: proc.stop() for name, proc in top.procs.items()}
        pg_cluster.drop(urlsplit(pg_url).path.lstrip("/"))
    # Every process stops cleanly on SIGTERM (uvicorn re-raises the signal once it has shut
    # down gracefully; the worker exits with 0).
    assert codes.pop("worker") == 0, top.logs()
    assert "engram worker" in top.procs["worker"].output()
    for name, code in codes.items():
        assert code in (0, -signal.SIGTERM), f"{name}: {code}\n{top.logs()}"
        assert "Application shutdown complete" in top.procs[name].output(), top.logs()


@pytest.fixture(autouse=True)
def _close_clients(topology: Topology) -> Iterator[None]:
    yield
    while topology.clients:
        topology.clients.pop().close()


def _client(topology: Topology, name: str, key: str) -> httpx.Client:
    client = httpx.Client(
        base_url=topology.urls[name], headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    topology.clients.append(client)
    return client


def _key(topology: Topology, tenant: str, *scopes: str) -> tuple[str, str]:
    """A fresh key (id, full key), made through the library on the shared database."""
    with topology.db() as db:
        record, full = db.create_key(tenant=tenant, scopes=scopes or ("read",))
    return record.id, full


def _search(client: httpx.Client, query: str, collection: str, **extra: Any) -> dict[str, Any]:
    res = client.post("/v1/search", json={"query": query, "collection": collection, **extra})
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def _docs(body: dict[str, Any]) -> list[str]:
    return [hit["document"] for hit in body["data"]]


# -- tests -----------------------------------------------------------------------------------
def test_every_server_is_ready_on_postgres_and_redis(topology: Topology) -> None:
    for name, url in topology.urls.items():
        res = httpx.get(f"{url}/v1/ready", timeout=10)
        assert res.status_code == 200, (name, res.text)
        checks = res.json()["checks"]
        assert res.json()["status"] == "ok", (name, checks)
        assert checks["store"]["details"]["backend"] == "postgres"
        assert checks["rls"]["details"] == {"role": PgCluster.ROLE, "enforced": True}
        assert checks["redis"]["status"] == "ok"


def test_cli_key_works_on_both_servers_and_revocation_reaches_both(topology: Topology) -> None:
    key = topology.cli_key["key"]
    s1, s2 = _client(topology, "server1", key), _client(topology, "server2", key)
    for client in (s1, s2):
        res = client.get("/v1/collections")
        assert res.status_code == 200, res.text
    # Revoked on server 1's host: server 1 refuses it at once (the stamp in its data
    # directory); server 2, on "another host", once it stops trusting what it verified.
    revoked = topology.cli("server1", "keys", "revoke", topology.cli_key["id"])
    assert revoked.returncode == 0 and "could not write" not in revoked.stderr, revoked.stderr
    started = time.monotonic()
    res = s1.get("/v1/collections")
    assert res.status_code == 401 and res.json()["error"]["message"] == "this API key was revoked"
    while s2.get("/v1/collections").status_code == 200:
        assert time.monotonic() - started < VERIFIED_TTL + 1.0, "server 2 still accepts the key"
        time.sleep(0.1)
    assert s2.get("/v1/collections").json()["error"]["message"] == "this API key was revoked"
    # A key never used on a server is checked against the database: refused everywhere.
    _, unused = _key(topology, "acme")
    with topology.db() as db:
        db.revoke_key(unused.split("_")[1])
    for name in ("server1", "server2"):
        assert _client(topology, name, unused).get("/v1/collections").status_code == 401


def test_revocation_is_refused_at_once_by_a_server_on_another_host(topology: Topology) -> None:
    key_id, key = _key(topology, "acme")
    s2 = _client(topology, "server2", key)
    assert s2.get("/v1/collections").status_code == 200  # verified, and remembered
    with topology.db("server1") as db:  # revoked on server 1's host
        db.revoke_key(key_id)
    assert s2.get("/v1/collections").status_code == 401


def test_revocation_stamp_needs_no_existing_data_directory(topology: Topology) -> None:
    key_id, key = _key(topology, "acme")
    s1 = _client(topology, "server1", key)
    data_dir = topology.tmp / "server1"
    shutil.rmtree(data_dir)  # as on a host where nothing created it
    try:
        assert s1.get("/v1/collections").status_code == 200  # verified, and remembered
        with topology.db("server1") as db:
            db.revoke_key(key_id)
        assert s1.get("/v1/collections").status_code == 401
    finally:
        data_dir.mkdir(exist_ok=True)


def test_a_write_through_one_server_is_searchable_through_the_other(topology: Topology) -> None:
    _, key = _key(topology, "acme", "write")
    s1, s2 = _client(topology, "server1", key), _client(topology, "server2", key)
    docs = [
        {"id": "otters", "text": "Sea otters hold hands while they sleep."},
        {"id": "owls", "text": "Owls turn their heads almost all the way around."},
    ]
    assert (
        s1.post("/v1/collections/zoo/documents:batch", json={"documents": docs}).status_code == 201
    )
    query = "which animal is a marsupial from Australia"
    first = _search(s1, query, "zoo")
    assert "quokka" not in _docs(first) and "cache" not in first["timings_ms"]
    # The result cache is shared: server 2 answers the same search from Redis...
    assert _search(s2, query, "zoo")["timings_ms"].keys() == {"cache"}
    # ...so a write through server 1 must make that entry unreachable for server 2 at once.
    quokka = {"id": "quokka", "text": "The quokka is a small marsupial from Australia."}
    assert s1.post("/v1/collections/zoo/documents", json=quokka).status_code == 201
    after = _search(s2, query, "zoo")
    assert "cache" not in after["timings_ms"] and _docs(after)[0] == "quokka", after
    # A new version through server 2 is what server 1 finds next.
    quokka["text"] = "The quokka is a small marsupial from Rottnest Island, Australia."
    assert s2.post("/v1/collections/zoo/documents", json=quokka).status_code == 200
    _search(s1, query, "zoo")  # cached again, at the new revision
    hit = _search(s1, query, "zoo")["data"][0]
    assert (hit["document"], hit["version"]) == ("quokka", 2) and "Rottnest" in hit["text"]
    # A deletion through server 1 removes it from server 2's answers.
    assert s1.delete("/v1/collections/zoo/documents/quokka").status_code == 204
    assert "quokka" not in _docs(_search(s2, query, "zoo"))
    assert s2.get("/v1/collections/zoo/documents/quokka").status_code == 404
    # Keyword search has its own cache entry: also fresh after a write on the other side.
    assert "quokka" not in _docs(_search(s2, "marsupial", "zoo", mode="keyword"))
    assert s1.post("/v1/collections/zoo/documents", json=quokka).status_code == 201
    assert _docs(_search(s2, "marsupial", "zoo", mode="keyword")) == ["quokka"]


def test_large_batch_posted_to_one_server_runs_as_a_job_readable_from_the_other(
    topology: Topology,
) -> None:
    _, key = _key(topology, "acme", "write")
    s1, s2 = _client(topology, "server1", key), _client(topology, "server2", key)
    docs = [
        {
            "id": f"d{i:03d}",
            "text": f"Document number {i} about topic {i % 7}.",
            "metadata": {"n": i},
        }
        for i in range(150)
    ]
    docs[42]["text"] = "The answer to everything is forty-two, said the computer."
    res = s1.post("/v1/collections/bulk/documents:batch", json={"documents": docs})
    assert res.status_code == 202, res.text
    job_id = res.json()["job_id"]
    assert res.headers["location"] == f"/v1/jobs/{job_id}"

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = s2.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = _wait(finished, "the batch job did not finish", topology, timeout=25)
    assert job["status"] == "succeeded", job
    assert job["result"]["added"] == 150 and job["errors"] == []
    progress = job["progress"]
    assert progress["documents_done"] == progress["documents_total"] == 150, progress
    assert _docs(_search(s2, "forty-two computer", "bulk", k=1)) == ["d042"]
    assert job["attempts"] == 1  # claimed once, by one of the three processes
    # The job run by the worker process before the servers started is readable too.
    early = s2.get(f"/v1/jobs/{topology.worker_job}").json()
    assert early["status"] == "succeeded" and early["result"]["added"] == 5, early


def test_the_rate_limit_is_one_budget_across_servers(topology: Topology) -> None:
    _, key = _key(topology, "acme")
    s1, s2 = _client(topology, "server1", key), _client(topology, "server2", key)
    started = time.monotonic()
    first = [s1.get("/v1/collections").status_code for _ in range(25)]
    assert first == [200] * 25
    second = [s2.get("/v1/collections") for _ in range(25)]
    elapsed = time.monotonic() - started
    codes = [r.status_code for r in second]
    # Separate budgets would give server 2 all 25; one budget leaves it about 15.
    assert 429 in codes, codes
    allowed = 25 + codes.count(200)
    refill = elapsed * RATE_LIMIT / 60
    assert RATE_LIMIT <= allowed <= RATE_LIMIT + refill + 1, (allowed, elapsed)
    refused = second[codes.index(429)]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # The budget is spent on server 1 too.
    assert s1.get("/v1/collections").status_code == 429


def test_tenants_stay_isolated_across_processes(topology: Topology) -> None:
    _, key_a = _key(topology, "tenant-a", "write")
    _, key_b = _key(topology, "tenant-b", "write")
    a1 = _client(topology, "server1", key_a)
    b1, b2 = _client(topology, "server1", key_b), _client(topology, "server2", key_b)
    secret = {"id": "plan", "text": "Tenant A plans to acquire the lighthouse company."}
    assert a1.post("/v1/collections/notes/documents", json=secret).status_code == 201
    query = "acquire the lighthouse company"
    assert _docs(_search(a1, query, "notes")) == ["plan"]  # now cached in Redis
    # Tenant B, on the other server: no such collection, document or job.
    res = b2.post("/v1/search", json={"query": query, "collection": "notes"})
    assert res.status_code == 404, res.text
    assert b2.get("/v1/collections/notes/documents/plan").status_code == 404
    assert b2.get("/v1/collections").json()["data"] == []
    # The same collection name and document key in tenant B hold B's text only, on
    # both servers, although the query is the one tenant A's result is cached under.
    mine = {"id": "plan", "text": "Tenant B plans a picnic near the lighthouse."}
    assert b2.post("/v1/collections/notes/documents", json=mine).status_code == 201
    for client in (b1, b2):
        hits = _search(client, query, "notes")["data"]
        assert [h["text"] for h in hits] == [mine["text"]]
    assert [h["text"] for h in _search(a1, query, "notes")["data"]] == [secret["text"]]
    # Tenant B's key cannot read tenant A's job either.
    res = a1.post(
        "/v1/collections/notes/documents:batch?async=true",
        json={"documents": [{"id": "x", "text": "A queued note."}]},
    )
    assert res.status_code == 202
    assert b2.get(f"/v1/jobs/{res.json()['job_id']}").status_code == 404
    assert res.json()["job_id"] not in [j["job_id"] for j in b2.get("/v1/jobs").json()["data"]]


def test_messages_appended_through_one_server_are_recalled_through_the_other(
    topology: Topology,
) -> None:
    """Conversation recall across server processes on one PostgreSQL (with the shared Redis
    result cache): each server indexes what it appends, and the other finds it at once."""
    _, key = _key(topology, "acme", "write")
    s1, s2 = _client(topology, "server1", key), _client(topology, "server2", key)
    conv = s1.post("/v1/conversations", json={"user_id": "ann"}).json()
    said = s1.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"role": "user", "content": "My landlord Mr Okafor raised the rent."},
    )
    assert said.status_code == 201, said.text

    def recall(client: httpx.Client, query: str, **extra: Any) -> list[str]:
        r = client.post("/v1/recall", json={"user_id": "ann", "query": query, **extra})
        assert r.status_code == 200, r.text
        return [h["message"]["content"] for h in r.json()["data"]]

    assert recall(s2, "landlord rent")[0] == "My landlord Mr Okafor raised the rent."
    other = s2.post("/v1/conversations", json={"user_id": "ann"}).json()
    s2.post(
        f"/v1/conversations/{other['id']}/messages:batch",
        json={"messages": [{"role": "user", "content": "The landlord fixed the heating."}]},
    )
    assert recall(s1, "landlord heating")[0] == "The landlord fixed the heating."
    only = recall(s1, "landlord", conversation_id=conv["id"])
    assert only == ["My landlord Mr Okafor raised the rent."]


def test_a_web_session_opened_on_one_server_works_on_the_other(topology: Topology) -> None:
    """Web sessions live in the shared database: signed in through server1, the browser's
    cookie works on server2, and signing out through server2 ends it on server1."""
    _, full = _key(topology, "acme", "read")
    one = httpx.Client(base_url=topology.urls["server1"], timeout=30)
    two = httpx.Client(base_url=topology.urls["server2"], timeout=30)
    topology.clients += [one, two]
    form = one.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text[:300]
    r = one.post("/sign-in", data={"credential": full, "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text
    two.cookies.set("engram_session", one.cookies["engram_session"])
    page = two.get("/search")
    assert page.status_code == 200, page.text[:300]
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token
    headers = {"X-CSRF-Token": token.group(1)}
    assert two.get("/v1/collections", headers=headers).status_code == 200
    assert one.get("/v1/collections", headers=headers).status_code == 200
    r = two.post("/sign-out", data={"csrf": token.group(1)})
    assert r.status_code == 303
    one_page = one.get("/search")
    assert one_page.status_code == 303 and one_page.headers["location"].startswith("/sign-in")
