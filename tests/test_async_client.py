"""engram.AsyncClient as asyncio code uses it: awaited, many requests in flight, async
iteration and streaming, cancellation. The scenarios it shares with engram.Client (errors,
paging, uploads, memory, state, ...) run on both in tests/test_client.py."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from live import free_port, serve_app

import engram
from engram.client import (
    AsyncEventStream,
    AsyncMemoryClient,
    AsyncStateClient,
    MemoryClient,
    StateClient,
)
from engram.config import Settings
from engram.errors import CollectionNotFound, ServerUnavailable
from engram.server import create_app

REPO = Path(__file__).resolve().parent.parent
DOCS = [
    {"id": "hr/leave.md", "title": "Leave", "text": "Employees get 25 vacation days per year."},
    {"id": "it/keys.md", "title": "API keys", "text": "Rotate an API key from the admin console."},
    {"id": "it/vpn.md", "title": "VPN", "text": "Connect to the VPN before opening the wiki."},
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A live server and an admin key of its tenant."""
    settings = Settings.build(data_dir=tmp_path / "server", embedding_model="hash")
    with engram.open(settings=settings) as db:
        key = db.create_key(tenant="acme", scopes=["admin"])[1]
    with serve_app(create_app(settings)) as url:
        yield url, key


@pytest_asyncio.fixture
async def client(server: tuple[str, str]) -> AsyncIterator[engram.AsyncClient]:
    url, key = server
    async with engram.AsyncClient(url, api_key=key) as c:
        yield c


# -- one method for each of Client's --------------------------------------------------------------
@pytest.mark.parametrize(
    ("sync", "asynchronous"),
    [
        (engram.Client, engram.AsyncClient),
        (MemoryClient, AsyncMemoryClient),
        (StateClient, AsyncStateClient),
    ],
)
def test_every_method_is_mirrored(sync: type, asynchronous: type) -> None:
    names = _public(sync) - {"close"}
    assert names == _public(asynchronous) - {"aclose"}
    for name in names:
        mine, theirs = getattr(sync, name), getattr(asynchronous, name)
        assert mine.__doc__ and mine.__doc__ == theirs.__doc__, name
        assert inspect.signature(mine) == inspect.signature(theirs), name
        assert mine.__name__ == theirs.__name__ == name
        assert not inspect.iscoroutinefunction(mine), name
        # awaited, but for the two that return async iterators
        assert inspect.iscoroutinefunction(theirs) is (name not in ITERATORS), name
    bound = engram.AsyncClient("http://engram.test")
    assert inspect.iscoroutinefunction(bound.search) and "self" not in str(
        inspect.signature(bound.search)
    )


ITERATORS = {"iter_documents", "chat_stream"}


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


# -- concurrency ------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_requests_in_flight_at_once(client: engram.AsyncClient) -> None:
    await client.add(DOCS, collection="kb")
    queries = ["vacation days", "rotate api key", "vpn wiki", "admin console"]
    alone = [await client.search(q, collection="kb", k=2) for q in queries]
    together = await asyncio.gather(
        *(client.search(q, collection="kb", k=2) for q in queries),
        client.collections(),
        client.documents("kb"),
        client.memory.add("Prefers the aisle.", user_id="ana"),
        client.state.put(("user", "ana"), "plan", {"step": 1}),
    )
    assert [r.results for r in together[:4]] == [r.results for r in alone]
    collections, documents, memory, item = together[4:]
    assert [c.name for c in collections] == ["kb"] and len(documents) == 3
    assert memory.user_id == "ana" and item.version == 1
    # Several writers at once: each batch lands, none is lost.
    reports = await asyncio.gather(
        *(client.add([{"id": f"n{i}", "text": f"note {i}"}], collection="many") for i in range(8))
    )
    assert [r.added for r in reports] == [1] * 8
    assert (await client.collection("many")).document_count == 8


@pytest.mark.asyncio
async def test_requests_really_overlap() -> None:
    """Each request waits until all of them have arrived: only concurrent ones can finish."""
    arrived = 0
    everyone = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            everyone.set()
        await everyone.wait()
        return httpx.Response(200, json={"name": request.url.path.rsplit("/", 1)[1]})

    transport = httpx.MockTransport(handler)
    async with engram.AsyncClient("http://engram.test", transport=transport) as client:
        found = await asyncio.wait_for(
            asyncio.gather(*(client.collection(f"c{i}") for i in range(5))), timeout=10
        )
    assert [c.name for c in found] == [f"c{i}" for i in range(5)]


@pytest.mark.asyncio
async def test_a_cancelled_request_leaves_the_client_usable(tmp_path: Path) -> None:
    stuck = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/files"):
            await request.aread()
            await stuck.wait()  # never set: the upload hangs until cancelled
        return httpx.Response(200, json={"name": "kb"})

    (tmp_path / "a.md").write_text("# A\n\nhello")
    transport = httpx.MockTransport(handler)
    async with engram.AsyncClient("http://engram.test", transport=transport) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.ingest(tmp_path, collection="kb"), timeout=0.2)
        assert (await client.collection("kb")).name == "kb"


# -- async iteration and streaming ---------------------------------------------------------------
@pytest.mark.asyncio
async def test_async_iteration_and_streams(client: engram.AsyncClient) -> None:
    await client.add(DOCS, collection="kb")
    keys = [d.key async for d in client.iter_documents("kb", page_size=1)]
    assert keys == [d.key for d in await client.documents("kb")] == [d["id"] for d in DOCS]
    assert [d.key async for d in client.iter_documents("kb", limit=2)] == keys[:2]

    answer = await client.chat("How many vacation days?", collection="kb")
    events = [
        event async for event in client.chat_stream("How many vacation days?", collection="kb")
    ]
    assert "".join(d["text"] for e, d in events if e == "token") == answer["text"]
    assert [e for e, _ in events][-2:] == ["citations", "done"]

    stream = await client.chat_stream("VPN?", collection="kb")  # sent here
    assert isinstance(stream, AsyncEventStream)
    assert [e async for e, _ in stream][-1] == "done"
    async with client.chat_stream("VPN?", collection="kb") as early:
        assert (await anext(early))[0] == "token"  # leaving closes the connection

    # A bad request raises where the stream is opened: at await, async with or async for.
    with pytest.raises(CollectionNotFound):
        await client.chat_stream("VPN?", collection="missing")
    with pytest.raises(CollectionNotFound):
        async for _ in client.chat_stream("VPN?", collection="missing"):
            pass
    assert (await client.chat("VPN?", collection="kb", stream=True))["citations"]


@pytest.mark.asyncio
async def test_server_down_is_server_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with engram.AsyncClient(url, timeout=5) as client:
        with pytest.raises(ServerUnavailable, match="cannot connect"):
            await client.collections()
        with pytest.raises(ServerUnavailable):
            await client.chat_stream("hello")
    assert repr(client) == f"AsyncClient({url!r})"


# -- the documented example ---------------------------------------------------------------------
def test_the_documented_example_runs(
    server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## Async client", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/integrations.md: the Async client section has no python example"
    url, key = server
    monkeypatch.setenv("ENGRAM_URL", url)
    monkeypatch.setenv("ENGRAM_API_KEY", key)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code.group(1), "docs/integrations.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "faq-1 faq-2" in out and "login page" in out
