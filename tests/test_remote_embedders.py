"""Remote embedding models (OpenAI-compatible ``/embeddings``, Ollama ``/api/embed``), tested
against local servers speaking each protocol. The servers' vectors are the hash embedder's,
scaled, so results are checkable and normalisation is under test."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

import engram
from engram.errors import ConfigError, ModelMismatch, ModelUnavailable
from engram.providers import get_embedder, is_remote
from engram.providers.embedders.fake import HashEmbedder
from engram.providers.embedders.remote import OllamaEmbedder, OpenAIEmbedder

Protocol = Literal["openai", "ollama"]
DIM = 48
HASH = HashEmbedder(DIM)
DOCS = [
    {"id": "cats", "text": "Cats purr and sleep in the sun all afternoon."},
    {"id": "keys", "text": "Rotate API keys every ninety days and revoke leaked ones."},
    {"id": "tea", "text": "Green tea is brewed at eighty degrees for two minutes."},
]


class EmbeddingServer:
    """An embedding server on 127.0.0.1. ``script`` holds statuses (or ``"garbage"``) to
    answer before the normal reply; ``requests`` records each request's JSON body."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.script: list[int | str] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        port = self.httpd.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/v1" if self.protocol == "openai" else "")

    def spec(self, model: str = "m") -> str:
        return f"{self.protocol}:{model}@{self.base_url}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def reply(self, texts: list[str]) -> dict[str, Any]:
        vectors = (HASH.embed_batch(texts) * 3.0).tolist()  # not unit length: engram normalises
        if self.protocol == "ollama":
            return {"model": "m", "embeddings": vectors}
        # Reversed, with "index": the client must put them back in order.
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return {"object": "list", "model": "m", "data": data[::-1]}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        fake: EmbeddingServer = self.server.fake  # type: ignore[attr-defined]
        expected = "/v1/embeddings" if fake.protocol == "openai" else "/api/embed"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with fake.lock:
            fake.requests.append(body)
            fake.headers.append(dict(self.headers))
            step = fake.script.pop(0) if fake.script else None
        if self.path != expected:
            self._send(404, {"error": f"no route {self.path}"})
        elif step == "garbage":
            self._send(200, {"unexpected": True})
        elif isinstance(step, int):
            self._send(step, {"error": {"message": f"scripted {step}"}})
        else:
            self._send(200, fake.reply(body["input"]))

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(params=["openai", "ollama"])
def server(request: pytest.FixtureRequest) -> Iterator[EmbeddingServer]:
    fake = EmbeddingServer(request.param)
    yield fake
    fake.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_specs_choose_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_remote("openai:text-embedding-3-small") and is_remote("ollama:nomic-embed-text")
    assert not is_remote("hash") and not is_remote("bge-small-en-v1.5")
    assert not is_remote("C:\\models\\bge")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    openai = get_embedder("openai:text-embedding-3-small")
    assert isinstance(openai, OpenAIEmbedder)
    assert openai.model_id == "openai:text-embedding-3-small"
    assert openai.base_url == "https://api.openai.com/v1"
    ollama = get_embedder("ollama:nomic-embed-text:latest@http://gpu-box:11434")
    assert isinstance(ollama, OllamaEmbedder)
    assert (ollama.model_id, ollama.base_url) == (
        "ollama:nomic-embed-text:latest",
        "http://gpu-box:11434",
    )
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        get_embedder("openai:text-embedding-3-small")


def test_vectors_are_the_servers_normalised_in_order(server: EmbeddingServer) -> None:
    embedder = get_embedder(server.spec())
    texts = [d["text"] for d in DOCS]
    vectors = embedder.embed_batch(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, HASH.embed_batch(texts), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_query(texts[1]), vectors[1], atol=1e-6)
    assert server.requests[0] == {"model": "m", "input": texts}
    embedder.close()


def test_dimension_is_learned_from_a_probe_then_the_replies(server: EmbeddingServer) -> None:
    embedder = get_embedder(server.spec())
    assert embedder.dimension == DIM and len(server.requests) == 1  # the probe
    embedder.embed_batch(["x"])
    assert embedder.dimension == DIM and len(server.requests) == 2
    told = get_embedder(server.spec(), dimension=DIM)
    told.embed_batch(["x"])
    assert len(server.requests) == 3  # no probe when the dimension is given
    wrong = get_embedder(server.spec(), dimension=DIM + 1)
    with pytest.raises(ModelUnavailable, match=f"{DIM}-d vector, but this model's are"):
        wrong.embed_batch(["x"])


def test_texts_are_sent_in_batches(server: EmbeddingServer) -> None:
    embedder = get_embedder(server.spec(), batch_size=4)
    texts = [f"text number {i}" for i in range(10)]
    vectors = embedder.embed_batch(texts)
    assert [len(r["input"]) for r in server.requests] == [4, 4, 2]
    np.testing.assert_allclose(vectors, HASH.embed_batch(texts), atol=1e-5)
    assert embedder.embed_batch([]).shape == (0, DIM)


def test_overload_is_retried_with_backoff(server: EmbeddingServer) -> None:
    waits: list[float] = []
    embedder = get_embedder(server.spec(), backoff=0.1, sleep=waits.append)
    server.script = [503, 429]
    vectors = embedder.embed_batch(["hello"])
    assert len(server.requests) == 3 and vectors.shape == (1, DIM)
    assert len(waits) == 2 and 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2
    server.script = [503, 503, 503]
    with pytest.raises(ModelUnavailable, match="HTTP 503") as failed:
        embedder.embed_batch(["hello"])
    assert "ENGRAM_EMBEDDING_MODEL" in (failed.value.hint or "")


def test_a_refused_request_is_not_retried(server: EmbeddingServer) -> None:
    embedder = get_embedder(server.spec(), sleep=lambda s: None)
    server.script = [404]
    with pytest.raises(ModelUnavailable, match="HTTP 404"):
        embedder.embed_batch(["hello"])
    assert len(server.requests) == 1


def test_garbage_is_a_clear_error(server: EmbeddingServer) -> None:
    embedder = get_embedder(server.spec())
    server.script = ["garbage"]
    with pytest.raises(ModelUnavailable, match="not an embedding") as failed:
        embedder.embed_batch(["hello"])
    assert server.base_url in str(failed.value)


def test_a_server_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    embedder = get_embedder(f"openai:m@{url}", retries=1, sleep=lambda s: None)
    with pytest.raises(ModelUnavailable, match="cannot connect") as failed:
        embedder.embed_batch(["hello"])
    error = failed.value
    assert url in str(error) and "ENGRAM_EMBEDDING_MODEL" in (error.hint or "")
    with (
        engram.open(tmp_path, embedding_model=f"openai:m@{url}") as db,
        pytest.raises(ModelUnavailable, match="cannot connect"),
    ):
        db.add(DOCS)


def test_ingest_and_search_end_to_end(server: EmbeddingServer, tmp_path: Path) -> None:
    spec = server.spec("embed-1")
    with engram.open(tmp_path, embedding_model=spec) as db:
        report = db.add(DOCS)
        assert report.failed == 0
        collection = db.collection()
        assert (collection.model_id, collection.dimension) == (f"{server.protocol}:embed-1", DIM)
        hit = db.search("rotate leaked keys", mode="vector", k=1).results[0]
        assert hit.document_key == "keys"
        before = len(server.requests)
        again = db.search("rotate leaked keys", mode="vector", k=1, highlight=False)
        assert again.results[0].document_key == "keys"
        # The query's vector came from the embedding cache, keyed by the model id.
        assert len(server.requests) == before
    # Another model is refused on the same collection, with the fix in the message.
    with (
        engram.open(tmp_path, embedding_model=server.spec("embed-2")) as db,
        pytest.raises(ModelMismatch, match=f"{server.protocol}:embed-1"),
    ):
        db.search("tea", mode="vector")


def test_doctor_embeds_one_sentence_through_the_endpoint(
    server: EmbeddingServer, tmp_path: Path
) -> None:
    from engram.cli.doctor import check_embedder
    from engram.config import Settings

    settings = Settings.build(data_dir=tmp_path, embedding_model=server.spec())
    assert check_embedder(settings).startswith(f"{server.protocol}:m ({DIM}-d)")
    assert len(server.requests) == 1
