"""Embedders and rerankers, resolved lazily by name.

Importing this package loads neither onnxruntime nor tokenizers nor any hub client; each
factory imports its backend module only when it is asked for one.
"""

from __future__ import annotations

import os
import re
from typing import Any

from engram.providers.embedders.base import Embedder, EmbedKind
from engram.providers.models import (
    DEFAULT_EMBEDDER,
    DEFAULT_RERANKER,
    ResolvedModel,
    known_names,
    resolve_model,
)
from engram.providers.rerankers.base import Reranker

__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_RERANKER",
    "EmbedKind",
    "Embedder",
    "Reranker",
    "ResolvedModel",
    "get_embedder",
    "get_reranker",
    "hash_model_id",
    "is_remote",
    "known_names",
    "prefetch_embedder",
    "resolve_model",
]

_HASH = re.compile(r"hash(?:-(\d+))?")
_HASH_DIMENSION = 64  # HashEmbedder's default


def hash_model_id(name: str | os.PathLike[str]) -> str | None:
    """The model id of a hash embedder spec (``"hash"`` → ``"hash-64"``, ``"hash-8"``), or
    None when ``name`` names another model."""
    match = _HASH.fullmatch(os.fspath(name).strip().lower())
    if match is None:
        return None
    return f"hash-{match.group(1) or _HASH_DIMENSION}"


def is_remote(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is a remote model spec (``openai:...``, ``ollama:...``): a provider
    name of :data:`~engram.providers.llms.factory.PRESETS` before the first ``:``."""
    from engram.providers.llms.factory import PRESETS

    provider, sep, _ = os.fspath(name).strip().partition(":")
    return bool(sep) and provider.lower() in PRESETS


def get_embedder(name: str | os.PathLike[str] = DEFAULT_EMBEDDER, **opts: Any) -> Embedder:
    """An embedder by name: ``"hash"`` / ``"hash-<dim>"`` for the model-free
    :class:`~engram.providers.embedders.fake.HashEmbedder`; a remote spec such as
    ``openai:text-embedding-3-small`` or ``ollama:nomic-embed-text@http://host:11434`` for
    :mod:`~engram.providers.embedders.remote`; a known model name or a local model directory
    for :class:`~engram.providers.embedders.onnx.OnnxEmbedder`. ``opts`` go to the
    constructor. Raises :class:`~engram.errors.ModelUnavailable` if not found."""
    if is_remote(name):
        from engram.providers.embedders.remote import remote_embedder

        return remote_embedder(os.fspath(name), **opts)
    hashed = hash_model_id(name)
    if hashed is not None:
        from engram.providers.embedders.fake import HashEmbedder

        opts.setdefault("dimension", int(hashed.removeprefix("hash-")))
        return HashEmbedder(**opts)
    from engram.providers.embedders.onnx import OnnxEmbedder

    return OnnxEmbedder(name, **opts)


def prefetch_embedder(name: str | os.PathLike[str] = DEFAULT_EMBEDDER, **opts: Any) -> None:
    """Start loading, in a background thread, what the first query of the embedder
    ``get_embedder(name, **opts)`` needs: the local model's onnxruntime session, which an
    embedder of that model created later in this process takes over. A one-shot search calls
    it before opening the database, whose start-up then overlaps the model's. Remote and
    hash models load nothing; a model that cannot load is reported by its real first use."""
    if is_remote(name) or hash_model_id(name) is not None:
        return
    from engram.providers.embedders.onnx import prefetch_query_session

    try:
        prefetch_query_session(name, **opts)
    except Exception:  # an unknown or missing model: the embedder's own error says which
        return


def get_reranker(name: str | os.PathLike[str] = DEFAULT_RERANKER, **opts: Any) -> Reranker:
    """A cross-encoder reranker by known name or local model directory; ``opts`` (e.g.
    ``max_length``, ``batch_size``) go to
    :class:`~engram.providers.rerankers.onnx.OnnxCrossEncoder`."""
    from engram.providers.rerankers.onnx import OnnxCrossEncoder

    return OnnxCrossEncoder(name, **opts)
