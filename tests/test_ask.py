"""Answers from the library (``db.ask``, ``db.ask_stream``) and the shell (``engram ask``):
the passages found as ``POST /v1/chat`` finds them, written by a model on loopback or quoted
when none is configured, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_llms import TOKENS, FakeServer, closed_port_url

import engram
from engram.config import Settings
from engram.errors import CollectionNotFound, ConversationNotFound, InvalidInput
from engram.providers.llms import ChatMessage
from engram.providers.llms.errors import LLMUnavailable

DOCS = [
    {
        "id": "keys",
        "title": "API keys",
        "text": "Rotate an API key every 90 days: create a new key, deploy it, revoke the old one.",
    },
    {"id": "leave", "title": "Leave", "text": "Employees get 25 days of paid vacation per year."},
]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Settings.build(
        data_dir=tmp_path, embedding_model="hash", database_url=url, llm_retries=0, llm_timeout=5
    )


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    with FakeServer("openai") as server:
        yield server


def seeded(settings: Settings, **overrides: object) -> engram.Engram:
    db = engram.open(settings=settings.model_copy(update=overrides))
    db.add(DOCS, collection="kb")
    return db


def test_an_extractive_answer_cites_the_passage_it_quotes(settings: Settings) -> None:
    with seeded(settings) as db:
        found = db.ask("how often should I rotate an API key?", collection="kb")
        assert found.extractive and found.model is None
        assert "90 days" in found.text
        assert [(c.n, c.document, c.collection) for c in found.citations] == [(1, "keys", "kb")]
        nothing = db.ask("what is the capital of Peru?", collection="kb")
        assert nothing.citations == [] and nothing.text.startswith("Not found")
        with pytest.raises(CollectionNotFound):
            db.ask("anything", collection="missing")


def test_a_model_writes_the_answer_and_streams_it(
    settings: Settings, openai_server: FakeServer
) -> None:
    with seeded(settings, llm=f"vllm:test-model@{openai_server.base_url}") as db:
        db.memory.add("The user prefers short answers.", user_id="u1")
        found = db.ask("rotate api key?", collection="kb", user_id="u1")
        assert found.text == "".join(TOKENS) and found.model == "vllm:test-model"
        assert [c.document for c in found.citations] == ["keys"]  # the reply cites [1]
        system = openai_server.requests[-1].body["messages"][0]["content"]
        assert "Rotate an API key" in system and "prefers short answers" in system

        events = list(db.ask_stream("rotate api key?", collection=["kb"]))
        assert [e.data["text"] for e in events if e.type == "token"] == TOKENS
        assert [e.type for e in events[-2:]] == ["citations", "done"]
        assert events[-1].data["ok"] is True


def test_an_answer_in_a_conversation_follows_it_and_is_appended(
    settings: Settings, openai_server: FakeServer
) -> None:
    with seeded(settings, llm=f"vllm:test-model@{openai_server.base_url}") as db:
        conv = db.memory.create_conversation("u1")
        db.memory.add("The user prefers short answers.", user_id="u1")
        first = db.ask("rotate api key?", collection="kb", conversation_id=conv.id)
        sent = openai_server.requests[-1].body["messages"]
        assert "prefers short answers" in sent[0]["content"]  # the conversation's user
        events = list(db.ask_stream("and then?", collection="kb", conversation_id=conv.id))
        assert events[-1].type == "done" and events[-1].data["ok"]
        roles = [m["role"] for m in openai_server.requests[-1].body["messages"]]
        assert roles == ["system", "user", "assistant", "user"]  # the first turn, then this
        kept = db.memory.messages(conv.id)
        assert [(m.role, m.content) for m in kept] == [
            ("user", "rotate api key?"),
            ("assistant", first.text),
            ("user", "and then?"),
            ("assistant", "".join(TOKENS)),
        ]
        assert kept[1].metadata["citations"][0]["document"] == "keys"
        assert kept[3].metadata["model"] == "vllm:test-model"

        # A stream closed early, or a bad call, appends nothing.
        stream = db.ask_stream("VPN?", collection="kb", conversation_id=conv.id)
        assert next(stream).type == "token"
        stream.close()
        with pytest.raises(ConversationNotFound):
            db.ask("VPN?", collection="kb", conversation_id="nope")
        with pytest.raises(InvalidInput):
            db.ask("VPN?", collection="kb", conversation_id=conv.id, history=[first_turn()])
        assert len(db.memory.messages(conv.id)) == 4


def first_turn() -> ChatMessage:
    return ChatMessage("user", "hello")


def test_an_unreachable_model_raises_or_ends_the_stream_with_an_error(settings: Settings) -> None:
    with seeded(settings, llm=f"vllm:gone@{closed_port_url()}") as db:
        with pytest.raises(LLMUnavailable):
            db.ask("rotate api key", collection="kb")
        events = list(db.ask_stream("rotate api key", collection="kb"))
        assert [e.type for e in events] == ["error", "done"]


def run_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ENGRAM_DATA_DIR": str(settings.data_dir), **env}
    environ["ENGRAM_EMBEDDING_MODEL"] = "hash"
    environ.pop("ENGRAM_LLM", None)
    environ |= env
    if settings.database_url:
        environ["ENGRAM_DATABASE_URL"] = str(settings.database_url)
    cli = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
    return subprocess.run(
        [sys.executable, "-c", cli, *args], env=environ, capture_output=True, text=True, timeout=60
    )


def test_engram_ask(settings: Settings, openai_server: FakeServer) -> None:
    seeded(settings).close()
    quoted = run_cli(settings, "ask", "how often should I rotate an API key?", "-c", "kb")
    assert quoted.returncode == 0, quoted.stderr
    assert "90 days" in quoted.stdout and "[1] API keys — keys v1 chars 0-" in quoted.stdout

    as_json = run_cli(settings, "ask", "rotate api key", "-c", "kb", "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["extractive"] is True and body["citations"][0]["document"] == "keys"

    model = f"vllm:test-model@{openai_server.base_url}"
    written = run_cli(settings, "ask", "rotate api key?", "-c", "kb", ENGRAM_LLM=model)
    assert written.returncode == 0, written.stderr
    assert written.stdout.startswith("".join(TOKENS)) and "[1] API keys — keys v1" in written.stdout

    gone = run_cli(settings, "ask", "rotate?", "-c", "kb", ENGRAM_LLM=f"vllm:x@{closed_port_url()}")
    assert gone.returncode == 1 and "Error:" in gone.stderr
    missing = run_cli(settings, "ask", "rotate?", "-c", "nope")
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_engram_chat_keeps_the_conversation(settings: Settings, openai_server: FakeServer) -> None:
    seeded(settings).close()
    model = f"vllm:test-model@{openai_server.base_url}"
    cli = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
    environ = {**os.environ, "ENGRAM_DATA_DIR": str(settings.data_dir), "ENGRAM_LLM": model}
    environ |= {"ENGRAM_EMBEDDING_MODEL": "hash", "ENGRAM_LLM_RETRIES": "0"}
    if settings.database_url:
        environ["ENGRAM_DATABASE_URL"] = str(settings.database_url)
    run = subprocess.run(
        [sys.executable, "-c", cli, "chat", "-c", "kb", "--user", "ana"],
        input="rotate api key?\nand after that?\n\n",
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("".join(TOKENS)) == 2 and "[1] API keys — keys v1" in run.stdout
    conversation_id = run.stderr.split("conversation ")[1].split()[0]
    # The second question was sent after the first turn, which the conversation kept.
    roles = [m["role"] for m in openai_server.requests[-1].body["messages"]]
    assert roles[-3:] == ["user", "assistant", "user"]
    with engram.open(settings=settings) as db:
        kept = db.memory.messages(conversation_id)
        assert [m.content for m in kept if m.role == "user"] == [
            "rotate api key?",
            "and after that?",
        ]
        assert db.memory.conversation(conversation_id).user_id == "ana"
