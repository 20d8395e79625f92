"""engram.Client and engram.AsyncClient against a real server over a real socket, and their
error mapping: one contract, each scenario run on both clients (the async one driven through
tests/blocking.py; what only asyncio can show is in tests/test_async_client.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from blocking import Blocking
from live import free_port, serve_app

import engram
from engram.client import RemoteSearchResponse
from engram.client.http import parse_sse, path
from engram.config import Settings
from engram.errors import (
    _ALL,
    CollectionNotFound,
    ConfigError,
    ConversationNotFound,
    DocumentNotFound,
    EngramError,
    Forbidden,
    InvalidInput,
    MemoryNotFound,
    NotFound,
    QueryTooLong,
    RateLimited,
    ServerUnavailable,
    StateNotFound,
    Unauthorized,
    VersionConflict,
)
from engram.server import create_app
from engram.state import StateItem
from engram.types import Collection, DocumentInfo, IngestReport, SearchResult

DOCS = [
    {"id": "hr/leave.md", "title": "Leave", "text": "Employees get 25 vacation days per year.",
     "metadata": {"team": "hr", "year": 2023}},
    {"id": "it/keys.md", "title": "API keys", "text": "Rotate an API key from the admin console.",
     "metadata": {"team": "it", "year": 2024}},
    {"id": "it/vpn.md", "title": "VPN", "text": "Connect to the VPN before opening the wiki.",
     "metadata": {"team": "it", "year": 2021}},
]  # fmt: skip


@pytest.fixture
def server_settings(tmp_path: Path) -> Settings:
    return Settings.build(
        data_dir=tmp_path / "server", embedding_model="hash", chunk_tokens=64, max_query_chars=64
    )


@pytest.fixture
def keys(server_settings: Settings) -> dict[str, str]:
    with engram.open(settings=server_settings) as db:
        return {
            "admin": db.create_key(tenant="acme", scopes=["admin"])[1],
            "read": db.create_key(tenant="acme", scopes=["read"])[1],
        }


@pytest.fixture
def live_server(server_settings: Settings, keys: dict[str, str]) -> Iterator[str]:
    with serve_app(create_app(server_settings)) as url:
        yield url


Connect = Callable[..., engram.Client]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """``engram.Client``, or ``engram.AsyncClient`` behind the same blocking methods."""
    if request.param == "sync":
        yield engram.Client
        return
    loop = asyncio.new_event_loop()
    try:
        yield lambda *args, **kwargs: Blocking(engram.AsyncClient(*args, **kwargs), loop)  # type: ignore[return-value]
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture
def client(live_server: str, keys: dict[str, str], connect: Connect) -> Iterator[engram.Client]:
    with connect(live_server, api_key=keys["admin"]) as c:
        yield c


@pytest.fixture
def library(tmp_path: Path) -> Iterator[engram.Engram]:
    """A library database holding the same documents, to compare behaviour with."""
    with engram.open(tmp_path / "library", embedding_model="hash", chunk_tokens=64) as db:
        db.add(DOCS, collection="kb", tenant="acme")
        yield db


# -- documents and search --------------------------------------------------------------------
def test_add_search_documents_delete_round_trip(
    client: engram.Client, library: engram.Engram
) -> None:
    report = client.add(DOCS, collection="kb")
    assert isinstance(report, IngestReport)
    assert (report.added, report.failed, report.errors) == (3, 0, [])
    assert client.add(DOCS, collection="kb").unchanged == 3

    (coll,) = client.collections()
    assert isinstance(coll, Collection) and coll == client.collection("kb")
    expected = library.collection("kb", tenant="acme")
    assert (coll.name, coll.model_id, coll.dimension, coll.document_count) == (
        expected.name,
        expected.model_id,
        expected.dimension,
        expected.document_count,
    )

    docs = client.documents("kb")
    assert all(isinstance(d, DocumentInfo) for d in docs)
    assert [d.key for d in docs] == [d.key for d in library.documents("kb", tenant="acme")]
    # Cursors are followed lazily, a page at a time.
    assert [d.key for d in client.iter_documents("kb", page_size=1)] == [d.key for d in docs]
    assert [d.key for d in client.documents("kb", limit=2)] == ["hr/leave.md", "it/keys.md"]
    assert [d.key for d in client.documents("kb", where={"team": "it"})] == [
        "it/keys.md",
        "it/vpn.md",
    ]
    doc = client.document("it/keys.md", "kb")  # a key with a slash
    assert (doc.title, doc.version, doc.metadata) == ("API keys", 1, {"team": "it", "year": 2024})
    assert [v.version for v in client.versions("it/keys.md", "kb")] == [1]

    found = client.search("rotate api key", collection="kb", k=1)
    assert isinstance(found, RemoteSearchResponse)
    (hit,) = found.results
    assert isinstance(hit, SearchResult) and hit.document_key == "it/keys.md"
    assert found.next_cursor is not None and found.next_offset == 1
    local = library.search("rotate api key", collection="kb", k=1, tenant="acme").results[0]
    assert (hit.text, hit.start, hit.end, hit.metadata) == (
        local.text,
        local.start,
        local.end,
        local.metadata,
    )
    assert set(hit.explain) == set(local.explain)
    second = client.search("rotate api key", collection="kb", k=1, cursor=found.next_cursor)
    assert second.results[0].chunk_id != hit.chunk_id
    assert client.search("key", collection="kb", where={"year": {"$gte": 2024}}).results

    assert client.delete(["it/keys.md", "nope.md"], collection="kb") == 1
    assert client.delete("it/keys.md", collection="kb") == 0
    with pytest.raises(DocumentNotFound):
        client.document("it/keys.md", "kb")
    client.delete_collection("kb")
    assert client.collections() == []
    with pytest.raises(CollectionNotFound):
        client.delete([], collection="kb")


def test_search_options_and_embeddings_match_the_library(
    client: engram.Client, library: engram.Engram
) -> None:
    """fusion/alpha/group_by reach the server; embed() gives the library's own vectors."""
    client.add(DOCS, collection="kb")
    for options in ({"alpha": 0.0, "fusion": "minmax"}, {"group_by": "document"}, {}):
        remote = client.search("rotate the API key", collection="kb", **options)
        local = library.search("rotate the API key", collection="kb", tenant="acme", **options)
        assert [h.document for h in remote.data] == [h.document for h in local.data], options
        assert [h.more_chunks for h in remote.data] == [h.more_chunks for h in local.data]
        assert remote.data[0].explain["fused"] == local.data[0].explain["fused"]
    texts = ["reset a password", "VPN"]
    for kind in ("passage", "query"):
        vectors = library.embedder().embed_batch(texts, kind=kind)  # type: ignore[arg-type]
        assert client.embed(texts, kind=kind) == [[float(x) for x in v] for v in vectors]
    assert client.embed([]) == []


def test_add_sends_large_inputs_in_batches(client: engram.Client) -> None:
    docs = [{"id": f"d{i}", "text": f"note number {i} about batches"} for i in range(1005)]
    report = client.add(docs, collection="many")
    assert report.added == 1005
    assert client.collection("many").document_count == 1005
    assert len(client.documents("many", limit=None)) == 1005
    with pytest.raises(InvalidInput, match="record 0"):  # checked before anything is sent
        client.add([{"text": "no id"}], collection="many")


def test_ingest_uploads_files_with_the_library_keys(
    client: engram.Client, corpus: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.xyz").write_text("what format is this?")
    report = client.ingest([corpus, tmp_path / "notes.xyz", tmp_path / "missing"], collection="c")
    with engram.open(tmp_path / "lib", embedding_model="hash", chunk_tokens=64) as db:
        expected = db.ingest([corpus, tmp_path / "notes.xyz", tmp_path / "missing"])
        keys = [d.key for d in db.documents()]
    assert (report.added, report.failed) == (expected.added, expected.failed) == (5, 2)
    assert [d.key for d in client.documents("c")] == keys
    assert {source for source, _ in report.errors} == {source for source, _ in expected.errors}
    assert any("notes.xyz" in s and "extension" in r for s, r in report.errors)
    assert client.ingest(corpus, collection="c").unchanged == 5


# -- errors: the same classes as the library -------------------------------------------------
def _raised(call: Any) -> EngramError:
    with pytest.raises(EngramError) as info:
        call()
    return info.value


def test_errors_are_the_library_classes(client: engram.Client, library: engram.Engram) -> None:
    client.add(DOCS, collection="kb")
    pairs = [
        (
            lambda: client.collection("missing"),
            lambda: library.collection("missing", tenant="acme"),
        ),
        (
            lambda: client.search("vacation", collection="missing"),
            lambda: library.search("vacation", collection="missing", tenant="acme"),
        ),
        (lambda: client.search("   ", collection="kb"), None),
        (lambda: client.search("x" * 100, collection="kb"), None),
        (
            lambda: client.search("vacation", collection="kb", where={"year": {"$near": 1}}),
            lambda: library.search(
                "vacation", collection="kb", where={"year": {"$near": 1}}, tenant="acme"
            ),
        ),
        (
            lambda: client.document("nope.md", "kb"),
            lambda: library.document("nope.md", "kb", tenant="acme"),
        ),
        (lambda: client.memory.get("nope"), lambda: library.memory.get("nope", tenant="acme")),
        (
            lambda: client.memory.messages("nope"),
            lambda: library.memory.messages("nope", tenant="acme"),
        ),
    ]
    raised = [_raised(remote) for remote, _ in pairs]
    assert [type(e) for e in raised] == [
        CollectionNotFound,
        CollectionNotFound,
        InvalidInput,
        QueryTooLong,
        InvalidInput,
        DocumentNotFound,
        MemoryNotFound,
        ConversationNotFound,
    ]
    for (_, local), remote in zip(pairs, raised, strict=True):
        if local is not None:  # message and hint come through unchanged
            expected = _raised(local)
            assert (remote.message, remote.hint) == (expected.message, expected.hint)
            assert remote.code == expected.code and remote.status == expected.status
    # A request the server's schema refuses: the base class of its status, its own code.
    bad = _raised(lambda: client.search("vacation", collection="kb", k=0))
    assert type(bad) is InvalidInput and bad.code == "invalid_request"
    assert bad.details["errors"][0]["loc"] == ["body", "k"]


def test_auth_errors(live_server: str, keys: dict[str, str], connect: Connect) -> None:
    with connect(live_server, api_key="egk_bogus_key") as bad:
        error = _raised(bad.collections)
        assert type(error) is Unauthorized
    with connect(live_server) as anonymous:
        assert "needs a key" in _raised(anonymous.collections).message
    with connect(live_server, api_key=keys["read"]) as reader:
        assert reader.collections() == []
        error = _raised(lambda: reader.add(DOCS, collection="kb"))
        assert type(error) is Forbidden and error.hint == "use a key created with --scope write"


# -- memories, conversations, answers --------------------------------------------------------
def test_memory_and_conversation_round_trip(client: engram.Client) -> None:
    mem = client.memory
    first = mem.add("Alice prefers window seats on flights.", user_id="alice")
    assert not first.deduplicated and first.user_id == "alice"
    again = mem.add("alice prefers window seats on flights", user_id="alice")
    assert again.deduplicated and again.id == first.id
    other = mem.add("Alice is allergic to peanuts.", user_id="alice", metadata={"kind": "health"})
    hits = mem.search("peanut allergy", user_id="alice", k=1)
    assert [h.memory.id for h in hits] == [other.id] and hits[0].score > 0
    updated = mem.update(first.id, "Alice prefers aisle seats.")
    assert updated.content == "Alice prefers aisle seats." and mem.get(first.id) == updated
    assert [e.event for e in mem.history(first.id)] == ["add", "merge", "update"]
    assert {m.id for m in mem.list("alice")} == {first.id, other.id}
    assert len(mem.list("alice", limit=1)) == 1
    mem.delete(other.id)
    with pytest.raises(MemoryNotFound):
        mem.get(other.id)

    conv = mem.create_conversation("alice", title="Trip")
    assert mem.conversation(conv.id) == conv
    mem.append(conv.id, "user", "Book me a flight.")
    reply = mem.append(conv.id, "assistant", "Which day?", metadata={"model": "x"})
    assert reply.metadata == {"model": "x"}
    assert [(m.role, m.content) for m in mem.messages(conv.id)] == [
        ("user", "Book me a flight."),
        ("assistant", "Which day?"),
    ]
    assert [m.id for m in mem.messages(conv.id, last=1)] == [reply.id]
    assert [c.id for c in mem.conversations("alice")] == [conv.id]
    with pytest.raises(InvalidInput):
        mem.append(conv.id, "robot", "beep")
    assert mem.export_user("alice")["conversations"][0]["id"] == conv.id
    mem.delete_conversation(conv.id)
    with pytest.raises(ConversationNotFound):
        mem.conversation(conv.id)
    erased = mem.erase_user("alice")
    assert erased.memories == 2 and mem.list("alice") == []


def test_state_round_trip(client: engram.Client, library: engram.Engram) -> None:
    state, plan = client.state, ("user", "42", "planner")
    first = state.put(plan, "plan", {"step": 1, "goal": "trip"})
    assert isinstance(first, StateItem) and (first.namespace, first.version) == (plan, 1)
    assert state.get("user/42/planner", "plan") == first  # a namespace as a path, as db.state
    second = state.put(plan, "plan", {"step": 2}, if_version=1)
    assert second.version == 2 and second.created_at == first.created_at
    stale = _raised(lambda: state.put(plan, "plan", {"step": 3}, if_version=1))
    assert type(stale) is VersionConflict and stale.details == {"version": 2}
    assert type(_raised(lambda: state.put(plan, "plan", {}, if_version=0))) is VersionConflict

    notes = ("user", "42", "notes")
    note = state.put(notes, "n1", {"text": "likes green tea", "open": True}, index=["text"], ttl=60)
    assert note.expires_at is not None
    assert state.put(("user", "7"), "nothing", None).value is None  # JSON null is a value
    assert [i.key for i in state.items("user/42")] == ["n1", "plan"]  # by namespace, then key
    assert [i.key for i in state.items(filter={"open": True})] == ["n1"]
    (hit,) = state.search(("user", "42"), query="green tea")
    assert hit.key == "n1" and hit.score is not None and hit.score > 0
    assert state.search(limit=1, offset=1)[0].key == "plan"
    assert state.namespaces(max_depth=2) == [("user", "42"), ("user", "7")]
    assert state.namespaces("user/42") == [notes, plan]

    assert type(_raised(lambda: state.delete(plan, "plan", if_version=1))) is VersionConflict
    state.delete(plan, "plan", if_version=2)
    missing = _raised(lambda: state.get(plan, "plan"))
    expected = _raised(lambda: library.state.get(plan, "plan", tenant="acme"))
    assert type(missing) is StateNotFound and missing.message == expected.message
    assert type(_raised(lambda: state.delete(plan, "plan"))) is StateNotFound
    # Names are checked before anything is sent, with db.state's message.
    bad = _raised(lambda: state.put(("user", "a/b"), "k", 1))
    assert type(bad) is InvalidInput and "'a/b'" in bad.message


def test_chat_whole_and_streamed(client: engram.Client) -> None:
    client.add(DOCS, collection="kb")
    answer = client.chat("How many vacation days?", collection="kb")
    assert set(answer) == {"text", "citations", "model", "extractive", "query"}
    assert answer["extractive"] is True and answer["model"] is None
    assert answer["citations"][0]["document"] == "hr/leave.md"

    events = list(client.chat_stream("How many vacation days?", collection="kb"))
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"token"}
    text = "".join(data["text"] for name, data in events if name == "token")
    assert text == answer["text"]
    assert events[-1][1] == {
        "model": None,
        "extractive": True,
        "ok": True,
        "query": "How many vacation days?",
    }
    assert client.chat("How many vacation days?", collection="kb", stream=True) == answer

    conv = client.memory.create_conversation("bob")
    client.chat("Vacation days?", collection="kb", conversation_id=conv.id, user_id="bob")
    with client.chat_stream("VPN?", collection="kb", conversation_id=conv.id) as stream:
        assert next(iter(stream))[0] == "token"  # stopping early closes the connection
    # The server stores a turn once its answer is fully sent; an extractive answer may be
    # sent whole before the server sees the client leave, so the VPN turn is either absent
    # or complete — never half there.
    roles = [m.role for m in client.memory.messages(conv.id)]
    assert roles in (["user", "assistant"], ["user", "assistant"] * 2)

    # A bad request raises when the stream is opened, before any event.
    with pytest.raises(CollectionNotFound):
        client.chat_stream("VPN?", collection="missing")
    with pytest.raises(ConversationNotFound):
        client.chat("VPN?", collection="kb", conversation_id="nope", stream=True)


def test_ask_returns_the_library_answer(client: engram.Client, library: engram.Engram) -> None:
    client.add(DOCS, collection="kb")
    remote = client.ask("How many vacation days?", collection="kb")
    local = library.ask("How many vacation days?", collection="kb", tenant="acme")
    assert remote == local  # text, Citation objects (document, version, span), model
    assert remote.extractive and remote.citations[0].document == "hr/leave.md"
    with pytest.raises(CollectionNotFound):
        client.ask("VPN?", collection="missing")


# -- network failures and the mapping --------------------------------------------------------
def test_server_down_is_server_unavailable_quickly(connect: Connect) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with connect(url, timeout=5) as client:
        with pytest.raises(ServerUnavailable) as info:
            client.collections()
        with pytest.raises(ServerUnavailable):
            client.chat_stream("hello")
    assert time.monotonic() - started < 3
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert url in info.value.message and "engram serve" in (info.value.hint or "")
    assert info.value.status == 503 and info.value.code == "server_unavailable"


def _mock(connect: Connect, handler: Any, api_key: str | None = None) -> engram.Client:
    return connect("http://engram.test", api_key=api_key, transport=httpx.MockTransport(handler))


def _error_class_cases() -> list[type[EngramError]]:
    return [cls for cls in _ALL if cls is not RateLimited]


@pytest.mark.parametrize("cls", _error_class_cases(), ids=lambda c: c.__name__)
def test_every_error_class_comes_back_as_itself(cls: type[EngramError], connect: Connect) -> None:
    sent = cls("it went wrong", hint="do this instead", name="x")
    client = _mock(connect, lambda request: httpx.Response(sent.status, json=sent.to_dict()))
    with client, pytest.raises(cls) as info:
        client.collections()
    got = info.value
    assert type(got) is cls
    assert (got.message, got.hint, got.details) == (
        "it went wrong",
        "do this instead",
        {"name": "x"},
    )
    assert got.to_dict() == sent.to_dict() and got.status == sent.status


def test_rate_limited_keeps_retry_after(connect: Connect) -> None:
    sent = RateLimited("slow down", retry_after=7)
    client = _mock(
        connect, lambda r: httpx.Response(429, json=sent.to_dict(), headers={"Retry-After": "7"})
    )
    with client, pytest.raises(RateLimited) as info:
        client.collections()
    assert info.value.retry_after == 7 and info.value.to_dict() == sent.to_dict()


def test_unknown_codes_and_foreign_bodies_fall_back_by_status(connect: Connect) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/newer"):
            return httpx.Response(404, json={"error": {"code": "gadget_not_found", "message": "m"}})
        if request.url.path.endswith("/proxy"):
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        if request.url.path.endswith("/slow"):
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(429, json={"error": {"code": "rate_limited", "message": "m"}})

    with _mock(connect, handler) as client:
        newer = _raised(lambda: client.collection("newer"))
        assert type(newer) is NotFound and newer.code == "gadget_not_found"
        proxy = _raised(lambda: client.collection("proxy"))
        assert type(proxy) is ServerUnavailable and "Bad Gateway" in proxy.message
        assert proxy.status == 502
        slow = _raised(lambda: client.collection("slow"))
        assert type(slow) is ServerUnavailable and "did not answer within 30" in slow.message
        assert isinstance(slow.__cause__, httpx.ReadTimeout)
        limited = _raised(lambda: client.collection("other"))
        assert isinstance(limited, RateLimited) and limited.retry_after == 1


def test_requests_carry_the_key_and_encode_paths(connect: Connect) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with _mock(connect, handler, api_key="egk_abc") as client:
        client.delete_collection("a b/c")
        client.delete(["guides/set up.md", "../x"], collection="kb")
    assert all(r.headers["authorization"] == "Bearer egk_abc" for r in seen)
    assert [r.url.raw_path.decode() for r in seen] == [
        "/v1/collections/a%20b%2Fc",
        "/v1/collections/kb/documents/guides/set%20up.md",
        "/v1/collections/kb/documents/%2E%2E/x",
    ]
    with _mock(connect, handler) as anonymous:
        anonymous.delete_collection("kb")
    assert "authorization" not in seen[-1].headers
    assert path("memories", "a/b", "history") == "/v1/memories/a%2Fb/history"


def test_parse_sse() -> None:
    lines = [": keep-alive", "event: token", 'data: {"text":"a"}', "", "data: plain", "data: two",
             "", "event: done", "data: {}"]  # fmt: skip
    assert list(parse_sse(lines)) == [("token", {"text": "a"}), ("message", "plain\ntwo"),
                                      ("done", {})]  # fmt: skip


def test_bad_url_is_a_config_error(connect: Connect) -> None:
    for url in ("localhost:8000", "ftp://host", "http://"):
        with pytest.raises(ConfigError, match="invalid server URL"):
            connect(url)


def test_import_engram_does_not_import_httpx() -> None:
    code = (
        "import sys, engram; assert 'httpx' not in sys.modules; engram.Client; engram.AsyncClient;"
        " print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_search_response_is_the_library_type(connect: Connect) -> None:
    body = {"data": [], "count": 0, "next_cursor": None, "mode": "keyword", "timings_ms": {},
            "expansions": {}}  # fmt: skip
    with _mock(connect, lambda r: httpx.Response(200, json=body)) as client:
        found = client.search("anything", mode="keyword")
    assert isinstance(found, engram.SearchResponse)
    assert (found.results, found.next_cursor, found.next_offset) == ([], None, None)
    assert json.dumps(found.to_dict())


def test_client_imports_history_and_recalls_it(client: engram.Client) -> None:
    conv = client.memory.create_conversation("u1", title="march")
    written = client.memory.append_many(
        conv.id,
        [
            {"role": "user", "content": "Our landlord Mr Okafor raised the rent.",
             "speaker": "Ana", "created_at": "2026-03-02T09:00:00+01:00"},
            {"role": "assistant", "content": "By how much?", "created_at": "2026-03-02T08:01:00Z"},
            {"role": "user", "content": "Forty euros a month.", "created_at": "2026-03-02T08:02:00"},
        ],
    )  # fmt: skip
    assert [m.speaker for m in written] == ["Ana", None, None]
    assert written[0].created_at.startswith("2026-03-02T08:00:00")
    hits = client.memory.recall("what did I say about the landlord", user_id="u1", k=2)
    assert hits[0].message == written[0] and hits[0].conversation_id == conv.id
    assert [m.id for m in hits[0].context] == [written[0].id, written[1].id]
    assert hits[0].explain["keyword"]["rank"] == 1
    assert client.memory.recall("landlord", user_id="u1", since="2026-04-01") == []
    one = client.memory.append(conv.id, "user", "And the heating is broken.", speaker="Ana")
    assert one.speaker == "Ana"
    assert client.memory.recall("heating", user_id="u1", k=1)[0].message.id == one.id
    with pytest.raises(engram.errors.InvalidInput):
        client.memory.append_many(conv.id, [{"role": "user", "content": "x", "created_at": "soon"}])
    assert len(client.memory.messages(conv.id)) == 4


def test_suggest_like_the_library(client: engram.Client, library: engram.Engram) -> None:
    client.add(DOCS, collection="kb")
    remote = client.suggest("vacat", collection="kb", limit=5)
    assert remote == library.suggest("vacat", collection="kb", tenant="acme", limit=5)
    assert [s.text for s in remote] == ["vacation"]
    assert [s.text for s in client.suggest("rotaet", collection="kb")] == ["rotate"]  # a typo
    with pytest.raises(InvalidInput):
        client.suggest("", collection="kb")
    with pytest.raises(CollectionNotFound):
        client.suggest("vac", collection="nope")
