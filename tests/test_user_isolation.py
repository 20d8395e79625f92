"""Per-user reach inside a tenant: a key (or JWT) bound to one user reaches only that user's
conversations, memories and state, on every route, on both backends; tenant-wide keys keep
their reach."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from test_server_auth import SECRET, _route_calls, auth

import engram
from engram.config import Settings
from engram.errors import InvalidInput
from engram.server.app import create_app


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Settings.build(
        data_dir=tmp_path, embedding_model="hash", chunk_tokens=64, database_url=url,
        jwt_secret="s" * 32, jwt_user_claim="sub",
    )  # fmt: skip


@pytest.fixture
def keys(settings: Settings) -> dict[str, str]:
    with engram.open(settings=settings) as db:
        return {
            "admin": db.create_key(tenant="acme", scopes=["admin"])[1],
            "ann": db.create_key(tenant="acme", scopes=["read", "write"], user_id="ann")[1],
            "bob": db.create_key(tenant="acme", scopes=["read", "write"], user_id="bob")[1],
        }


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_a_user_bound_key_cannot_be_an_admin(settings: Settings) -> None:
    with engram.open(settings=settings) as db, pytest.raises(InvalidInput):
        db.create_key(tenant="acme", scopes=["admin"], user_id="ann")
    with engram.open(settings=settings) as db:
        record, _ = db.create_key(tenant="acme", scopes=["read"], user_id="ann")
        assert [k.user_id for k in db.keys(tenant="acme") if k.id == record.id] == ["ann"]


def test_no_route_crosses_users(client: TestClient, keys: dict[str, str]) -> None:
    ann, bob = auth(keys["ann"]), auth(keys["bob"])
    memory = client.post("/v1/memories", json={"content": SECRET, "user_id": "ann"}, headers=ann)
    assert memory.status_code == 201, memory.text
    conversation = client.post("/v1/conversations", json={"user_id": "ann"}, headers=ann).json()
    client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"role": "user", "content": SECRET},
        headers=ann,
    )
    assert (
        client.put("/v1/state/user/ann/notes", json={"value": SECRET}, headers=ann).status_code
        == 201
    )
    ids = {"memory": memory.json()["id"], "conversation": conversation["id"], "job": "job_none"}
    calls = _route_calls(client, ids)
    calls = [
        (method, template, path.replace("user/u1/notes", "user/ann/notes"), kwargs)
        for method, template, path, kwargs in calls
    ]
    for method, template, path, kwargs in calls:
        kwargs = {**kwargs}
        if "params" in kwargs and kwargs["params"].get("user_id") == "u1":
            kwargs["params"] = {**kwargs["params"], "user_id": "ann"}
        body = kwargs.get("json")
        if isinstance(body, dict) and body.get("user_id") == "u1":
            kwargs["json"] = {**body, "user_id": "ann"}
        r = client.request(method, path.replace("/users/u1", "/users/ann"), headers=bob, **kwargs)
        where = f"{method} {template} -> {r.status_code} {r.text[:200]}"
        assert "Nightingale" not in r.text, f"{method} {path} leaked ann's data to bob"
        if r.status_code >= 400:
            assert r.status_code in (403, 404, 409, 422), where
    # Ann's things are intact and still hers.
    assert client.get(f"/v1/memories/{ids['memory']}", headers=ann).json()["content"] == SECRET
    msgs = client.get(f"/v1/conversations/{ids['conversation']}/messages", headers=ann).json()
    assert [m["content"] for m in msgs["data"]] == [SECRET]
    assert client.get("/v1/state/user/ann/notes", headers=ann).json()["value"] == SECRET


def test_what_a_bound_key_sees(client: TestClient, keys: dict[str, str]) -> None:
    ann, bob, admin = auth(keys["ann"]), auth(keys["bob"]), auth(keys["admin"])
    memory = client.post(
        "/v1/memories", json={"content": SECRET, "user_id": "ann"}, headers=ann
    ).json()
    # Naming another user is refused; another user's rows look missing.
    r = client.get("/v1/memories", params={"user_id": "ann"}, headers=bob)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get(f"/v1/memories/{memory['id']}", headers=bob).status_code == 404
    assert client.delete(f"/v1/memories/{memory['id']}", headers=bob).status_code == 404
    # State: a bound key lives under user/<id>; listings narrow to it.
    assert client.put("/v1/state/user/bob/x", json={"value": 1}, headers=bob).status_code == 201
    assert client.put("/v1/state/shared/x", json={"value": 1}, headers=bob).status_code == 403
    assert client.put("/v1/state/shared/x", json={"value": 2}, headers=admin).status_code == 201
    listed = client.get("/v1/state", headers=bob).json()["data"]
    assert [(i["namespace"], i["key"]) for i in listed] == [(["user", "bob"], "x")]
    assert client.get("/v1/state", params={"prefix": "user/ann"}, headers=bob).status_code == 403
    everything = client.get("/v1/state", headers=admin).json()["data"]
    assert len(everything) == 2  # a tenant-wide key sees every user
    # Admin routes are out of reach (no admin scope), the tenant-wide admin keeps them.
    assert client.get("/v1/users/ann/export", headers=bob).status_code == 403
    assert SECRET in client.get("/v1/users/ann/export", headers=admin).text
    # Chat with another user's conversation: missing.
    conv = client.post("/v1/conversations", json={"user_id": "ann"}, headers=ann).json()
    chat = client.post(
        "/v1/chat",
        json={"question": "when?", "collection": "kb", "conversation_id": conv["id"]},
        headers=bob,
    )
    assert chat.status_code == 404
    # OpenAI's ``user`` names the engram user: another one is refused.
    completion = client.post(
        "/v1/chat/completions",
        json={
            "model": "engram/kb",
            "messages": [{"role": "user", "content": "when?"}],
            "user": "ann",
        },
        headers=bob,
    )
    assert completion.status_code == 403


def test_a_jwt_names_its_user_in_the_configured_claim(client: TestClient) -> None:
    def token(**claims: object) -> dict[str, str]:
        body = {"tenant": "acme", "scope": "read write", "exp": int(time.time()) + 60, **claims}
        return auth(jwt.encode(body, "s" * 32, algorithm="HS256"))

    ann, bob = token(sub="ann"), token(sub="bob")
    assert (
        client.post(
            "/v1/memories", json={"content": SECRET, "user_id": "ann"}, headers=ann
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/v1/memories", json={"content": "x", "user_id": "ann"}, headers=bob
        ).status_code
        == 403
    )
    refused = client.get("/v1/collections", headers=token())  # no "sub" claim
    assert refused.status_code == 401
