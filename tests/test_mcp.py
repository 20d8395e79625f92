"""The MCP server (engram.mcp), driven by the official SDK's client: over stdio (`engram mcp`
as a subprocess) and over streamable HTTP (/mcp of a real uvicorn server), with real
databases. Every tool is called; keys of another tenant, read-only keys, user-bound keys and
wrong keys are refused as on the /v1 API."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from live import serve_app
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

import engram
from engram.cli import cli
from engram.config import Settings
from engram.mcp.resources import document_uri, parse_uri
from engram.mcp.tools import TOOLS
from engram.server.app import create_app

REPO = Path(__file__).resolve().parent.parent
FACT = "Project Nightingale launches on the ninth of March, from the Lisbon office."
SEAT = "I always book a window seat on long flights."


# -- helpers -------------------------------------------------------------------------------------
async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> Any:
    """The structured result of a tool call that must succeed."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content)
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content  # the same JSON, as text too
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The error body of a tool call that must fail: the API's {"error": {...}} shape."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.content)
    body = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert body == result.structured_content and set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    return error


def populate(settings: Settings, tenant: str) -> None:
    """A past conversation of alice, for recall."""
    with engram.open(settings=settings) as db:
        conversation = db.memory.create_conversation("alice", tenant=tenant)
        db.memory.append(conversation.id, "user", SEAT, tenant=tenant)
        db.memory.append(conversation.id, "assistant", "Noted: window seats.", tenant=tenant)


async def exercise(client: Client) -> None:
    """List the tools, call each one, read the document resources; the caller may write
    in its tenant and is bound to no user."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == set(TOOLS)
    for tool in listed.values():
        assert tool.description and tool.input_schema["type"] == "object"
    assert listed["search"].input_schema["required"] == ["query"]
    assert listed["search"].annotations and listed["search"].annotations.read_only_hint
    assert listed["delete_document"].annotations.destructive_hint  # type: ignore[union-attr]

    key = "guides/launch.md"  # a key with a slash
    added = await ok(
        client,
        "add_document",
        {"collection": "kb", "key": key, "text": "Draft.", "metadata": {"team": "ops"}},
    )
    assert added["added"] == 1
    updated = await ok(
        client, "update_document", {"collection": "kb", "key": key, "text": FACT, "title": "Launch"}
    )
    assert updated["updated"] == 1
    missing = await refused(
        client, "update_document", {"collection": "kb", "key": "x", "text": "y"}
    )
    assert missing["code"] == "document_not_found"

    collections = await ok(client, "list_collections", {})
    assert [c["name"] for c in collections["data"]] == ["kb"]
    docs = await ok(client, "list_documents", {"collection": "kb"})
    assert [(d["key"], d["version"], d["metadata"]) for d in docs["data"]] == [
        (key, 2, {"team": "ops"})  # the update kept the metadata
    ]
    found = await ok(
        client, "search", {"query": "nightingale", "collection": "kb", "where": {"team": "ops"}}
    )
    assert found["data"][0]["document"] == key and found["data"][0]["title"] == "Launch"
    none = await ok(
        client, "search", {"query": "nightingale", "collection": "kb", "where": {"team": "hr"}}
    )
    assert none["count"] == 0
    # Several collections (or "*") as one ranking; each hit names its collection.
    for searched in (["kb"], "*"):
        many = await ok(
            client,
            "search",
            {"query": "nightingale", "collection": searched, "group_by": "document"},
        )
        assert many["data"][0]["collection"] == "kb" and many["data"][0]["document"] == key
    answer = await ok(
        client, "ask", {"question": "When does Nightingale launch?", "collection": "kb"}
    )
    assert "March" in answer["text"] and answer["citations"][0]["document"] == key

    # documents as resources
    listing = await client.list_resources()
    uri = document_uri("kb", key)
    assert [(r.uri, r.name, r.title) for r in listing.resources] == [(uri, key, "Launch")]
    read = await client.read_resource(uri)
    assert read.contents[0].text == FACT  # type: ignore[union-attr]
    templates = await client.list_resource_templates()
    assert templates.resource_templates[0].uri_template == (
        "engram://collections/{collection}/documents/{key}"
    )
    with pytest.raises(MCPError) as gone:
        await client.read_resource(document_uri("kb", "nope"))
    assert gone.value.code == -32002 and gone.value.data["code"] == "document_not_found"

    # memories and conversations
    memory = await ok(client, "remember", {"content": "Alice is vegetarian.", "user_id": "alice"})
    hits = await ok(client, "search_memories", {"query": "vegetarian", "user_id": "alice"})
    assert [h["id"] for h in hits["data"]] == [memory["id"]]
    nobody = await refused(client, "remember", {"content": "x"})
    assert nobody["code"] == "invalid_input" and "user_id" in nobody["message"] and nobody["hint"]
    recalled = await ok(client, "recall", {"query": "window seat", "user_id": "alice"})
    assert recalled["data"][0]["message"]["content"] == SEAT
    assert await ok(client, "forget", {"memory_id": memory["id"]}) == {"forgotten": memory["id"]}
    after = await ok(client, "search_memories", {"query": "vegetarian", "user_id": "alice"})
    assert after["count"] == 0

    # agent state
    put = await ok(
        client,
        "put_state",
        {"namespace": "user/alice/planner", "key": "plan", "value": {"step": 1}},
    )
    assert put["version"] == 1
    got = await ok(client, "get_state", {"namespace": "user/alice/planner", "key": "plan"})
    assert got["value"] == {"step": 1} and got["namespace"] == ["user", "alice", "planner"]
    stale = await refused(
        client,
        "put_state",
        {"namespace": "user/alice/planner", "key": "plan", "value": 2, "if_version": 5},
    )
    assert stale["code"] == "version_conflict"
    listed_state = await ok(client, "list_state", {"prefix": "user/alice"})
    assert [i["key"] for i in listed_state["data"]] == ["plan"]

    # an error arrives as a tool error, with the API's message and hint
    unknown = await refused(client, "search", {"query": "x", "collection": "nope"})
    assert unknown["code"] == "collection_not_found"
    assert unknown["message"] == "no collection named 'nope'" and "kb" in unknown["hint"]
    invalid = await refused(client, "search", {"query": "x", "k": 0})
    assert invalid["code"] == "invalid_request" and invalid["message"].startswith("k:")

    deleted = await ok(client, "delete_document", {"collection": "kb", "key": key})
    assert deleted == {"deleted": key, "collection": "kb"}
    assert (await refused(client, "delete_document", {"collection": "kb", "key": key}))[
        "code"
    ] == "document_not_found"


def run(session: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(session())  # type: ignore[arg-type]


# -- stdio ---------------------------------------------------------------------------------------
def stdio(data_dir: Path, *args: str) -> StdioServerParameters:
    """`engram mcp` on ``data_dir``, run from this source tree."""
    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-c",
            "from engram.cli import main; main()",
            "--data-dir",
            str(data_dir),
            "mcp",
            *args,
        ],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "ENGRAM_EMBEDDING_MODEL": "hash",
        },
    )


def test_stdio_serves_every_tool_and_the_documents(tmp_path: Path) -> None:
    data = tmp_path / "data"
    populate(Settings.build(data_dir=data, embedding_model="hash"), "team")

    async def session() -> None:
        async with Client(stdio(data, "--tenant", "team")) as client:
            await exercise(client)
        # Another tenant, on the same data directory, sees none of it.
        async with Client(stdio(data)) as other:
            assert (await ok(other, "list_collections", {}))["count"] == 0
            assert (await other.list_resources()).resources == []

    run(session)


def test_stdio_bound_to_a_user_and_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with engram.open(data, embedding_model="hash") as db:
        db.add([{"id": "a", "text": FACT}], collection="kb")
        kept = db.memory.add("Bob likes tea.", user_id="bob")

    async def session() -> None:
        async with Client(stdio(data, "--user", "alice")) as client:
            memory = await ok(client, "remember", {"content": "Alice likes coffee."})
            assert memory["user_id"] == "alice"
            other = await refused(client, "remember", {"content": "x", "user_id": "bob"})
            assert other["code"] == "forbidden"
            assert (await refused(client, "forget", {"memory_id": kept.id}))[
                "code"
            ] == "memory_not_found"  # another user's memory looks missing
            outside = await refused(
                client, "put_state", {"namespace": "team", "key": "k", "value": 1}
            )
            assert outside["code"] == "forbidden"
        async with Client(stdio(data, "--read-only")) as reader:
            names = {t.name for t in (await reader.list_tools()).tools}
            assert "search" in names and "add_document" not in names
            denied = await refused(reader, "add_document", {"key": "b", "text": "x"})
            assert denied["code"] == "forbidden" and denied["hint"]
            assert (await ok(reader, "search", {"query": "nightingale", "collection": "kb"}))[
                "count"
            ] == 1

    run(session)


# -- streamable HTTP on engram serve ----------------------------------------------------------------
@asynccontextmanager
async def over_http(url: str, key: str) -> AsyncIterator[Client]:
    """The SDK's client on /mcp of ``url``, sending ``key`` as the API does."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


@pytest.fixture
def keys_and_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict, str]]:
    database_url = request.getfixturevalue("pg_url") if getattr(request, "param", "") else None
    settings = Settings.build(
        data_dir=tmp_path / "data", embedding_model="hash", database_url=database_url
    )
    with engram.open(settings=settings) as db:
        keys = {
            "acme": db.create_key(tenant="acme", scopes=["write"])[1],
            "acme_read": db.create_key(tenant="acme", scopes=["read"])[1],
            "bob": db.create_key(tenant="acme", scopes=["write"], user_id="bob")[1],
            "globex": db.create_key(tenant="globex", scopes=["admin"])[1],
        }
    populate(settings, "acme")
    with serve_app(create_app(settings)) as url:
        yield keys, url


async def tenants_are_apart(url: str, keys: dict[str, str]) -> None:
    """globex (even an admin key) reaches none of acme's data; acme's stays as it was."""
    async with over_http(url, keys["acme"]) as acme:
        await ok(acme, "add_document", {"collection": "kb", "key": "secret", "text": FACT})
        memory = await ok(acme, "remember", {"content": "Alice is vegetarian.", "user_id": "alice"})
    async with over_http(url, keys["globex"]) as globex:
        missing = await refused(globex, "search", {"query": "nightingale", "collection": "kb"})
        assert missing["code"] == "collection_not_found"
        assert (await ok(globex, "list_collections", {}))["count"] == 0
        assert (await globex.list_resources()).resources == []
        with pytest.raises(MCPError):
            await globex.read_resource(document_uri("kb", "secret"))
        assert (await refused(globex, "forget", {"memory_id": memory["id"]}))[
            "code"
        ] == "memory_not_found"
        # A write lands in globex's own collection of that name.
        await ok(globex, "add_document", {"collection": "kb", "key": "secret", "text": "globex"})
        assert (await ok(globex, "recall", {"query": "window seat", "user_id": "alice"}))[
            "count"
        ] == 0
    async with over_http(url, keys["acme"]) as acme:
        read = await acme.read_resource(document_uri("kb", "secret"))
        assert read.contents[0].text == FACT  # type: ignore[union-attr]
        hits = await ok(acme, "search_memories", {"query": "vegetarian", "user_id": "alice"})
        assert hits["count"] == 1


def test_http_serves_every_tool_with_the_api_keys(keys_and_url: tuple[dict, str]) -> None:
    keys, url = keys_and_url

    async def session() -> None:
        async with over_http(url, keys["acme"]) as client:
            await exercise(client)
        await tenants_are_apart(url, keys)
        async with over_http(url, keys["acme_read"]) as reader:
            names = {t.name for t in (await reader.list_tools()).tools}
            assert "search" in names and "put_state" not in names
            denied = await refused(reader, "put_state", {"namespace": "a", "key": "b", "value": 1})
            assert denied == {
                "code": "forbidden",
                "message": "this operation needs the 'write' scope",
                "hint": "use a key created with --scope write",
            }
        async with over_http(url, keys["bob"]) as bob:
            other = await refused(bob, "recall", {"query": "window", "user_id": "alice"})
            assert other["code"] == "forbidden"
            mine = await ok(bob, "remember", {"content": "Bob likes tea."})
            assert mine["user_id"] == "bob"
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises the 401 in a task group
            async with over_http(url, keys["acme"] + "x") as wrong:
                await wrong.list_tools()

    run(session)
    # The refusal is the API's: 401, its JSON error body, WWW-Authenticate.
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": f"Bearer {keys['acme']}x"}):
        r = httpx.post(f"{url}/mcp", json=message, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("keys_and_url", ["postgres"], indirect=True)
def test_http_on_postgres(keys_and_url: tuple[dict, str]) -> None:
    keys, url = keys_and_url

    async def session() -> None:
        await tenants_are_apart(url, keys)
        async with over_http(url, keys["acme"]) as acme:
            found = await ok(acme, "search", {"query": "nightingale", "collection": "kb"})
            assert found["data"][0]["document"] == "secret"
            recalled = await ok(acme, "recall", {"query": "window seat", "user_id": "alice"})
            assert recalled["data"][0]["message"]["content"] == SEAT

    run(session)


def test_http_without_authentication_checks_the_host(tmp_path: Path) -> None:
    """ENGRAM_AUTH=none (loopback only): requests whose Host is not a loopback name are
    refused (DNS rebinding), loopback ones served."""
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    with serve_app(create_app(settings)) as url:
        served = httpx.post(f"{url}/mcp", json=message, headers=accept)
        assert served.status_code == 200 and "search" in served.text
        rebound = httpx.post(f"{url}/mcp", json=message, headers={**accept, "Host": "evil.test"})
        assert rebound.status_code == 421


# -- without the SDK -------------------------------------------------------------------------------
def test_without_the_sdk_serve_works_and_mcp_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a)
    )
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/health").status_code == 200
        r = client.post("/mcp", json={})
        assert r.status_code == 404 and "pip install 'engram[mcp]'" in r.json()["error"]["hint"]
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "mcp"])
    assert result.exit_code == 1
    assert "Hint: pip install 'engram[mcp]'" in result.output


# -- units, imports, docs --------------------------------------------------------------------------
def test_document_uris_round_trip() -> None:
    for collection, key in [("kb", "a"), ("k b", "guides/setup.md"), ("é", "50%/x?y#z")]:
        assert parse_uri(document_uri(collection, key)) == (collection, key)
    assert parse_uri("engram://collections/kb/documents/guides/setup.md") == (
        "kb",
        "guides/setup.md",
    )
    for bad in (
        "engram://collections/kb",
        "file:///etc/passwd",
        "engram://collections//documents/a",
    ):
        with pytest.raises(engram.InvalidInput):
            parse_uri(bad)


def test_import_engram_does_not_import_mcp() -> None:
    code = (
        "import sys, engram; engram.open; from engram.cli import cli;"
        " print(any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_documented_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The python example of docs/integrations.md, with `engram` on PATH running this tree."""
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## MCP", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/integrations.md: the MCP section has no python example"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "engram"
    shim.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO} ENGRAM_EMBEDDING_MODEL=hash exec {sys.executable}"
        ' -c "from engram.cli import main; main()" "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code.group(1), "docs/integrations.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "agent-data").is_dir()
