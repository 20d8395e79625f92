"""Embedding models behind an HTTP API: OpenAI-compatible ``POST {base}/embeddings`` and
Ollama's ``POST {base}/api/embed`` (Ollama 0.3 or later).

Chosen by the spec grammar of the chat models (:mod:`engram.providers.llms.factory`), e.g.
``openai:text-embedding-3-small``, ``openai:bge-m3@http://127.0.0.1:8000/v1`` (vLLM, llama.cpp,
LM Studio, LiteLLM, TEI...), ``ollama:nomic-embed-text`` or
``ollama:nomic-embed-text@http://gpu-box:11434``; API keys as there (``OPENAI_API_KEY`` for
the default OpenAI URL, ``#KEY_ENV`` for any other).

- ``model_id`` is ``provider:model`` without the URL, so moving the server does not orphan
  the collections it embedded, while another model is refused as for local models.
- The dimension is learned from the first reply; asked for before any text was embedded
  (creating a collection), it is learned by embedding one probe text. ``dimension=`` may be
  given to skip the probe; every reply is checked against it.
- Vectors are L2-normalised here (engram scores by cosine; not every server normalises).
- ``batch_size`` texts go in one request; requests are retried with exponential backoff on
  connection errors, 429 and 5xx (:class:`~engram.providers.llms._http.HTTPEndpoint`).
- Queries and passages are sent as is: these APIs take no instruction. Models that want
  one (nomic-embed-text: ``search_query:`` / ``search_document:``) get none; their ranking
  is a little worse than with it, not wrong.
- Chunks are sized in words and punctuation marks (no tokenizer is at hand), which is about
  three quarters of the model tokens of English text.

Every failure is a :class:`~engram.errors.ModelUnavailable` naming the URL and
``ENGRAM_EMBEDDING_MODEL``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from engram.errors import ConfigError, ModelUnavailable
from engram.providers.embedders.base import Embedder, EmbedKind
from engram.providers.llms._http import HTTPEndpoint
from engram.providers.llms.errors import LLMError

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PROBE = "dimension probe"
SETTING = "ENGRAM_EMBEDDING_MODEL"


class HTTPEmbedder(HTTPEndpoint, Embedder):
    """Base of the remote embedders; a protocol gives its path and how replies hold vectors.

    Options besides those of :class:`~engram.providers.llms._http.HTTPEndpoint`:
    ``batch_size`` (texts per request), ``dimension`` (expected; learned when None),
    ``max_tokens`` (the model's window, in the word counts of :meth:`token_offsets`).
    """

    embed_path = ""
    span_name = "embed"

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 64,
        dimension: int | None = None,
        max_tokens: int = 512,
        **opts: Any,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"remote embedder batch_size must be >= 1, got {batch_size}")
        super().__init__(model, **opts)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._dimension = dimension
        self.requests = 0  # requests that got vectors (tests read it)

    @property
    def dimension(self) -> int:
        """The vectors' length: from the first reply, or from embedding a probe text."""
        if self._dimension is None:
            self.embed_batch([_PROBE])
        assert self._dimension is not None
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        self._dimension = value

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        """Embed ``texts`` in requests of ``batch_size``; rows of unit length."""
        if isinstance(texts, str):
            raise TypeError("embed_batch takes a sequence of texts, not one string")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [
            self._request(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Spans of words and single punctuation marks (the server's tokenizer is not at hand)."""
        return [m.span() for m in _TOKEN.finditer(text)]

    def _request(self, texts: list[str]) -> np.ndarray:
        # OpenAI refuses an empty string; a space embeds as "nothing" everywhere.
        payload = {"model": self.model, "input": [t if t.strip() else " " for t in texts]}
        try:
            data = self._post_json(self.embed_path, payload, None)
        except LLMError as exc:
            raise self._unavailable(exc.message, exc.hint, **exc.details) from exc
        vectors = self._vectors(data, len(texts))
        self.requests += 1
        return self._normalised(vectors, len(texts))

    def _vectors(self, data: Any, count: int) -> list[Any]:
        """The reply's vectors, in the order of the texts sent."""
        raise NotImplementedError

    def _normalised(self, vectors: list[Any], count: int) -> np.ndarray:
        if len(vectors) != count:
            raise self._garbage(f"{len(vectors)} vectors for {count} texts")
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._garbage("the vectors are not lists of numbers of one length") from exc
        if array.ndim != 2 or array.shape[1] == 0:
            raise self._garbage("the vectors are not lists of numbers of one length")
        if self._dimension is None:
            self._dimension = int(array.shape[1])
        elif array.shape[1] != self._dimension:
            raise self._garbage(
                f"a {array.shape[1]}-d vector, but this model's are {self._dimension}-d"
            )
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise self._garbage("a vector is zero or not finite")
        return array / norms

    def _garbage(self, message: str) -> ModelUnavailable:
        return self._unavailable(
            f"{self.where} answered something that is not an embedding: {message}",
            "is the URL an embedding endpoint and the model an embedding model?",
        )

    def _unavailable(self, message: str, hint: str | None, **details: Any) -> ModelUnavailable:
        setting = f"the model and URL are set by {SETTING} (now {self.model_id} at {self.base_url})"
        return ModelUnavailable(message, hint=f"{hint}; {setting}" if hint else setting, **details)


class OpenAIEmbedder(HTTPEmbedder):
    """OpenAI-compatible ``/embeddings``: ``{"data": [{"index", "embedding"}]}``."""

    default_base_url = "https://api.openai.com/v1"
    embed_path = "/embeddings"

    def __init__(self, model: str, *, name: str = "openai", **opts: Any) -> None:
        super().__init__(model, name=name, **opts)

    def _vectors(self, data: Any, count: int) -> list[Any]:
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise self._garbage("the reply has no data list")
        try:
            # data[i] is usually text i; "index" says which text when a server reorders.
            if all("index" in item for item in items):
                items = sorted(items, key=lambda item: int(item["index"]))
            return [item["embedding"] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._garbage("an item of data has no embedding") from exc


class OllamaEmbedder(HTTPEmbedder):
    """Ollama's ``/api/embed``: ``{"embeddings": [[...], ...]}``."""

    default_base_url = "http://127.0.0.1:11434"
    embed_path = "/api/embed"

    def __init__(self, model: str, *, name: str = "ollama", **opts: Any) -> None:
        super().__init__(model, name=name, **opts)

    def _vectors(self, data: Any, count: int) -> list[Any]:
        if isinstance(data, dict) and "error" in data:
            raise self._garbage(f"the server reported an error: {data['error']}")
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list):
            raise self._garbage("the reply has no embeddings list")
        return vectors


def remote_embedder(spec: str, **opts: Any) -> HTTPEmbedder:
    """The embedder of a ``PROVIDER:MODEL[@BASE_URL][#KEY_ENV]`` spec (the grammar and key
    lookup of :func:`~engram.providers.llms.factory.get_llm`); ``opts`` go to the constructor."""
    from engram.providers.llms.factory import PRESETS, api_key, parse_spec

    parsed = parse_spec(spec)
    preset = PRESETS[parsed.provider]
    if "api_key" not in opts:
        opts["api_key"] = api_key(parsed, preset)
    opts.setdefault("base_url", parsed.base_url or preset.base_url)
    cls = OllamaEmbedder if preset.protocol == "ollama" else OpenAIEmbedder
    return cls(parsed.model, name=parsed.provider, **opts)
