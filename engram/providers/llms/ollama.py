"""Ollama's native ``/api/chat``: one JSON object per line (NDJSON) when streaming, the last
one with ``"done": true``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any

from engram.providers.llms._http import HTTPChatLLM
from engram.providers.llms.base import ChatMessage


class OllamaLLM(HTTPChatLLM):
    """A model served by Ollama (default ``http://127.0.0.1:11434``).

    ``options`` are sent as Ollama model options on every request; set ``num_ctx`` there:
    Ollama's default context window is small and it silently drops the start of a longer
    prompt, which is where the passages are. Other options: see
    :class:`~engram.providers.llms._http.HTTPChatLLM`.
    """

    default_base_url = "http://127.0.0.1:11434"

    def __init__(
        self,
        model: str,
        *,
        options: Mapping[str, Any] | None = None,
        name: str = "ollama",
        **opts: Any,
    ) -> None:
        super().__init__(model, name=name, **opts)
        self.options = dict(options or {})

    def _payload(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        options = dict(self.options)
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if temperature is not None:
            options["temperature"] = temperature
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in messages],
            "stream": stream,
        }
        if options:
            body["options"] = options
        return body

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The whole reply (``message.content``)."""
        payload = self._payload(messages, max_tokens, temperature, stream=False)
        return self._content(self._post_json("/api/chat", payload, timeout))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Iterator[str]:
        """The reply as it is generated, one NDJSON line's ``message.content`` at a time."""
        payload = self._payload(messages, max_tokens, temperature, stream=True)
        with closing(self._lines("/api/chat", payload, timeout)) as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    part = json.loads(line)
                except ValueError as exc:
                    raise self._protocol_error("a stream line is not JSON") from exc
                content = self._content(part)
                if content:
                    yield content
                if part.get("done"):
                    return
        # Without a "done" line the connection was cut and the text is truncated.
        raise self._protocol_error(
            'the stream ended before its last line ("done": true)', unavailable=True
        )

    def _content(self, part: Any) -> str:
        if not isinstance(part, dict):
            raise self._protocol_error("the reply is not a JSON object")
        if "error" in part:  # Ollama reports failures, even mid-stream, as {"error": "..."}
            raise self._protocol_error(f"the server reported an error: {part['error']}")
        message = part.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is None and not part.get("done"):
            raise self._protocol_error("the reply has no message.content")
        return content if isinstance(content, str) else ""
