"""A deterministic, model-free embedder for tests where the model itself is not under test."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from engram.errors import InvalidInput
from engram.providers.embedders.base import Embedder, EmbedKind

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")

# Whole words dominate; trigrams give partial credit to inflections ("embed" / "embedding").
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.5


class HashEmbedder(Embedder):
    """Feature hashing of lowercased word unigrams and character trigrams, L2-normalised.

    Same text, same vector, on every machine and run (crc32, not Python's salted ``hash``);
    texts that share words have a higher cosine than texts that share none.
    Query and passage embeddings are identical.
    """

    def __init__(self, dimension: int = 64, *, max_tokens: int = 512) -> None:
        if dimension < 2:
            raise InvalidInput(f"hash embedder dimension must be >= 2, got {dimension}")
        self.dimension = dimension
        self.model_id = f"hash-{dimension}"
        self.max_tokens = max_tokens

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        """Hash each text into ``dimension`` buckets; rows have unit length."""
        if isinstance(texts, str):
            raise TypeError("embed_batch takes a sequence of texts, not one string")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in _features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                # The top bit picks a sign so that collisions cancel instead of piling up.
                sign = 1.0 if h & 0x80000000 else -1.0
                out[row, h % self.dimension] += sign * weight
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:  # empty text: still a unit vector, as the contract promises
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Spans of words and single punctuation marks."""
        return [m.span() for m in _TOKEN.finditer(text)]

    def __repr__(self) -> str:
        return f"HashEmbedder({self.dimension})"


def _features(text: str) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = []
    for word in _WORD.findall(text.lower()):
        features.append(("w:" + word, _WORD_WEIGHT))
        padded = f"#{word}#"
        features.extend(("c:" + padded[i : i + 3], _TRIGRAM_WEIGHT) for i in range(len(padded) - 2))
    return features
