"""POST /v1/chat: extractive answers, a real OpenAI-compatible server (whole and streamed over
SSE through a real socket), conversation memory, and a model that cannot be reached."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from live import serve_app
from test_llms import TOKENS, FakeServer, closed_port_url

from engram.config import Settings
from engram.server.app import create_app

DOCS = [
    {
        "id": "keys",
        "title": "API keys",
        "text": "Rotate an API key every 90 days: create a new key, deploy it, revoke the old one.",
    },
    {"id": "leave", "title": "Leave", "text": "Employees get 25 days of paid vacation per year."},
]


def settings_for(tmp_path: Path, llm: str = "") -> Settings:
    return Settings.build(
        data_dir=tmp_path,
        embedding_model="hash",
        auth="none",
        llm=llm,
        llm_retries=0,
        llm_timeout=5,
    )


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    with FakeServer("openai") as server:
        yield server


def _seed(client: httpx.Client | TestClient) -> None:
    r = client.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
    assert r.status_code == 201, r.text


def test_extractive_answer_without_a_model(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path))) as c:
        _seed(c)
        r = c.post(
            "/v1/chat",
            json={"question": "how often should I rotate an API key?", "collection": "kb"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["extractive"] is True and body["model"] is None
        assert "90 days" in body["text"]
        assert body["citations"][0]["document"] == "keys"
        assert body["citations"][0]["span"][1] > 0


def test_extractive_answer_not_found_without_a_citation(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path))) as c:
        _seed(c)
        r = c.post(
            "/v1/chat", json={"question": "What is the capital of France?", "collection": "kb"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"].startswith("Not found in the documents")
        assert body["citations"] == [] and body["extractive"] is True


def test_extractive_answer_in_a_french_collection(tmp_path: Path) -> None:
    conges = "Les salariés ont droit à cinq semaines de congés payés par an."
    with TestClient(create_app(settings_for(tmp_path))) as c:
        assert c.post("/v1/collections", json={"name": "rh", "language": "fr"}).status_code == 201
        r = c.post(
            "/v1/collections/rh/documents:batch",
            json={"documents": [{"id": "conges", "title": "Congés", "text": conges}]},
        )
        assert r.status_code == 201, r.text
        found = c.post(
            "/v1/chat", json={"question": "Combien de semaines de congés ?", "collection": "rh"}
        )
        assert found.json()["text"] == (
            "Aucun modèle de langue n'est configuré ; les passages les plus pertinents disent :"
            f"\n\n- {conges} [1]"
        )
        missing = c.post(
            "/v1/chat",
            json={"question": "Quelle est la capitale de la France ?", "collection": "rh"},
        ).json()
        assert missing["text"].startswith("Introuvable dans les documents")
        assert missing["citations"] == []


def test_answer_from_an_openai_compatible_server(tmp_path: Path, openai_server: FakeServer) -> None:
    spec = f"vllm:test-model@{openai_server.base_url}"
    with TestClient(create_app(settings_for(tmp_path, spec))) as c:
        _seed(c)
        conv = c.post("/v1/conversations", json={"user_id": "u1"}).json()
        c.post("/v1/memories", json={"content": "The user prefers short answers.", "user_id": "u1"})
        r = c.post(
            "/v1/chat",
            json={
                "question": "rotate api key?",
                "collection": "kb",
                "conversation_id": conv["id"],
                "user_id": "u1",
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"] == "".join(TOKENS) and body["model"] == "vllm:test-model"
        assert [c_["n"] for c_ in body["citations"]] == [1]  # the reply cites [1]
        sent = openai_server.requests[-1].body
        system = sent["messages"][0]["content"]
        assert "Rotate an API key" in system and "prefers short answers" in system
        messages = c.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        # The answer keeps its citations (the web app's chat page shows them again).
        kept = messages[1]["metadata"]
        assert kept["citations"] == body["citations"] and kept["model"] == "vllm:test-model"
        assert kept["extractive"] is False
        # The next turn carries the conversation so far.
        c.post(
            "/v1/chat",
            json={"question": "and after that?", "collection": "kb", "conversation_id": conv["id"]},
        )
        roles = [m["role"] for m in openai_server.requests[-1].body["messages"]]
        assert roles == ["system", "user", "assistant", "user"]


@pytest.fixture
def live(tmp_path: Path, openai_server: FakeServer) -> Iterator[str]:
    spec = f"vllm:test-model@{openai_server.base_url}, vllm:backup@{closed_port_url()}"
    with serve_app(create_app(settings_for(tmp_path, spec))) as url:
        yield url


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[len("data: ") :])))
    return events


def test_streamed_answer_over_sse(live: str) -> None:
    with httpx.Client(base_url=live, timeout=30) as http:
        _seed(http)
        with http.stream(
            "POST",
            "/v1/chat",
            json={"question": "rotate api key", "collection": "kb", "stream": True},
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _events(r)
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and kinds.count("token") == len(TOKENS)
    assert "".join(d["text"] for k, d in events if k == "token") == "".join(TOKENS)
    assert events[-1][1]["ok"] is True


def test_unreachable_model_gives_a_clean_error(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path, f"vllm:gone@{closed_port_url()}"))) as c:
        _seed(c)
        r = c.post("/v1/chat", json={"question": "rotate api key", "collection": "kb"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "llm_unavailable"
        started = time.monotonic()
        with c.stream(
            "POST",
            "/v1/chat",
            json={"question": "rotate api key", "collection": "kb", "stream": True},
        ) as s:
            events = _events(s)  # type: ignore[arg-type]
        assert time.monotonic() - started < 10
        assert [k for k, _ in events] == ["error", "done"]
        assert events[0][1]["code"] == "llm_unavailable" and events[1][1]["ok"] is False


def test_upstream_is_closed_when_the_client_goes_away(tmp_path: Path) -> None:
    """A client reads the first token of a streamed answer and disconnects: the connection to
    the model server is closed soon after, not held until the model finishes."""
    from test_llms import trickle

    gone = threading.Event()

    def watched(h: Any, body: dict[str, Any]) -> None:
        try:
            trickle(0.2, tokens=150)(h, body)  # 30 s of tokens
        except OSError:  # the write fails once engram closed its side
            gone.set()

    with FakeServer("openai") as server:
        server.script = [watched]
        settings = settings_for(tmp_path, f"vllm:test-model@{server.base_url}")
        with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
            _seed(http)
            body = {"question": "rotate api key", "collection": "kb", "stream": True}
            with http.stream("POST", "/v1/chat", json=body) as r:
                for line in r.iter_lines():
                    if line.startswith("event: token"):
                        break
            started = time.monotonic()
            assert gone.wait(10), "the upstream connection stayed open"
            assert time.monotonic() - started < 5


def test_chat_recalls_an_earlier_conversation_and_cites_it(tmp_path: Path) -> None:
    """Without a model: a follow-up is rewritten by the heuristic, and the answer draws on
    the user's earlier conversation (recall), cited as such."""
    with TestClient(create_app(settings_for(tmp_path))) as c:
        _seed(c)
        old = c.post("/v1/conversations", json={"user_id": "u1"}).json()
        c.post(
            f"/v1/conversations/{old['id']}/messages:batch",
            json={"messages": [
                {"role": "user", "content": "My landlord Mr Okafor wants 950 euros of rent.",
                 "created_at": "2026-03-02T10:00:00Z"},
                {"role": "assistant", "content": "That is steep.", "created_at": "2026-03-02T10:00:05Z"},
            ]},
        )  # fmt: skip
        c.post("/v1/memories", json={"content": "The user rents a flat in Leeds.", "user_id": "u1"})
        now = c.post("/v1/conversations", json={"user_id": "u1"}).json()
        c.post(
            f"/v1/conversations/{now['id']}/messages:batch",
            json={"messages": [
                {"role": "user", "content": "Remind me what my landlord asked for."},
                {"role": "assistant", "content": "Let me look."},
            ]},
        )  # fmt: skip
        r = c.post(
            "/v1/chat",
            json={"question": "how much rent?", "collection": "kb", "conversation_id": now["id"]},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"].startswith("how much rent?") and "landlord" in body["query"]
        kinds = {x["kind"]: x for x in body["citations"]}
        assert kinds["conversation"]["document"] == old["id"]  # not the current conversation
        assert kinds["conversation"]["message_id"] > 0
        assert "950" in body["text"]  # quoted from the earlier conversation


def test_chat_rewrites_a_follow_up_with_the_model(
    tmp_path: Path, openai_server: FakeServer
) -> None:
    from test_llms import completion

    spec = f"vllm:test-model@{openai_server.base_url}"
    with TestClient(create_app(settings_for(tmp_path, spec))) as c:
        _seed(c)
        conv = c.post("/v1/conversations", json={"user_id": "u1"}).json()
        c.post(
            f"/v1/conversations/{conv['id']}/messages:batch",
            json={"messages": [
                {"role": "user", "content": "How many vacation days do employees get?"},
                {"role": "assistant", "content": "25 days per year [1]."},
            ]},
        )  # fmt: skip
        c.post("/v1/memories", json={"content": "The user works part-time.", "user_id": "u1"})
        openai_server.script = [
            completion("How many vacation days do part-time employees get?"),
            completion("Pro rata [1][2][3][4][5][6]."),
        ]
        r = c.post(
            "/v1/chat",
            json={
                "question": "and part-timers?",
                "collection": "kb",
                "conversation_id": conv["id"],
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "How many vacation days do part-time employees get?"
        kinds = [x["kind"] for x in body["citations"]]
        assert "document" in kinds and "memory" in kinds
        memory = next(x for x in body["citations"] if x["kind"] == "memory")
        assert memory["title"].startswith("Remembered about the user")
        rewrite = openai_server.requests[-2].body["messages"]
        assert "and part-timers?" in rewrite[-1]["content"]
        assert "vacation days" in rewrite[-1]["content"]
        # The model answered from the passages the standalone question found.
        system = openai_server.requests[-1].body["messages"][0]["content"]
        assert "25 days of paid vacation" in system and "works part-time" in system


def test_a_collection_of_smaller_chunks_gets_more_passages_by_default(
    tmp_path: Path, openai_server: FakeServer
) -> None:
    """By default a prompt holds about 8 chunks of 256 tokens' text: 16 of a collection of
    128-token chunks (multilingual-e5-small's), 8 of a default one; ``k`` says otherwise."""
    import re

    from engram.answers.grounding import default_passages
    from engram.types import Collection

    def coll(tokens: int | None) -> Collection:
        own = {} if tokens is None else {"chunk_tokens": tokens}
        return Collection(1, "c", "hash-64", 64, "fr", own, "")

    assert default_passages([coll(256)]) == default_passages([coll(None)]) == 8
    assert default_passages([coll(128)]) == 16 and default_passages([coll(512)]) == 8
    assert default_passages([coll(256), coll(64)]) == 32 and default_passages([coll(16)]) == 50

    spec = f"vllm:test-model@{openai_server.base_url}"
    settings = settings_for(tmp_path, spec)
    settings.chunk_tokens = 128  # as a multilingual-e5-small collection gets
    docs = [{"id": f"d{i}", "text": f"Key rotation note {i}: rotate keys."} for i in range(30)]

    def passages_sent(client: TestClient, **extra: Any) -> int:
        r = client.post("/v1/chat", json={"question": "rotate keys", "collection": "kb", **extra})
        assert r.status_code == 200, r.text
        system = openai_server.requests[-1].body["messages"][0]["content"]
        return len(re.findall(r"^\[\d+\] ", system, flags=re.M))

    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/collections/kb/documents:batch", json={"documents": docs}).is_success
        assert passages_sent(c) == 16
        assert passages_sent(c, k=5) == 5
