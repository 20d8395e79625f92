"""The reranker interface: score (query, passage) pairs with a cross-encoder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class Reranker(ABC):
    model_id: str

    @abstractmethod
    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance score of each passage for ``query``; higher is more relevant."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""
