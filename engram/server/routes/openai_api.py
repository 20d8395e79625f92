"""OpenAI-compatible routes, so that OpenAI clients and tools use engram unchanged.

``GET /v1/models`` lists ``engram/<collection>`` for each collection of the caller's tenant;
``POST /v1/embeddings`` embeds with engram's embedding model, or a collection's
(``engram/<collection>``); ``POST /v1/chat/completions`` answers with engram's chat (:mod:`engram.server.grounding`, then the configured model chain
or an extractive answer) from the collection its ``model`` names, ``engram/<collection>``
(or several: ``engram/kb,faq``; every one: ``engram/*``).

Decisions, since OpenAI has no notion of them:

- Texts are embedded as passages (as engram embeds documents); ``input_type: "query"``, an
  engram extension, embeds them as engram embeds search queries.
- The last message, from the user, is the question; earlier user and assistant messages are
  the conversation. System (and developer, tool) messages are ignored: the answer's
  instructions are engram's (``ENGRAM_ANSWER_TEMPLATE``), which keep it to the passages and
  make it cite them, and many clients send a system message of their own anyway.
- The citations are ``[n]`` markers in the text and, as in ``/v1/chat``, a ``citations`` list
  (engram extension) at the top of the completion, or in the last chunk of a stream.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Generator
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from ...answers import AnswerEvent, AnswerOptions, answer, stream_answer
from ...engine import Engram
from ...errors import CollectionNotFound, InvalidInput, NotFound, QueryTooLong
from ...providers.embedders.base import Embedder
from ...providers.llms import ChatMessage
from ..deps import DB, Reader
from ..grounding import ground
from ..ownership import acting_user
from ..schemas import MAX_BATCH, MAX_QUERY_CHARS, error_responses
from ..schemas_openai import (
    MAX_EMBED_CHARS,
    ChatCompletion,
    ChatCompletionMessage,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
)
from ..streaming import ClosingStreamingResponse

router = APIRouter(tags=["openai"])

MODEL_PREFIX = "engram/"


@router.get("/models", operation_id="listModels", responses=error_responses(422))
def models(db: DB, principal: Reader) -> dict[str, Any]:
    """The models ``/v1/chat/completions`` answers with: one per collection of the caller's
    tenant, ``engram/<collection>`` (OpenAI's model list shape)."""
    data = [
        {
            "id": MODEL_PREFIX + c.name,
            "object": "model",
            "created": _epoch(c.created_at),
            "owned_by": "engram",
        }
        for c in db.collections(tenant=principal.tenant)
    ]
    return {"object": "list", "data": data}


def _epoch(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0


@router.post(
    "/embeddings",
    operation_id="createEmbeddings",
    response_model=EmbeddingList,
    responses=error_responses(404, 413, 422, 503),
)
def embeddings(body: EmbeddingRequest, db: DB, principal: Reader) -> dict[str, Any]:
    """Embed texts (OpenAI's embeddings shape) with the model ``model`` names: ``engram``
    the server's embedding model (ENGRAM_EMBEDDING_MODEL); ``engram/<collection>`` that
    collection's model, as its documents and queries are embedded; or a model by name
    (bge-small-en-v1.5, multilingual-e5-small, a collection's model id)."""
    embedder = _embedder(db, body.model, principal.tenant)
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise InvalidInput(
            f"dimensions must be {embedder.dimension}, the model's, not {body.dimensions}",
            hint="leave dimensions out",
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    _check_texts(texts, MAX_QUERY_CHARS if body.input_type == "query" else MAX_EMBED_CHARS)
    vectors = np.asarray(embedder.embed_batch(texts, kind=body.input_type), dtype="<f4")
    limit = embedder.max_tokens
    tokens = sum(min(n, limit) for n in map(embedder.count_tokens, texts))
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": embedder.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _embedder(db: Engram, model: str, tenant: str) -> Embedder:
    """The model ``/v1/embeddings``' ``model`` names (NotFound if none)."""
    if model == "engram":
        return db.embedder()
    if model.startswith(MODEL_PREFIX):
        name = model.removeprefix(MODEL_PREFIX)  # engram's own collections are not found
        return db.embedders.for_collection(db.collection(name, tenant=tenant, counts=False))
    if db.embedders.offered(model):
        return db.embedders.get(model)
    for collection in db.collections(tenant=tenant):
        if collection.model_id == model:
            return db.embedders.for_collection(collection)
    raise NotFound(
        f"no embedding model {model!r} here",
        hint="use model 'engram' (the server's), 'engram/<collection>' (a collection's),"
        f" or one of {', '.join(db.embedders.offered_names())}",
    )


def _check_texts(texts: list[str], max_chars: int) -> None:
    if not texts:
        raise InvalidInput("input is empty", hint="send a text or a list of texts")
    if len(texts) > MAX_BATCH:
        raise InvalidInput(
            f"{len(texts):,} inputs; at most {MAX_BATCH:,} per request",
            hint="split them into several requests",
        )
    for i, text in enumerate(texts):
        if not text:
            raise InvalidInput(f"input {i} is empty")
        if len(text) > max_chars:
            raise QueryTooLong(
                f"input {i} has {len(text):,} characters; at most {max_chars:,}",
                hint="split the text into passages",
            )


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


@router.post(
    "/chat/completions",
    operation_id="createChatCompletion",
    response_model=ChatCompletion,
    responses={
        **error_responses(403, 404, 409, 422, 502, 503),
        200: {
            "content": {"text/event-stream": {}},
            "description": "chat.completion, or chat.completion.chunk events with stream",
        },
    },
)
def chat_completions(
    body: ChatCompletionRequest, request: Request, db: DB, principal: Reader
) -> Any:
    """Answer the last user message from the collection ``model`` names (engram/<collection>),
    as an OpenAI chat completion, whole or streamed."""
    settings = db.settings
    llm = request.app.state.llm
    collection = _collections(db, body.model.removeprefix(MODEL_PREFIX), principal.tenant)
    question, history = _conversation(body.messages, settings.chat_history_messages)
    # A caller bound to one user answers from that user's conversations and memories only.
    user_id = acting_user(principal, body.user) if body.user else principal.user_id
    grounding = ground(
        db, llm, principal, question, history, collection=collection, user_id=user_id
    )
    options = _with_limits(grounding.options, body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        result = answer(question, grounding.passages, llm, **options)
        return {
            "id": completion_id,
            "created": created,
            "model": body.model,
            "choices": [{"message": {"content": result.text}}],
            "citations": [c.to_dict() for c in result.citations],
            "engram": {
                "query": grounding.query,
                "extractive": result.extractive,
                "llm": result.model,
            },
        }
    # Validation errors raise here, before the first byte, so they still get a 4xx.
    events = stream_answer(question, grounding.passages, llm, **options)
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": body.model,
    }
    return ClosingStreamingResponse(
        _chunks(events, head, grounding.query),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _collections(db: Engram, name: str, tenant: str) -> str | list[str]:
    """The collections a model name answers from: ``<collection>``, ``*`` (every collection
    of the tenant) or ``a,b`` (those two, one ranking), unless a collection is named ``a,b``."""
    parts = [p.strip() for p in name.split(",")]
    if not all(parts) or any("/" in p for p in parts):
        raise NotFound(
            f"no model {name!r} here",
            hint="name a collection: model='engram/<collection>' (or 'engram/a,b', 'engram/*')",
        )
    if len(parts) == 1:
        return name
    try:
        return db.collection(name, tenant=tenant).name
    except CollectionNotFound:
        return parts


def _conversation(
    messages: list[ChatCompletionMessage], keep: int
) -> tuple[str, list[ChatMessage]]:
    """The question (the last message, from the user) and the last ``keep`` user and
    assistant messages before it."""
    last = messages[-1]
    if last.role != "user":
        raise InvalidInput(
            f"the last message is from the {last.role!r}; it must be the user's question",
            hint="end messages with {'role': 'user', 'content': <question>}",
        )
    question = last.text().strip()
    if not question:
        raise InvalidInput("the last user message is empty")
    if len(question) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"the question has {len(question):,} characters; at most {MAX_QUERY_CHARS:,}"
        )
    history = [
        ChatMessage(m.role, m.text())
        for m in messages[:-1]
        if m.role in ("user", "assistant") and m.text()
    ]
    return question, history[-keep:] if keep else []


def _with_limits(options: AnswerOptions, body: ChatCompletionRequest) -> AnswerOptions:
    """The client's limits, within the server's: at most ENGRAM_LLM_MAX_TOKENS."""
    limited: AnswerOptions = {**options}
    asked = body.max_completion_tokens or body.max_tokens
    if asked is not None:
        ceiling = options.get("max_tokens")
        limited["max_tokens"] = min(asked, ceiling) if ceiling else asked
    if body.temperature is not None:
        limited["temperature"] = body.temperature
    return limited


def _chunks(
    events: Generator[AnswerEvent, None, None], head: dict[str, Any], query: str
) -> Generator[bytes, None, None]:
    """OpenAI's stream: a first chunk with the role, one per token, a last one with
    ``finish_reason`` and the citations, then ``data: [DONE]``. A failure is a
    ``data: {"error": {...}}`` event, which OpenAI clients raise."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _frame({**head, "choices": [choice], **extra})

    citations: list[dict[str, Any]] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        for event in events:
            if event.type == "token":
                yield chunk({"content": event.data.get("text", "")})
            elif event.type == "citations":
                citations = event.data["citations"]
            elif event.type == "error":
                yield _frame({"error": event.data})
            elif event.type == "done" and event.data.get("ok"):
                info = {
                    "query": query,
                    "extractive": event.data.get("extractive", False),
                    "llm": event.data.get("model"),
                }
                yield chunk({}, "stop", citations=citations, engram=info)
    finally:
        events.close()
    yield b"data: [DONE]\n\n"


def _frame(data: dict[str, Any]) -> bytes:
    # No ``event:`` line: OpenAI clients read unnamed events only.
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
