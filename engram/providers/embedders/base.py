"""The embedder interface: one batch method, capability attributes, conveniences on top."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np

EmbedKind = Literal["passage", "query"]


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors.

    Subclasses set ``model_id`` (stored with every collection), ``dimension`` and
    ``max_tokens`` and implement :meth:`embed_batch` and :meth:`token_offsets`.
    ``max_tokens`` is the most tokens, as counted by :meth:`token_offsets`, that a passage may
    have before the model truncates it (the model window minus special tokens and prefixes).
    """

    model_id: str
    dimension: int
    max_tokens: int = 512

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        """Embed ``texts``; returns an array of shape ``(len(texts), dimension)``, float32,
        each row of unit length. ``kind="query"`` applies the model's query instruction."""

    @abstractmethod
    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (special tokens excluded).
        The chunker sizes chunks with this so a chunk never exceeds the model's window."""

    def token_offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """:meth:`token_offsets` of each text; backends override it when batching is faster."""
        return [self.token_offsets(text) for text in texts]

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (special tokens excluded)."""
        return len(self.token_offsets(text))

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one retrieval query (with the model's query instruction)."""
        return self.embed_batch([text], kind="query")[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources (sessions, threads)."""
