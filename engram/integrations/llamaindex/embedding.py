""":class:`EngramEmbedding`: engram's embedding model as a LlamaIndex embed model."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from ..target import Target

if TYPE_CHECKING:
    from ...client import Client
    from ...engine import Engram


class EngramEmbedding(BaseEmbedding):
    """Embeds with engram's own model: the library's (``engram.open``) in this process, or
    the server's through its ``POST /v1/embeddings`` route (``engram.Client``). Texts are
    embedded as engram embeds passages, queries with the model's query instruction, so the
    vectors are those engram computes for the same texts.

    Give it to a ``VectorStoreIndex`` over an :class:`EngramVectorStore`: the index embeds
    nodes before it adds them, and these vectors are in engram's space (the store keeps
    engram's own, see the package docstring).
    """

    embed_batch_size: int = 64

    _target: Target = PrivateAttr()

    def __init__(self, engram: Engram | Client, **kwargs: Any) -> None:
        target = Target(engram, "default")  # embedding needs no collection
        kwargs.setdefault("model_name", target.model_name())
        super().__init__(**kwargs)
        self._target = target

    @classmethod
    def class_name(cls) -> str:
        return "EngramEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._target.embed([query], kind="query")[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._target.embed([text], kind="passage")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._target.embed(texts, kind="passage")

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
