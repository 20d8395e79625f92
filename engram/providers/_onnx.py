"""Shared plumbing for ONNX providers: sessions, tokenizers, length-sorted padded batches."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.errors import MissingDependency, ModelUnavailable
from engram.providers import onnx_cache

if TYPE_CHECKING:  # imported lazily at run time: opening a database must not load them
    import onnxruntime
    import tokenizers

logger = logging.getLogger("engram")

# Graph fusions left out. onnxruntime's CPU SkipLayerNormalization kernel (1.32) takes 8x the
# time of the Add + LayerNormalization it replaces (345 µs against 45 µs on a [1, 180, 384]
# input, one thread): in multilingual-e5-small, whose graph the fusion matches, it took a
# quarter of the run (docs/benchmarks.md, "French ingest (issue 15)").
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def cached_graph(model_path: Path, runtime_version: str, cache: str) -> Path | None:
    """Where :func:`create_session` keeps the optimized copy of ``model_path``: keyed by the
    onnxruntime version and the fusions left out, which both change the graph."""
    version = f"{runtime_version} -{','.join(DISABLED_OPTIMIZERS)}"
    return onnx_cache.cached_path(model_path, version, cache)


_SessionKey = tuple[str, int | None, bool, str]
_prefetched: dict[_SessionKey, Future[onnxruntime.InferenceSession]] = {}
_prefetch_lock = threading.Lock()


def prefetch_session(
    model_path: Path, *, threads: int | None = None, spin: bool = True, cache: str = ""
) -> None:
    """Start creating the session :func:`create_session` would make with these arguments,
    in a background thread; the next :func:`create_session` call with the same arguments
    takes it (waiting for it if it is not ready) instead of loading the model again.

    Loading releases the GIL, so a one-shot command overlaps it with its own start-up
    (importing engram, opening the database). A failed prefetch is forgotten: the real
    call loads the model itself and raises its error."""
    key = (str(model_path), threads, spin, cache)
    future: Future[onnxruntime.InferenceSession] = Future()
    with _prefetch_lock:
        if key in _prefetched:
            return
        _prefetched[key] = future

    def load() -> None:
        try:
            future.set_result(_create_session(model_path, threads=threads, spin=spin, cache=cache))
        except BaseException as exc:  # handed to the waiting caller, who starts over
            future.set_exception(exc)

    # Not a daemon: a command that fails before it uses the model (a mistyped collection)
    # exits only once the load is done. Interpreter shutdown stopping a daemon thread inside
    # onnxruntime's session constructor aborts the process ("terminate called without an
    # active exception", exit status 134).
    threading.Thread(target=load, name="engram-model-prefetch", daemon=False).start()


def create_session(
    model_path: Path, *, threads: int | None = None, spin: bool = True, cache: str = ""
) -> onnxruntime.InferenceSession:
    """An onnxruntime session for ``model_path`` (see :func:`_create_session`), taken from
    a :func:`prefetch_session` of the same arguments if one was started."""
    with _prefetch_lock:
        future = _prefetched.pop((str(model_path), threads, spin, cache), None)
    if future is not None:
        try:
            return future.result()
        except Exception:  # loaded again below, which raises the error itself
            pass
    return _create_session(model_path, threads=threads, spin=spin, cache=cache)


def _create_session(
    model_path: Path, *, threads: int | None = None, spin: bool = True, cache: str = ""
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session tuned for one caller at a time on all cores (``threads``:
    fewer). ``spin=False`` stops idle worker threads from busy-waiting for the next run,
    which burns CPU that concurrent requests need.

    ``cache`` is the ``model_cache_dir`` setting (:func:`engram.providers.onnx_cache.cache_dir`):
    the graph is optimized once and the optimized copy loaded from there afterwards, a third
    faster; a copy that will not load is removed and the original model used instead."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependency(
            "onnxruntime is not installed", hint="pip install onnxruntime"
        ) from exc

    def options(optimize: bool = True) -> onnxruntime.SessionOptions:
        options = ort.SessionOptions()
        # Throughput is bound by the model on small machines: give one run every core, and
        # run graph nodes one after another (parallel branches barely exist in a BERT graph).
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize  # an optimized copy is already the graph the ALL level makes
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.log_severity_level = 3  # errors only: the optimizer's notices are noise to users
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def session(path: Path, options: onnxruntime.SessionOptions) -> onnxruntime.InferenceSession:
        return ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(DISABLED_OPTIMIZERS),
        )

    cached = cached_graph(model_path, ort.__version__, cache)
    if cached is not None and cached.is_file():
        try:
            return session(cached, options(optimize=False))
        except Exception as exc:  # truncated, corrupt, or from an incompatible build
            logger.warning("ignoring the unreadable optimized model %s: %s", cached, exc)
            onnx_cache.discard(cached)
    temporary = onnx_cache.temporary_path(cached) if cached is not None else None
    try:
        if cached is not None and temporary is not None:
            with_copy = options()
            with_copy.optimized_model_filepath = str(temporary)
            try:
                created = session(model_path, with_copy)
            except Exception:  # perhaps only the copy failed (disk full): try without it
                onnx_cache.discard(temporary)
            else:
                onnx_cache.publish(temporary, cached)
                return created
        return session(model_path, options())
    except Exception as exc:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
        raise ModelUnavailable(
            f"could not load ONNX model {str(model_path)!r}: {exc}",
            hint="check the file is a complete ONNX export (re-install the package shipping it)",
            path=str(model_path),
        ) from exc
    finally:
        if temporary is not None:
            onnx_cache.discard(temporary)  # published by then, or failed


def load_tokenizer(tokenizer_path: Path, *, max_length: int | None) -> tokenizers.Tokenizer:
    """A ``tokenizers.Tokenizer`` with truncation at ``max_length`` (None: off) and no padding.

    Padding is always removed: some shipped tokenizer.json files pad to a fixed 512, which
    would make every short text cost as much as a full window. Batches are padded by
    :func:`pad_batch` to their own longest member instead.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise MissingDependency(
            "tokenizers is not installed", hint="pip install tokenizers"
        ) from exc
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    except Exception as exc:
        raise ModelUnavailable(
            f"could not load tokenizer {str(tokenizer_path)!r}: {exc}", path=str(tokenizer_path)
        ) from exc
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices grouped into batches of similar length (longest first), to minimise padding."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(
    encodings: Sequence[Any], input_names: Sequence[str], *, pad_id: int = 0
) -> dict[str, np.ndarray]:
    """Right-pad ``tokenizers.Encoding`` objects to the longest one, as int64 model inputs.

    Only the inputs the graph declares are returned (some exports drop ``token_type_ids``).
    """
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
        types[row, :n] = enc.type_ids
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: arrays[name] for name in input_names}


def pad_id(tokenizer: tokenizers.Tokenizer) -> int:
    """The id of the tokenizer's padding token ([PAD] for BERT, <pad> for XLM-R)."""
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return found
    return 0
