"""Any OpenAI-compatible ``/chat/completions`` endpoint: OpenAI, DeepSeek, vLLM, llama.cpp's
server, LM Studio, LiteLLM...

Streaming uses server-sent events: ``data: {chunk}`` lines whose
``choices[0].delta.content`` is the next piece of text, ended by ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

from engram.providers.llms._http import HTTPChatLLM


class OpenAICompatLLM(HTTPChatLLM):
    """A chat model behind an OpenAI-compatible API.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``,
    ``http://127.0.0.1:8000/v1``). ``max_tokens_param`` names the length limit in the request
    (``"max_completion_tokens"`` for OpenAI's reasoning models). Other options: see
    :class:`~engram.providers.llms._http.HTTPChatLLM`.
    """

    default_base_url = "https://api.openai.com/v1"
    chat_path = "/chat/completions"
    stream_end = "its end marker (data: [DONE])"

    def __init__(
        self, model: str, *, max_tokens_param: str = "max_tokens", name: str = "openai", **opts: Any
    ) -> None:
        super().__init__(model, name=name, **opts)
        self.max_tokens_param = max_tokens_param

    def _sampling(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        fields = {self.max_tokens_param: max_tokens, "temperature": temperature}
        return {name: value for name, value in fields.items() if value is not None}

    def _reply_text(self, data: Any) -> str:
        """``choices[0].message.content``."""
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._protocol_error("the reply has no choices[0].message") from exc
        # content is null when the model only refused or called a tool: an empty answer.
        return content if isinstance(content, str) else ""

    def _texts(self, lines: Iterator[str]) -> Generator[str, None, bool]:
        """One SSE chunk's ``delta.content`` at a time."""
        finished = False
        for line in lines:
            # Blank lines separate events; ":" lines are keep-alive comments; "event:" and
            # "id:" lines carry nothing we need.
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return True
            chunk = self._chunk(data)
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    yield content
                finished = finished or bool(choice.get("finish_reason"))
        # Some servers (older llama.cpp) omit [DONE] but always send a finish_reason.
        return finished

    def _chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise self._protocol_error("a stream chunk is not JSON") from exc
        if not isinstance(chunk, dict):
            raise self._protocol_error("a stream chunk is not a JSON object")
        if "error" in chunk:  # vLLM and proxies report a failure mid-stream this way
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise self._protocol_error(f"the server reported an error mid-stream: {message}")
        return chunk
