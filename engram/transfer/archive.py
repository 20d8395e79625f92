"""An export on disk: a folder, or the same files in a ``.tar`` / ``.tar.gz`` archive."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InvalidInput

_ARCHIVES = (".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(_ARCHIVES)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[Path]:
    """The folder of an export: ``path`` itself, or a temporary copy of an archive's files."""
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory")
    if not is_archive(path):
        raise InvalidInput(
            f"{path} is neither an export folder nor a .tar / .tar.gz archive",
            hint="pass the folder or archive written by `engram export`",
        )
    with tempfile.TemporaryDirectory(prefix="engram-import-") as tmp:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(f"{path}: unreadable archive ({exc})") from exc
        yield Path(tmp)


@contextlib.contextmanager
def writing(path: Path, *, force: bool = False) -> Iterator[Path]:
    """A folder to write an export into; for an archive path, the archive is made from it
    (deterministically: sorted names, no timestamps or owners) when the block succeeds."""
    if not is_archive(path):
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if not force:
                raise InvalidInput(
                    f"{path} exists and is not an empty folder",
                    hint="choose a new path, or pass --force to overwrite it",
                )
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        path.mkdir(parents=True, exist_ok=True)
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return
    if path.exists() and not force:
        raise InvalidInput(f"{path} exists", hint="choose a new path, or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".engram-export-", dir=path.parent) as tmp:
        yield Path(tmp)
        partial = path.with_name(path.name + ".partial")
        _write_archive(Path(tmp), partial)
        os.replace(partial, path)


def _write_archive(root: Path, target: Path) -> None:
    compress = not target.name.lower().removesuffix(".partial").endswith(".tar")
    with target.open("wb") as raw:
        stream: Any = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                info = tarfile.TarInfo(file.relative_to(root).as_posix())
                info.size = file.stat().st_size
                info.mode = 0o644
                with file.open("rb") as f:
                    tar.addfile(info, f)
        if compress:
            stream.close()
