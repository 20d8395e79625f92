"""Bodies of the OpenAI-compatible routes, ``/v1/embeddings`` and ``/v1/chat/completions``.

They follow OpenAI's shapes so that OpenAI clients work unchanged. Unlike engram's own
bodies, a field the schema does not name is ignored rather than refused: clients send
OpenAI parameters that engram has no use for (``presence_penalty``, ``logprobs``,
``stream_options``...). Errors keep engram's one shape, ``{"error": {"code", "message",
"hint"?}}``, whose ``error.message`` is what OpenAI clients show.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import MAX_BATCH, CitationPublic
from .schemas_base import RequestModel

# Longest text embedded: past the model's window (512 tokens for the bundled model, about
# 2,000 characters of English) the text is truncated, as for a passage of a document.
MAX_EMBED_CHARS = 32_768


class _OpenAIRequest(RequestModel):
    model_config = ConfigDict(extra="ignore")


# -- embeddings ------------------------------------------------------------------------------
class EmbeddingRequest(_OpenAIRequest):
    model: str = Field(
        description="'engram' (the server's embedding model, GET /v1/ready names it), "
        "'engram/<collection>' (the model of that collection's vectors) or a model name "
        "(bge-small-en-v1.5, multilingual-e5-small, a collection's model_id)."
    )
    input: str | list[str] = Field(
        description=f"A text or a list of up to {MAX_BATCH:,} texts of up to "
        f"{MAX_EMBED_CHARS:,} characters each (token arrays are not accepted)."
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: the little-endian float32 bytes of each vector."
    )
    dimensions: int | None = Field(
        None, description="Must be the model's dimension if given (vectors are not shortened)."
    )
    input_type: Literal["passage", "query"] = Field(
        "passage",
        description="engram extension: 'query' embeds with the model's query instruction, as "
        "engram embeds search queries; 'passage' (default) as it embeds documents.",
    )


class EmbeddingPublic(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingPublic]
    model: str = Field(description="The embedding model id.")
    usage: EmbeddingUsage


# -- chat completions ------------------------------------------------------------------------
class TextPart(_OpenAIRequest):
    type: Literal["text"]
    text: str


class ChatCompletionMessage(_OpenAIRequest):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        """The content as one string (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(_OpenAIRequest):
    model: str = Field(
        description="'engram/<collection>' (or the bare collection name): which collection "
        "answers; 'engram/a,b' searches a and b as one, 'engram/*' every collection."
    )
    messages: list[ChatCompletionMessage] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="The last one, from the user, is the question; earlier user and assistant "
        "messages are the conversation; system, developer and tool messages are ignored.",
    )
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, description="At most ENGRAM_LLM_MAX_TOKENS.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens.")
    temperature: float | None = Field(None, ge=0, le=2)
    n: int = Field(1, ge=1, le=1, description="One answer per request.")
    user: str | None = Field(
        None,
        description="The end user (an engram user id): their earlier conversations and "
        "memories are searched too. A key bound to a user may name only that user.",
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatCompletionChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class AnswerInfo(BaseModel):
    query: str = Field(description="What was searched: the question, made standalone.")
    extractive: bool = Field(description="True: quoted from the passages, no model involved.")
    llm: str | None = Field(description="The model that wrote the answer (None: extractive).")


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = Field(description="The requested model name, engram/<collection>.")
    choices: list[ChatCompletionChoice]
    usage: None = Field(None, description="Not counted.")
    citations: list[CitationPublic] = Field(
        description="engram extension: the passages the answer cites as [n]."
    )
    engram: AnswerInfo = Field(description="engram extension: how the answer was made.")
