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


def _route_calls(client: TestClient) -> list[tuple[str, str, dict]]:
    """Every authenticated /v1 route, aimed at acme's collection 'kb' and document 'd1'."""
    calls = []
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        if template in ("/v1/health", "/v1/ready"):
            continue
        path = template.replace("{name}", "kb").replace("{key}", "d1")
        for method in (m.upper() for m in operations):
            kwargs: dict = {}
            if path.endswith("/documents") and method == "POST":
                kwargs["json"] = {"id": "d1", "text": "globex overwrites"}
            elif path.endswith(":batch"):
                kwargs["json"] = {"documents": [{"id": "d1", "text": "globex overwrites"}]}
            elif path.endswith("/files"):
                kwargs["files"] = {"file": ("d1.txt", b"globex overwrites", "text/plain")}
            elif path == "/v1/search":
                kwargs["json"] = {"query": "nightingale", "collection": "kb"}
            calls.append((method, path, kwargs))
    return calls


def test_no_route_crosses_tenants(client: TestClient, keys: dict[str, str]) -> None:
    acme, globex = auth(keys["acme_admin"]), auth(keys["globex_admin"])
    assert (
        client.post(
            "/v1/collections/kb/documents", json={"id": "d1", "text": SECRET}, headers=acme
        ).status_code
        == 201
    )
    calls = _route_calls(client)
    assert {p for _, p, _ in calls} >= {
        "/v1/collections",
        "/v1/collections/kb",
        "/v1/collections/kb/documents",
        "/v1/search",
    }
    # Reads and deletes first (writes would create globex's own 'kb').
    order = sorted(calls, key=lambda c: c[0] == "POST" and c[1] != "/v1/search")
    for method, path, kwargs in order:
        r = client.request(method, path, headers=globex, **kwargs)
        assert "Nightingale" not in r.text, f"{method} {path} leaked acme's document"
        if method == "GET" and path == "/v1/collections":
            assert r.status_code == 200 and r.json()["data"] == []
        elif method in ("GET", "DELETE") or path == "/v1/search":
            assert r.status_code == 404, f"{method} {path} -> {r.status_code}"
        else:
            assert r.status_code in (200, 201), f"{method} {path} -> {r.status_code} {r.text}"
    # Acme's document is untouched by everything globex did.
    r = client.get("/v1/collections/kb/documents/d1", headers=acme)
    assert r.status_code == 200 and r.json()["version"] == 1
    hits = client.post(
        "/v1/search",
        json={"query": "globex overwrites", "collection": "kb", "mode": "keyword"},
        headers=acme,
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
