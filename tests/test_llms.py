"""LLM providers against real HTTP servers on 127.0.0.1 speaking the OpenAI (JSON + SSE) and
Ollama (JSON + NDJSON) wire protocols: completion, streaming, retries, error translation,
fallback, key hygiene, and streamed answers that end cleanly when the model fails."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
import pytest

from engram.answers import stream_answer
from engram.errors import ConfigError, EngramError
from engram.providers.llms import (
    ChatMessage,
    LLMError,
    LLMUnavailable,
    get_llm,
    llm_chain,
    parse_spec,
)
from engram.providers.llms.errors import translate
from engram.providers.llms.fallback import FallbackLLM
from engram.providers.llms.ollama import OllamaLLM
from engram.providers.llms.openai_compat import OpenAICompatLLM
from engram.types import SearchResult

KEY = "sk-test-0123456789abcdef-SECRET"
MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello.")]
TOKENS = ["Hello", ", ", "world", " [1]", "."]
# Fast and bounded: tests never wait on real backoff or on a default 60 s timeout.
FAST: dict[str, Any] = {"retries": 2, "backoff": 0.01, "max_backoff": 0.05, "timeout": 5.0}

Protocol = Literal["openai", "ollama"]
Step = Callable[["_Handler", dict[str, Any]], None]


# --- a real local model server -----------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up teardown
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout, closed stream) breaks the pipe: expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like real servers
    timeout = 10  # idle keep-alive connections end on their own
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        fake = self.server.fake
        with fake.lock:
            fake.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            step = fake.script.pop(0) if fake.script else fake.default
        step(self, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # wire helpers
    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def cut(self) -> None:
        # Close without the terminating zero-length chunk: a server that died mid-reply.
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """A model server on 127.0.0.1. Each request consumes the next step of ``script``; with
    no script left it answers ``TOKENS`` in the protocol's normal shape."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.script: list[Step] = []
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends stalls at teardown
        self.httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.fake = self
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        port = self.httpd.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/v1" if self.protocol == "openai" else "")

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def default(self, handler: _Handler, body: dict[str, Any]) -> None:
        if self.protocol == "openai":
            step = sse(TOKENS) if body.get("stream") else completion("".join(TOKENS))
        else:
            step = ndjson(TOKENS) if body.get("stream") else ollama_reply("".join(TOKENS))
        step(handler, body)


def completion(text: str) -> Step:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.send_json(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    return step


def sse(
    tokens: list[str],
    *,
    finish: bool = True,
    done: bool = True,
    cut: bool = False,
    stall: float = 0.0,
) -> Step:
    """OpenAI streaming: a role-only first chunk, content deltas, a finish chunk, a usage chunk
    with no choices, keep-alive comments, then ``data: [DONE]``."""

    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.start_chunked("text/event-stream")

        def event(payload: Any) -> None:
            h.chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        h.chunk(b": keep-alive\n\n")
        for i, token in enumerate(tokens):
            event({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})
            if i == 0 and stall:
                h.server.fake.release.wait(stall)
        if cut:
            h.cut()
            return
        if finish:
            event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 5}})
        if done:
            h.chunk(b"data: [DONE]\n\n")
        h.chunk(b"")

    return step


def ollama_reply(text: str) -> Step:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.send_json(
            200,
            {
                "model": body["model"],
                "message": {"role": "assistant", "content": text},
                "done": True,
                "done_reason": "stop",
            },
        )

    return step


def ndjson(tokens: list[str], *, cut: bool = False, error: str | None = None) -> Step:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.start_chunked("application/x-ndjson")
        for token in tokens:
            line = {"model": body["model"], "message": {"role": "assistant", "content": token}}
            h.chunk(json.dumps({**line, "done": False}).encode() + b"\n")
        if cut:
            h.cut()
            return
        if error:
            h.chunk(json.dumps({"error": error}).encode() + b"\n")
        else:
            last = {"model": body["model"], "message": {"role": "assistant", "content": ""}}
            h.chunk(json.dumps({**last, "done": True, "done_reason": "stop"}).encode() + b"\n")
        h.chunk(b"")

    return step


def status(code: int, payload: Any = None, headers: dict[str, str] | None = None) -> Step:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.send_json(code, payload or {"error": {"message": f"status {code}"}}, headers)

    return step


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    with FakeServer("openai") as server:
        yield server


@pytest.fixture
def ollama_server() -> Iterator[FakeServer]:
    with FakeServer("ollama") as server:
        yield server


def closed_port_url(path: str = "/v1") -> str:
    """A URL nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def openai(server: FakeServer, **opts: Any) -> OpenAICompatLLM:
    return OpenAICompatLLM("test-model", **{"base_url": server.base_url, **FAST, **opts})


def ollama(server: FakeServer, **opts: Any) -> OllamaLLM:
    return OllamaLLM("llama3.2:3b", **{"base_url": server.base_url, **FAST, **opts})


# --- OpenAI-compatible ---------------------------------------------------------------------


def test_openai_complete_sends_the_chat_request(openai_server: FakeServer) -> None:
    with openai(openai_server, api_key=KEY) as llm:
        text = llm.complete(MESSAGES, max_tokens=64, temperature=0.1)
    assert text == "Hello, world [1]."
    (req,) = openai_server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.body == {
        "model": "test-model",
        "messages": [m.to_dict() for m in MESSAGES],
        "stream": False,
        "max_tokens": 64,
        "temperature": 0.1,
    }


def test_openai_defaults_leave_limits_to_the_server(openai_server: FakeServer) -> None:
    with openai(openai_server) as llm:
        llm.complete(MESSAGES)
    (req,) = openai_server.requests
    assert "max_tokens" not in req.body and "temperature" not in req.body
    assert "Authorization" not in req.headers


def test_openai_stream_yields_deltas_over_sse(openai_server: FakeServer) -> None:
    with openai(openai_server) as llm:
        assert list(llm.stream(MESSAGES, max_tokens=8)) == TOKENS
    (req,) = openai_server.requests
    assert req.body["stream"] is True and req.body["max_tokens"] == 8
    assert req.headers["Accept"] == "text/event-stream"


def test_openai_max_tokens_param_is_configurable(openai_server: FakeServer) -> None:
    with openai(openai_server, max_tokens_param="max_completion_tokens") as llm:
        llm.complete(MESSAGES, max_tokens=5)
    assert openai_server.requests[0].body["max_completion_tokens"] == 5


def test_stream_without_done_but_with_finish_reason_is_complete(
    openai_server: FakeServer,
) -> None:
    openai_server.script = [sse(["a", "b"], done=False)]
    with openai(openai_server) as llm:
        assert list(llm.stream(MESSAGES)) == ["a", "b"]


def test_stream_without_any_end_marker_is_truncated(openai_server: FakeServer) -> None:
    # A clean end of body that is not the end of the reply (a proxy gave up, say).
    openai_server.script = [sse(["a", "b"], finish=False, done=False)]
    with openai(openai_server) as llm, pytest.raises(LLMUnavailable, match="ended before"):
        list(llm.stream(MESSAGES))


def test_error_chunk_mid_stream_raises(openai_server: FakeServer) -> None:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.start_chunked("text/event-stream")
        h.chunk(b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n')
        h.chunk(b'data: {"error":{"message":"CUDA out of memory"}}\n\n')
        h.chunk(b"")

    openai_server.script = [step]
    with openai(openai_server) as llm:
        stream = llm.stream(MESSAGES)
        assert next(stream) == "Hi"
        with pytest.raises(LLMError, match="CUDA out of memory"):
            next(stream)


def test_non_json_reply_is_an_llm_error(openai_server: FakeServer) -> None:
    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "9")
        h.end_headers()
        h.wfile.write(b"<html>hi!")

    openai_server.script = [step]
    with openai(openai_server) as llm, pytest.raises(LLMError, match="not JSON"):
        llm.complete(MESSAGES)


# --- Ollama -----------------------------------------------------------------------------------


def test_ollama_complete_and_options(ollama_server: FakeServer) -> None:
    with ollama(ollama_server, options={"num_ctx": 8192}) as llm:
        assert llm.complete(MESSAGES, max_tokens=32, temperature=0.0) == "Hello, world [1]."
    (req,) = ollama_server.requests
    assert req.path == "/api/chat"
    assert req.body == {
        "model": "llama3.2:3b",
        "messages": [m.to_dict() for m in MESSAGES],
        "stream": False,
        "options": {"num_ctx": 8192, "num_predict": 32, "temperature": 0.0},
    }


def test_ollama_stream_yields_deltas_over_ndjson(ollama_server: FakeServer) -> None:
    with ollama(ollama_server) as llm:
        assert list(llm.stream(MESSAGES)) == TOKENS
    assert ollama_server.requests[0].body["stream"] is True


def test_ollama_error_line_mid_stream_raises(ollama_server: FakeServer) -> None:
    ollama_server.script = [ndjson(["Hi"], error="runner crashed")]
    with ollama(ollama_server) as llm:
        stream = llm.stream(MESSAGES)
        assert next(stream) == "Hi"
        with pytest.raises(LLMError, match="runner crashed"):
            next(stream)


def test_ollama_missing_model_says_to_pull_it(ollama_server: FakeServer) -> None:
    ollama_server.script = [status(404, {"error": 'model "llama3.2:3b" not found'})]
    with ollama(ollama_server) as llm, pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert not isinstance(info.value, LLMUnavailable)
    assert "not found" in info.value.message and "ollama pull" in (info.value.hint or "")


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_retries_on_500_then_succeeds(openai_server: FakeServer, stream: bool) -> None:
    openai_server.script = [status(500), status(502)]
    delays: list[float] = []
    with openai(openai_server, backoff=0.2, max_backoff=1, sleep=delays.append) as llm:
        text = "".join(llm.stream(MESSAGES)) if stream else llm.complete(MESSAGES)
    assert text == "Hello, world [1]."
    assert len(openai_server.requests) == 3
    # exponential, with jitter in [0.5, 1] of the nominal delay
    assert 0.1 <= delays[0] <= 0.2 and 0.2 <= delays[1] <= 0.4


def test_429_honours_a_short_retry_after(openai_server: FakeServer) -> None:
    openai_server.script = [status(429, headers={"Retry-After": "0.03"})]
    delays: list[float] = []
    with openai(openai_server, backoff=0.001, sleep=delays.append) as llm:
        assert llm.complete(MESSAGES)
    assert delays == [0.03]


def test_429_with_a_long_retry_after_fails_at_once(openai_server: FakeServer) -> None:
    openai_server.script = [status(429, headers={"Retry-After": "120"})]
    with openai(openai_server) as llm, pytest.raises(LLMUnavailable) as info:
        llm.complete(MESSAGES)
    assert len(openai_server.requests) == 1
    assert info.value.details["upstream_status"] == 429


def test_retries_are_bounded(openai_server: FakeServer) -> None:
    openai_server.script = [status(503)] * 5
    with openai(openai_server, retries=2) as llm, pytest.raises(LLMUnavailable) as info:
        llm.complete(MESSAGES)
    assert len(openai_server.requests) == 3
    assert info.value.status == 503 and info.value.code == "llm_unavailable"
    assert "HTTP 503" in info.value.message


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_4xx_is_not_retried(openai_server: FakeServer, code: int) -> None:
    openai_server.script = [status(code)]
    with openai(openai_server) as llm, pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert len(openai_server.requests) == 1
    assert type(info.value) is LLMError
    assert info.value.status == 502 and info.value.code == "llm_error"
    assert info.value.details["upstream_status"] == code


def test_unreachable_endpoint_fails_fast_as_unavailable() -> None:
    started = time.monotonic()
    llm = OpenAICompatLLM("m", base_url=closed_port_url(), **FAST)
    with llm, pytest.raises(LLMUnavailable, match="cannot connect") as info:
        llm.complete(MESSAGES)
    assert time.monotonic() - started < 2.0
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.to_dict()["error"]["code"] == "llm_unavailable"


# --- error translation: one boundary, checked ------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (httpx.ConnectError("refused"), LLMUnavailable, "cannot connect"),
        (httpx.ConnectTimeout("slow"), LLMUnavailable, "timed out (connect"),
        (httpx.ReadTimeout("slow"), LLMUnavailable, "timed out (read"),
        (httpx.WriteTimeout("slow"), LLMUnavailable, "timed out (write"),
        (httpx.PoolTimeout("busy"), LLMUnavailable, "timed out (pool"),
        (httpx.ReadError("reset"), LLMUnavailable, "connection to"),
        (httpx.RemoteProtocolError("peer closed"), LLMUnavailable, "connection to"),
        (httpx.UnsupportedProtocol("ftp"), LLMError, "bad base URL"),
        (httpx.DecodingError("gzip"), LLMError, "request to"),
        (httpx.TooManyRedirects("loop"), LLMError, "request to"),
    ],
)
def test_httpx_errors_are_translated(
    exc: httpx.HTTPError, expected: type[LLMError], text: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    llm = OpenAICompatLLM(
        "m", base_url="http://llm.invalid/v1", transport=httpx.MockTransport(handler), retries=0
    )
    with llm, pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert type(info.value) is expected
    assert text in info.value.message
    assert info.value.__cause__ is exc


def test_translate_names_the_endpoint_not_the_key() -> None:
    error = translate(
        httpx.ConnectError(f"refused for {KEY}"), where="openai model 'm'", timeout=1, secrets=[KEY]
    )
    assert KEY not in str(error) and "***" in str(error)


def test_injected_client_is_used_and_left_open(openai_server: FakeServer) -> None:
    with httpx.Client() as client:
        with OpenAICompatLLM("m", base_url=openai_server.base_url, client=client) as llm:
            assert llm.complete(MESSAGES)
        assert not client.is_closed


# --- API keys never leak ---------------------------------------------------------------------


def test_api_key_echoed_by_the_server_is_redacted(openai_server: FakeServer) -> None:
    openai_server.script = [
        status(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}})
    ]
    with openai(openai_server, api_key=KEY) as llm, pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    error = info.value
    assert "Incorrect API key provided: ***" in error.message
    assert "API key" in (error.hint or "")
    for text in (str(error), repr(error), json.dumps(error.to_dict()), repr(llm), llm.where):
        assert KEY not in text


def test_api_key_in_the_url_is_not_shown() -> None:
    url = closed_port_url().replace("http://", f"http://user:{KEY}@")
    with OpenAICompatLLM("m", base_url=url, **FAST) as llm, pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    chain: BaseException | None = info.value
    while chain is not None:  # nor anywhere in the chained exceptions
        assert KEY not in str(chain)
        chain = chain.__cause__
    assert KEY not in json.dumps(info.value.to_dict())


def test_api_key_is_not_in_a_failed_chain_either(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_TEST_KEY", KEY)
    chain = llm_chain(
        [f"openai:a@{closed_port_url()}#ENGRAM_TEST_KEY", f"ollama:b@{closed_port_url('')}"],
        **FAST,
    )
    with chain, pytest.raises(LLMUnavailable) as info:
        chain.complete(MESSAGES)
    assert KEY not in json.dumps(info.value.to_dict()) and KEY not in str(info.value)


# --- fallback -------------------------------------------------------------------------------


def test_fallback_to_the_second_provider(ollama_server: FakeServer) -> None:
    dead = OpenAICompatLLM("dead", base_url=closed_port_url(), **FAST)
    with FallbackLLM([dead, ollama(ollama_server)]) as chain:
        reply = chain.reply(MESSAGES)
        assert reply.text == "Hello, world [1]." and reply.model_id == "ollama:llama3.2:3b"
        assert chain.complete(MESSAGES) == "Hello, world [1]."
        stream = chain.reply_stream(MESSAGES)
        assert stream.model_id == "ollama:llama3.2:3b"
        assert list(stream) == TOKENS
        assert list(chain.stream(MESSAGES)) == TOKENS
    assert len(ollama_server.requests) == 4


def test_fallback_after_a_4xx_too(openai_server: FakeServer, ollama_server: FakeServer) -> None:
    # A 401 is not worth retrying on the same endpoint, but another endpoint may well work.
    openai_server.script = [status(401)]
    with FallbackLLM([openai(openai_server), ollama(ollama_server)]) as chain:
        assert chain.complete(MESSAGES) == "Hello, world [1]."


def test_stream_failure_after_first_token_is_not_a_fallback(
    openai_server: FakeServer, ollama_server: FakeServer
) -> None:
    openai_server.script = [sse(TOKENS, cut=True)]
    with FallbackLLM([openai(openai_server), ollama(ollama_server)]) as chain:
        received = []
        with pytest.raises(LLMUnavailable):
            for token in chain.stream(MESSAGES):
                received.append(token)
    assert received == TOKENS  # everything sent before the cut, and nothing spliced after
    assert ollama_server.requests == []


def test_every_provider_failing_reports_each(openai_server: FakeServer) -> None:
    openai_server.script = [status(400, {"error": {"message": "bad request"}})]
    dead = OllamaLLM("dead", base_url=closed_port_url(""), **FAST)
    with FallbackLLM([openai(openai_server), dead]) as chain, pytest.raises(LLMError) as info:
        chain.complete(MESSAGES)
    assert isinstance(info.value, LLMUnavailable)  # the last failure's class
    attempts = info.value.details["attempts"]
    assert [a["model"] for a in attempts] == ["openai:test-model", "ollama:dead"]
    assert [a["code"] for a in attempts] == ["llm_error", "llm_unavailable"]
    assert "bad request" in info.value.message and "cannot connect" in info.value.message


# --- streamed answers over a real server: always end, never hang ------------------------------

PASSAGES = [
    SearchResult(1, "cats.md", 1, 2, "Cats", "Cats purr when content.", 0, 24, 0.9),
]


def _events(server_llm: Any, **opts: Any) -> list[tuple[str, dict[str, Any]]]:
    events = stream_answer("Do cats purr?", PASSAGES, server_llm, **opts)
    return [(e.type, e.data) for e in events]


def test_stream_answer_over_sse(openai_server: FakeServer) -> None:
    with openai(openai_server) as llm:
        events = _events(llm)
    assert [t for t, _ in events] == ["token"] * len(TOKENS) + ["citations", "done"]
    assert "".join(d["text"] for t, d in events if t == "token") == "Hello, world [1]."
    assert events[-2][1]["citations"][0]["document"] == "cats.md"
    assert events[-1][1] == {"model": "openai:test-model", "extractive": False, "ok": True}


@pytest.mark.parametrize("protocol", ["openai", "ollama"])
def test_connection_cut_mid_stream_gives_an_error_event(
    openai_server: FakeServer, ollama_server: FakeServer, protocol: str
) -> None:
    if protocol == "openai":
        openai_server.script = [sse(["Cats", " purr"], cut=True)]
        llm: Any = openai(openai_server)
    else:
        ollama_server.script = [ndjson(["Cats", " purr"], cut=True)]
        llm = ollama(ollama_server)
    started = time.monotonic()
    with llm:
        events = _events(llm)
    assert time.monotonic() - started < 5
    assert [t for t, _ in events] == ["token", "token", "error", "done"]
    assert events[2][1]["code"] == "llm_unavailable"
    assert events[3][1]["ok"] is False


def test_stalled_stream_times_out_with_an_error_event(openai_server: FakeServer) -> None:
    openai_server.script = [sse(["Cats", " purr"], stall=30)]
    started = time.monotonic()
    with openai(openai_server) as llm:
        events = _events(llm, timeout=0.5)
    assert time.monotonic() - started < 5
    assert [t for t, _ in events] == ["token", "error", "done"]
    assert "timed out (read" in events[1][1]["message"]


def test_unreachable_model_gives_an_error_event_not_an_exception() -> None:
    with OpenAICompatLLM("m", base_url=closed_port_url(), **FAST) as llm:
        events = _events(llm)
    assert [t for t, _ in events] == ["error", "done"]
    assert events[0][1]["code"] == "llm_unavailable"


# --- specs and the factory --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ollama:llama3.2", ("ollama", "llama3.2", None, None)),
        ("ollama:llama3.2:3b", ("ollama", "llama3.2:3b", None, None)),
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini", None, None)),
        (
            " openai:Qwen/Qwen2.5-7B@http://gpu:8000/v1#VLLM_KEY ",
            ("openai", "Qwen/Qwen2.5-7B", "http://gpu:8000/v1", "VLLM_KEY"),
        ),
        ("vllm:model@v2", ("vllm", "model@v2", None, None)),  # "@" not before a URL
        ("DeepSeek:deepseek-chat", ("deepseek", "deepseek-chat", None, None)),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str, str | None, str | None]) -> None:
    parsed = parse_spec(spec)
    assert (parsed.provider, parsed.model, parsed.base_url, parsed.key_env) == expected


@pytest.mark.parametrize("spec", ["", "llama3.2", "bogus:model", "ollama:", "openai:@http://x/v1"])
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec)
    assert "PROVIDER:MODEL" in (info.value.hint or "")


def test_get_llm_builds_each_provider(openai_server: FakeServer, ollama_server: FakeServer) -> None:
    with get_llm(f"vllm:test-model@{openai_server.base_url}", **FAST) as llm:
        assert isinstance(llm, OpenAICompatLLM) and llm.model_id == "vllm:test-model"
        assert llm.complete(MESSAGES) == "Hello, world [1]."
    with get_llm(f"ollama:llama3.2:3b@{ollama_server.base_url}", **FAST) as llm:
        assert isinstance(llm, OllamaLLM) and llm.model_id == "ollama:llama3.2:3b"
        assert list(llm.stream(MESSAGES)) == TOKENS


def test_chain_options_reach_the_links_that_understand_them(
    openai_server: FakeServer, ollama_server: FakeServer
) -> None:
    openai_server.script = [status(503)] * 3
    specs = [f"vllm:test-model@{openai_server.base_url}", f"ollama:m@{ollama_server.base_url}"]
    opts = {**FAST, "options": {"num_ctx": 8192}, "max_tokens_param": "max_completion_tokens"}
    with llm_chain(specs, **opts) as chain:
        assert chain.complete(MESSAGES, max_tokens=9) == "Hello, world [1]."
    assert openai_server.requests[0].body["max_completion_tokens"] == 9
    assert "options" not in openai_server.requests[0].body
    assert ollama_server.requests[0].body["options"] == {"num_ctx": 8192, "num_predict": 9}


def test_provider_key_is_never_sent_to_another_host(
    openai_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("MY_SERVER_KEY", "other-key")
    with get_llm(f"openai:test-model@{openai_server.base_url}", **FAST) as llm:
        llm.complete(MESSAGES)
    with get_llm(f"openai:test-model@{openai_server.base_url}#MY_SERVER_KEY", **FAST) as llm:
        llm.complete(MESSAGES)
    assert "Authorization" not in openai_server.requests[0].headers
    assert openai_server.requests[1].headers["Authorization"] == "Bearer other-key"


def test_missing_keys_fail_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ENGRAM_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="needs an API key") as info:
        get_llm("openai:gpt-4o-mini")
    assert info.value.hint == "export OPENAI_API_KEY=..."
    with pytest.raises(ConfigError, match="ENGRAM_NO_SUCH_KEY"):
        get_llm("ollama:m#ENGRAM_NO_SUCH_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with get_llm("openai:gpt-4o-mini") as llm:
        assert isinstance(llm, OpenAICompatLLM)
        assert llm.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize("url", ["ftp://host/v1", "not a url", "http://"])
def test_bad_base_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        OpenAICompatLLM("m", base_url=url)


def test_llm_chain() -> None:
    with llm_chain("ollama:a, ollama:b@http://127.0.0.1:9/") as chain:
        assert isinstance(chain, FallbackLLM)
        assert chain.model_id == "ollama:a > ollama:b"
    with llm_chain(["ollama:a"]) as single:
        assert isinstance(single, OllamaLLM)
    with pytest.raises(ConfigError, match="no LLM spec"):
        llm_chain(" , ")
    with pytest.raises(ConfigError, match="api_key"):
        llm_chain(["ollama:a", "ollama:b"], api_key=KEY)


def test_importing_the_package_does_not_import_httpx() -> None:
    code = (
        "import sys, engram.providers.llms, engram.answers\n"
        "print('httpx' in sys.modules)\n"
        "engram.providers.llms.get_llm('ollama:m').close()\n"
        "print('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_errors_are_engram_errors() -> None:
    assert issubclass(LLMUnavailable, LLMError) and issubclass(LLMError, EngramError)
    assert (LLMError.status, LLMError.code) == (502, "llm_error")
    assert (LLMUnavailable.status, LLMUnavailable.code) == (503, "llm_unavailable")


# --- a total deadline against trickling upstreams -----------------------------------------------


def trickle(every: float, tokens: int = 100, *, json_body: bool = False) -> Step:
    """A server that never stalls long enough for a read timeout, but never finishes either:
    one token (or one byte of a JSON body) every ``every`` seconds."""

    def step(h: _Handler, body: dict[str, Any]) -> None:
        h.start_chunked("application/json" if json_body else "text/event-stream")
        for _ in range(tokens):
            if json_body:
                h.chunk(b" ")
            else:
                delta = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
                h.chunk(b"data: " + json.dumps(delta).encode() + b"\n\n")
            if h.server.fake.release.wait(every):
                return

    return step


@pytest.mark.parametrize("stream", [True, False])
def test_deadline_cuts_a_trickling_reply(openai_server: FakeServer, stream: bool) -> None:
    """Each piece arrives well within the read timeout (5 s); the deadline (1 s) ends the call
    anyway, and the upstream connection is closed."""
    openai_server.script = [trickle(0.2, json_body=not stream)]
    started = time.monotonic()
    llm = openai(openai_server, deadline=1.0, retries=0)
    with llm, pytest.raises(LLMUnavailable, match="deadline of 1s"):
        if stream:
            for _ in llm.stream(MESSAGES):
                pass
        else:
            llm.complete(MESSAGES)
    assert time.monotonic() - started < 2.5


def test_deadline_stops_retries(openai_server: FakeServer) -> None:
    openai_server.script = [status(503)] * 10
    started = time.monotonic()
    llm = openai(openai_server, deadline=0.5, retries=10, backoff=0.3, max_backoff=0.3)
    with llm, pytest.raises(LLMUnavailable):
        llm.complete(MESSAGES)
    assert time.monotonic() - started < 1.5
    assert len(openai_server.requests) < 10


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="deadline"):
        OpenAICompatLLM("m", base_url="http://127.0.0.1:1/v1", deadline=0)
