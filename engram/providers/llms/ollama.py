"""Ollama's native ``/api/chat``: one JSON object per line (NDJSON) when streaming, the last
one with ``"done": true``."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from engram.providers.llms._http import HTTPChatLLM


class OllamaLLM(HTTPChatLLM):
    """A model served by Ollama (default ``http://127.0.0.1:11434``).

    ``options`` are sent as Ollama model options on every request; set ``num_ctx`` there:
    Ollama's default context window is small and it silently drops the start of a longer
    prompt, which is where the passages are. Other options: see
    :class:`~engram.providers.llms._http.HTTPChatLLM`.
    """

    default_base_url = "http://127.0.0.1:11434"
    chat_path = "/api/chat"
    stream_end = 'its last line ("done": true)'

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

    def _sampling(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        options = dict(self.options)
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if temperature is not None:
            options["temperature"] = temperature
        return {"options": options} if options else {}

    def _texts(self, lines: Iterator[str]) -> Generator[str, None, bool]:
        """One NDJSON line's ``message.content`` at a time."""
        for line in lines:
            if not line.strip():
                continue
            try:
                part = json.loads(line)
            except ValueError as exc:
                raise self._protocol_error("a stream line is not JSON") from exc
            content = self._reply_text(part)
            if content:
                yield content
            if part.get("done"):
                return True
        return False

    def _reply_text(self, part: Any) -> str:
        """``message.content``, of the whole reply or of one line of a stream."""
        if not isinstance(part, dict):
            raise self._protocol_error("the reply is not a JSON object")
        if "error" in part:  # Ollama reports failures, even mid-stream, as {"error": "..."}
            raise self._protocol_error(f"the server reported an error: {part['error']}")
        message = part.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is None and not part.get("done"):
            raise self._protocol_error("the reply has no message.content")
        return content if isinstance(content, str) else ""
