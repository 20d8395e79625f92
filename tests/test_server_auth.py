"""Authentication, scopes, tenant isolation on every route, and rate limits over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.server.app import create_app

SECRET = "Project Nightingale launches on the ninth of March."


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.build(data_dir=tmp_path, embedding_model="hash", chunk_tokens=64)


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    with engram.open(settings=settings) as db:
        return {
            "acme_admin": db.create_key(tenant="acme", scopes=["admin"])[1],
            "acme_read": db.create_key(tenant="acme", scopes=["read"])[1],
            "acme_write": db.create_key(tenant="acme", scopes=["write"])[1],
            "globex_admin": db.create_key(tenant="globex", scopes=["admin"])[1],
        }


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_requests_need_a_valid_key(client: TestClient, keys: dict[str, str]) -> None:
    missing = client.get("/v1/collections")
    assert missing.status_code == 401 and error_code(missing) == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for headers in (
        {"Authorization": "Basic abc"},
        auth("egm_nope"),
        auth(keys["acme_read"] + "x"),
    ):
        r = client.get("/v1/collections", headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
    assert (
        client.get("/v1/collections", headers={"X-API-Key": keys["acme_read"]}).status_code == 200
    )
    assert client.get("/v1/health").status_code == 200  # liveness needs no key


def test_scopes(client: TestClient, keys: dict[str, str]) -> None:
    doc = {"id": "d1", "text": SECRET}
    denied = client.post("/v1/collections/kb/documents", json=doc, headers=auth(keys["acme_read"]))
    assert denied.status_code == 403 and error_code(denied) == "forbidden"
    assert (
        client.post(
            "/v1/collections/kb/documents", json=doc, headers=auth(keys["acme_write"])
        ).status_code
        == 201
    )
    found = client.post(
        "/v1/search",
        json={"query": "nightingale", "collection": "kb"},
        headers=auth(keys["acme_read"]),
    )
    assert found.status_code == 200 and found.json()["data"][0]["document"] == "d1"
    assert client.delete("/v1/collections/kb", headers=auth(keys["acme_write"])).status_code == 403
    assert client.delete("/v1/collections/kb", headers=auth(keys["acme_admin"])).status_code == 204


def test_revoked_key_is_refused_at_once(client: TestClient, settings: Settings) -> None:
    with engram.open(settings=settings) as db:
        record, key = db.create_key(tenant="acme", scopes=["read"])
    assert client.get("/v1/collections", headers=auth(key)).status_code == 200
    with engram.open(settings=settings) as db:  # revoked by another process (the CLI)
        db.revoke_key(record.id)
    refused = client.get("/v1/collections", headers=auth(key))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def _route_calls(client: TestClient, ids: dict[str, str]) -> list[tuple[str, str, str, dict]]:
    """Every authenticated route, aimed at acme's collection, document, memory, conversation
    and user: (method, path template, concrete path, request kwargs)."""
    bodies = {
        ("POST", "/v1/collections/{name}/documents"): {"json": {"id": "d1", "text": "globex"}},
        ("POST", "/v1/collections/{name}/documents:batch"): {
            "json": {"documents": [{"id": "d1", "text": "globex"}]}
        },
        ("POST", "/v1/collections/{name}/files"): {
            "files": {"file": ("d1.txt", b"globex", "text/plain")}
        },
        ("POST", "/v1/collections"): {"json": {"name": "kb", "language": "en"}},
        ("POST", "/v1/collections/{name}/versions:purge"): {"json": {"keep": 1}},
        ("POST", "/v1/search"): {"json": {"query": "nightingale", "collection": "kb"}},
        ("GET", "/v1/collections/{name}/suggest"): {"params": {"q": "nigh"}},
        ("POST", "/v1/chat"): {"json": {"question": "nightingale?", "collection": "kb"}},
        ("POST", "/v1/chat/completions"): {
            "json": {
                "model": "engram/kb",
                "messages": [{"role": "user", "content": "nightingale?"}],
            }
        },
        ("POST", "/v1/embeddings"): {"json": {"model": "engram", "input": "nightingale"}},
        ("POST", "/v1/memories"): {"json": {"content": "globex memory", "user_id": "u1"}},
        ("GET", "/v1/memories"): {"params": {"user_id": "u1"}},
        ("POST", "/v1/memories/search"): {"json": {"query": "nightingale", "user_id": "u1"}},
        ("PATCH", "/v1/memories/{memory_id}"): {"json": {"content": "globex rewrite"}},
        ("POST", "/v1/conversations"): {"json": {"user_id": "u1"}},
        ("GET", "/v1/conversations"): {"params": {"user_id": "u1"}},
        ("POST", "/v1/conversations/{conversation_id}/messages"): {
            "json": {"role": "user", "content": "globex"}
        },
        ("POST", "/v1/conversations/{conversation_id}/messages:batch"): {
            "json": {"messages": [{"role": "user", "content": "globex"}]}
        },
        ("POST", "/v1/recall"): {"json": {"query": "nightingale", "user_id": "u1"}},
        ("POST", "/v1/events"): {"json": {"kind": "click", "document": "d1"}},
        ("POST", "/v1/admin/event-kinds"): {"json": {"name": "signup", "schema": {}}},
        ("PUT", "/v1/state/{path}"): {"json": {"value": "globex state"}},
        ("POST", "/v1/state:search"): {"json": {"prefix": ["user"], "query": "nightingale"}},
        ("POST", "/v1/state:namespaces"): {"json": {}},
    }
    calls = []
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        if template in ("/v1/health", "/v1/ready"):
            continue
        path = template
        for name, value in (
            ("{name}", "kb"),
            ("{key}", "d1"),
            ("{version}", "1"),
            ("{memory_id}", ids["memory"]),
            ("{conversation_id}", ids["conversation"]),
            ("{user_id}", "u1"),
            ("{job_id}", ids["job"]),
            ("{path}", "user/u1/notes"),
            ("{kind}", "signup"),
        ):
            path = path.replace(name, value)
        for method in (m.upper() for m in operations):
            calls.append((method, template, path, bodies.get((method, template), {})))
    return calls


# What globex may see when it aims at acme's things: its own (empty) world, never acme's.
CREATES = {
    "/v1/collections",
    "/v1/collections/{name}/documents",
    "/v1/collections/{name}/documents:batch",
    "/v1/collections/{name}/files",
    "/v1/memories",
    "/v1/conversations",
    "/v1/state/{path}",
    "/v1/admin/event-kinds",
}
EMPTY_LISTS = {
    "/v1/admin/event-kinds",
    "/v1/models",
    "/v1/recall",
    "/v1/state",
    "/v1/state:search",
    "/v1/state:namespaces",
    "/v1/collections",
    "/v1/memories",
    "/v1/memories/search",
    "/v1/conversations",
    "/v1/jobs",
    "/v1/admin/imports",
}


def test_no_route_crosses_tenants(client: TestClient, keys: dict[str, str]) -> None:
    acme, globex = auth(keys["acme_admin"]), auth(keys["globex_admin"])
    assert (
        client.post(
            "/v1/collections/kb/documents", json={"id": "d1", "text": SECRET}, headers=acme
        ).status_code
        == 201
    )
    memory = client.post(
        "/v1/memories", json={"content": SECRET, "user_id": "u1"}, headers=acme
    ).json()
    conversation = client.post("/v1/conversations", json={"user_id": "u1"}, headers=acme).json()
    client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"role": "user", "content": SECRET},
        headers=acme,
    )
    kind = {"name": "signup", "schema": {"description": SECRET}}
    assert client.post("/v1/admin/event-kinds", json=kind, headers=acme).status_code == 201
    note = client.put("/v1/state/user/u1/notes", json={"value": SECRET}, headers=acme)
    assert note.status_code == 201
    job = client.post(
        "/v1/collections/kb/documents:batch?async=true",
        json={"documents": [{"id": "d2", "text": SECRET}]},
        headers=acme,
    ).json()
    ids = {"memory": memory["id"], "conversation": conversation["id"], "job": job["job_id"]}
    calls = _route_calls(client, ids)
    assert len(calls) >= 20
    # Reads first, then deletes and erasure, then globex's own writes.
    rank = {"GET": 0, "PATCH": 1, "DELETE": 2, "POST": 3, "PUT": 3}

    def order(call: tuple[str, str, str, dict]) -> tuple[int, bool]:
        method, template = call[0], call[1]
        reads_only = template in (
            "/v1/search",
            "/v1/memories/search",
            "/v1/recall",
            "/v1/chat",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/state:search",
            "/v1/state:namespaces",
        )
        return (0 if reads_only else rank[method], template == "/v1/users/{user_id}")

    for method, template, path, kwargs in sorted(calls, key=order):
        r = client.request(method, path, headers=globex, **kwargs)
        assert "Nightingale" not in r.text, f"{method} {path} leaked acme's data"
        where = f"{method} {template} -> {r.status_code} {r.text[:200]}"
        if template in EMPTY_LISTS and not (method == "POST" and template in CREATES):
            assert r.status_code == 200 and r.json()["data"] == [], where
        elif template == "/v1/users/{user_id}/export":
            assert r.status_code == 200, where
        elif template == "/v1/users/{user_id}":
            assert r.status_code == 200 and set(r.json().values()) == {0}, where
        elif method in ("POST", "PUT") and template in CREATES:
            assert r.status_code in (200, 201), where
        elif template == "/v1/admin/stats":  # globex's own usage: acme's message is not in it
            assert r.status_code == 200 and "message" not in r.json()["counts"], where
        elif template == "/v1/events":
            assert r.status_code == 202, where
        elif template == "/v1/admin/events":  # globex's own events (its logins) only
            assert r.status_code == 200, where
            assert all(line.startswith('{"id"') for line in r.text.splitlines()), where
        elif template == "/v1/embeddings":  # the model's, no data of anyone's
            assert r.status_code == 200, where
        elif method == "POST" and template.endswith((":purge", ":restore")):
            # Run after globex's own writes: they act on globex's own "kb" (or find none).
            assert r.status_code in (200, 404), where
            assert r.status_code == 404 or "globex" in r.text or r.json() == {"deleted": 0}
        else:
            assert r.status_code == 404, where
    # Everything of acme's is intact.
    assert client.get("/v1/collections/kb/documents/d1", headers=acme).json()["version"] == 1
    kept = client.get("/v1/collections/kb/documents/d1/versions/1", headers=acme).json()
    assert kept["text"] == SECRET
    assert client.get(f"/v1/memories/{memory['id']}", headers=acme).json()["content"] == SECRET
    messages = client.get(f"/v1/conversations/{conversation['id']}/messages", headers=acme).json()
    assert [m["content"] for m in messages["data"]] == [SECRET]
    assert client.get(f"/v1/jobs/{job['job_id']}", headers=acme).json()["job_id"] == job["job_id"]
    acme_note = client.get("/v1/state/user/u1/notes", headers=acme).json()
    assert acme_note["value"] == SECRET and acme_note["version"] == 1
    hits = client.post(
        "/v1/search", json={"query": "globex", "collection": "kb", "mode": "keyword"}, headers=acme
    )
    assert hits.json()["data"] == []


def test_rate_limit_per_key(settings: Settings, keys: dict[str, str]) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 2})
    with TestClient(create_app(limited)) as c:
        assert [
            c.get("/v1/collections", headers=auth(keys["acme_read"])).status_code for _ in range(2)
        ] == [200, 200]
        refused = c.get("/v1/collections", headers=auth(keys["acme_read"]))
        assert refused.status_code == 429 and error_code(refused) == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        # Another key has its own budget.
        assert c.get("/v1/collections", headers=auth(keys["acme_admin"])).status_code == 200


def test_jwt_from_an_identity_provider(settings: Settings) -> None:
    import time as _time

    import jwt

    secret = "a-shared-secret-of-at-least-32-bytes!"
    idp = settings.model_copy(
        update={"jwt_secret": secret, "jwt_issuer": "https://idp.example", "jwt_audience": "engram"}
    )

    def token(**claims: object) -> str:
        base = {
            "iss": "https://idp.example",
            "aud": "engram",
            "sub": "alice",
            "tenant": "acme",
            "scope": "read write",
            "exp": int(_time.time()) + 60,
        }
        return jwt.encode({**base, **claims}, secret, algorithm="HS256")

    with TestClient(create_app(idp)) as c:
        ok = c.post(
            "/v1/collections/kb/documents", json={"id": "d1", "text": SECRET}, headers=auth(token())
        )
        assert ok.status_code == 201, ok.text
        assert c.get("/v1/collections", headers=auth(token(tenant="globex"))).json()["data"] == []
        assert c.delete("/v1/collections/kb", headers=auth(token())).status_code == 403  # no admin
        for bad in (
            token(exp=int(_time.time()) - 10),
            token(aud="other"),
            token(iss="https://evil"),
            jwt.encode(
                {"tenant": "acme", "exp": int(_time.time()) + 60},
                "wrong-secret-wrong-secret-wrong!!",
                algorithm="HS256",
            ),
            token(tenant=None),
        ):
            r = c.get("/v1/collections", headers=auth(bad))
            assert r.status_code == 401 and error_code(r) == "unauthorized", r.text


def test_cors_only_from_the_allowlist(settings: Settings) -> None:
    with TestClient(create_app(settings)) as c:  # none by default
        r = c.options(
            "/v1/search",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in r.headers
    allowed = settings.model_copy(update={"cors_origins": ["https://app.example.com"]})
    with TestClient(create_app(allowed)) as c:
        ok = c.options(
            "/v1/search",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
        other = c.options(
            "/v1/search",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers


def test_revocation_on_postgres_without_redis_is_refused_at_once_by_another_host(
    tmp_path: Path, pg_url: str
) -> None:
    """Two servers sharing only the database (separate data directories, as on two hosts, and
    no Redis to carry a revocation): neither may keep trusting a key it verified."""
    one, two = (
        Settings.build(
            data_dir=tmp_path / name, embedding_model="hash", database_url=pg_url, redis_url=None
        )
        for name in ("one", "two")
    )
    with engram.open(settings=one) as db:
        key, secret = db.create_key(tenant="acme", scopes=["read"])
    with TestClient(create_app(two)) as client:
        assert client.get("/v1/collections", headers=auth(secret)).status_code == 200
        with engram.open(settings=one) as db:
            db.revoke_key(key.id)
        r = client.get("/v1/collections", headers=auth(secret))
        assert r.status_code == 401 and error_code(r) == "unauthorized"
