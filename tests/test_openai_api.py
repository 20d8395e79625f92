"""The OpenAI-compatible routes, driven by the official ``openai`` client over a real socket:
embeddings (float and base64, single and batch, passage and query) equal to engram's own,
and RAG chat completions, whole and streamed, extractive and from a scripted model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from live import serve_app
from test_llms import TOKENS, FakeServer, sse

import engram
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


@dataclass
class Live:
    url: str
    key: str
    settings: Settings
    upstream: FakeServer

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)


def _live(tmp_path: Path, upstream: FakeServer, llm: str) -> Iterator[Live]:
    settings = Settings.build(
        data_dir=tmp_path, embedding_model="hash", llm=llm, llm_retries=0, llm_timeout=5
    )
    with engram.open(settings=settings) as db:
        key = db.create_key(tenant="acme", scopes=["write"])[1]
    with serve_app(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            r = http.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
            assert r.status_code == 201, r.text
        yield Live(url, key, settings, upstream)


@pytest.fixture
def upstream() -> Iterator[FakeServer]:
    with FakeServer("openai") as server:
        yield server


@pytest.fixture
def live(tmp_path: Path, upstream: FakeServer) -> Iterator[Live]:
    """No language model: extractive answers."""
    yield from _live(tmp_path, upstream, "")


@pytest.fixture
def live_llm(tmp_path: Path, upstream: FakeServer) -> Iterator[Live]:
    """Answers from a scripted OpenAI-compatible model server."""
    yield from _live(tmp_path, upstream, f"vllm:test-model@{upstream.base_url}")


def _engram_vectors(settings: Settings, texts: list[str], kind: str = "passage") -> np.ndarray:
    with engram.open(settings=settings) as db:
        return db.embedder().embed_batch(texts, kind=kind)  # type: ignore[arg-type]


# -- embeddings ------------------------------------------------------------------------------
def test_embeddings_equal_engrams_own(live: Live) -> None:
    client = live.client()
    texts = ["rotate the keys", "paid vacation", "déjà vu"]
    # The client asks for base64 unless told otherwise, and decodes it.
    batch = client.embeddings.create(model="engram", input=texts)
    assert [d.index for d in batch.data] == [0, 1, 2]
    assert batch.model == "hash-64" and batch.object == "list"
    assert batch.usage.prompt_tokens == batch.usage.total_tokens > 0
    expected = _engram_vectors(live.settings, texts)
    np.testing.assert_array_equal(np.array([d.embedding for d in batch.data]), expected)
    floats = client.embeddings.create(model="hash", input=texts[0], encoding_format="float")
    assert len(floats.data) == 1
    np.testing.assert_allclose(floats.data[0].embedding, expected[0], rtol=1e-6)
    query = client.embeddings.create(
        model="engram", input=texts[0], extra_body={"input_type": "query"}
    )
    np.testing.assert_array_equal(
        query.data[0].embedding, _engram_vectors(live.settings, texts[:1], "query")[0]
    )


def test_embeddings_refusals(live: Live) -> None:
    client = live.client()
    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "text-embedding-3-small" in unknown.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="engram", input="x", dimensions=7)
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="engram", input=[])
    with pytest.raises(openai.APIStatusError) as long:
        client.embeddings.create(model="engram", input="x" * 40_000)
    assert long.value.status_code == 413


# -- chat completions ------------------------------------------------------------------------
def test_models_are_the_tenants_collections(live: Live) -> None:
    models = live.client().models.list()
    ids = [m.id for m in models.data]
    assert "engram/kb" in ids and all(i.startswith("engram/") for i in ids)
    assert not any("recall/" in i for i in ids)  # users' recall indexes are not models
    assert all(m.owned_by == "engram" and m.created > 0 for m in models.data)


def test_extractive_completion(live: Live) -> None:
    completion = live.client().chat.completions.create(
        model="engram/kb",
        messages=[
            {"role": "system", "content": "Ignored: engram's own instructions apply."},
            {"role": "user", "content": "How often should I rotate an API key?"},
        ],
    )
    assert completion.object == "chat.completion" and completion.model == "engram/kb"
    text = completion.choices[0].message.content or ""
    assert "90 days" in text and "[1]" in text
    assert completion.choices[0].finish_reason == "stop"
    extra = completion.model_extra or {}
    assert extra["citations"][0]["document"] == "keys"
    assert extra["engram"]["extractive"] is True and extra["engram"]["llm"] is None


def test_streamed_extractive_completion(live: Live) -> None:
    stream = live.client().chat.completions.create(
        model="kb",  # a bare collection name works too
        messages=[{"role": "user", "content": "How often should I rotate an API key?"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "90 days" in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert (last.model_extra or {})["citations"][0]["document"] == "keys"


def test_stream_ends_with_done(live: Live) -> None:
    body = {
        "model": "engram/kb",
        "messages": [{"role": "user", "content": "rotate an API key"}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {live.key}"}
    with (
        httpx.Client(base_url=live.url, headers=headers, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_completion_from_a_model(live_llm: Live) -> None:
    completion = live_llm.client().chat.completions.create(
        model="engram/kb",
        messages=[
            {"role": "user", "content": "How do I rotate an API key?"},
            {"role": "assistant", "content": "Create a new one first [1]."},
            {"role": "user", "content": [{"type": "text", "text": "How often?"}]},
        ],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "".join(TOKENS)
    extra = completion.model_extra or {}
    assert extra["engram"]["extractive"] is False and extra["engram"]["llm"] == "vllm:test-model"
    assert [c["n"] for c in extra["citations"]] == [1]
    sent = live_llm.upstream.requests[-1].body
    assert sent["max_tokens"] == 50
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "system" and roles[-3:] == ["user", "assistant", "user"]
    assert "How often?" in sent["messages"][-1]["content"]


def test_streamed_completion_from_a_model(live_llm: Live) -> None:
    stream = live_llm.client().chat.completions.create(
        model="engram/kb",
        messages=[{"role": "user", "content": "How do I rotate an API key?"}],
        stream=True,
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(TOKENS)
    extra = chunks[-1].model_extra or {}
    assert [c["n"] for c in extra["citations"]] == [1]
    assert extra["engram"]["llm"] == "vllm:test-model"
    assert live_llm.upstream.requests[-1].body["stream"] is True


def test_a_model_failing_mid_stream_raises_in_the_client(live_llm: Live) -> None:
    live_llm.upstream.script.append(sse(TOKENS, cut=True))
    stream = live_llm.client().chat.completions.create(
        model="engram/kb",
        messages=[{"role": "user", "content": "How do I rotate an API key?"}],
        stream=True,
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_completion_refusals(live: Live) -> None:
    client = live.client()
    question = [{"role": "user", "content": "rotate?"}]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="engram/nope", messages=question)  # type: ignore[arg-type]
    assert "nope" in missing.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="engram/kb",
            messages=[{"role": "assistant", "content": "the user never asked"}],
        )
    with pytest.raises(openai.AuthenticationError):
        live.client("egm_not_a_key").chat.completions.create(
            model="engram/kb",
            messages=question,  # type: ignore[arg-type]
        )
    with pytest.raises(openai.AuthenticationError):
        live.client("egm_not_a_key").embeddings.create(model="engram", input="x")


# -- the documented example ------------------------------------------------------------------
def test_integrations_example_runs(
    live: Live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/integrations.md's example, executed as written against a live server (only its
    address changes: the test server's port is a free one)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text()
    block = page.split("<!-- example:start -->")[1].split("<!-- example:end -->")[0]
    code = block.strip().removeprefix("```python").removesuffix("```")
    assert "http://127.0.0.1:8000/v1" in code
    monkeypatch.setenv("ENGRAM_KEY", live.key)
    exec(compile(code.replace("http://127.0.0.1:8000", live.url), "integrations.md", "exec"), {})
    printed = capsys.readouterr().out
    out = printed.splitlines()
    assert out[0] == "2 64"  # two vectors of the hash embedder's 64 dimensions
    assert printed.count("90 days") == 2  # the answer, whole and streamed
    assert any(line.startswith("1 keys [") for line in out)
    assert out[-1] == "cited: ['keys']"


def test_the_user_field_brings_that_users_memories(live_llm: Live) -> None:
    headers = {"Authorization": f"Bearer {live_llm.key}"}
    with httpx.Client(base_url=live_llm.url, headers=headers, timeout=30) as http:
        memory = {"content": "The user rotates API keys monthly.", "user_id": "u1"}
        assert http.post("/v1/memories", json=memory).status_code == 201
    live_llm.client().chat.completions.create(
        model="engram/kb",
        messages=[{"role": "user", "content": "How often do I rotate API keys?"}],
        user="u1",
        temperature=0.2,
    )
    sent = live_llm.upstream.requests[-1].body
    assert sent["temperature"] == 0.2
    assert "rotates API keys monthly" in json.dumps(sent["messages"])
