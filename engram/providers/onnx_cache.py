"""Optimized copies of ONNX graphs, kept in a cache directory so that sessions load faster.

onnxruntime optimizes a model's graph (fusions, int8 kernels, constant folding) each time a
session is created from the original file: for the bundled bge-small model that is about a
third of creating the session, paid by every one-shot ``engram search``. The optimized graph
is saved once (``SessionOptions.optimized_model_filepath``); later sessions load that copy
with optimization off, which runs the very same graph (the same outputs, bit for bit).

A copy is named after what it depends on: the model file (its real path, size and
modification time; hashing 34 MB would cost a third of the saving at every start), the
onnxruntime version and the machine (the ALL level may choose kernels and layouts for this
CPU). It is written under a temporary name and renamed into place, so processes starting
together each write a whole copy and one rename wins; a reader sees no copy or a whole one.
A copy that cannot be loaded is removed and the original loaded instead (see
:func:`engram.providers._onnx.create_session`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
from functools import lru_cache
from pathlib import Path

OFF = "off"


def cache_dir(setting: str = "") -> Path | None:
    """The directory of optimized graphs for a ``model_cache_dir`` setting: a path; ""
    for the user's cache directory ($XDG_CACHE_HOME/engram/onnx, else ~/.cache/engram/onnx);
    "off" (or no home directory to find) for none."""
    setting = setting.strip()
    if setting.lower() == OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry
            return None
    return Path(base) / "engram" / "onnx"


@lru_cache(maxsize=1)
def _machine() -> str:
    """The architecture and, on Linux, the CPU's feature flags (first processor's)."""
    flags = ""
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="ascii", errors="replace") as f,
    ):
        for line in f:
            if line.startswith(("flags", "Features")):
                flags = line.partition(":")[2].strip()
                break
    return f"{platform.machine()} {platform.processor()} {flags}"


def cached_path(model_path: Path, runtime_version: str, setting: str = "") -> Path | None:
    """Where the optimized copy of ``model_path`` lives (whether or not it exists yet), or
    None when caching is off or the model file cannot be read."""
    directory = cache_dir(setting)
    if directory is None:
        return None
    try:
        real = model_path.resolve()
        stat = real.stat()
    except OSError:
        return None
    key = "\n".join([str(real), str(stat.st_size), str(stat.st_mtime_ns), runtime_version])
    digest = hashlib.sha256(f"{key}\n{_machine()}".encode()).hexdigest()[:20]
    return directory / f"{real.parent.name}-{real.stem}-{digest}.onnx"


def temporary_path(cached: Path) -> Path | None:
    """A new, empty file beside ``cached`` for onnxruntime to write the optimized graph to
    (None when the cache directory cannot be created or written)."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.stem}.", suffix=".tmp")
    except OSError:
        return None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.chmod(name, 0o644)  # as a plain new file: a shared cache directory stays usable
    return Path(name)


def publish(temporary: Path, cached: Path) -> None:
    """Rename a written copy into place (atomic); drop it when it is empty or cannot be."""
    try:
        if temporary.stat().st_size > 0:
            os.replace(temporary, cached)
            return
    except OSError:
        pass
    discard(temporary)


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
