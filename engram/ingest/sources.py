"""Where documents come from: files under a folder (with include/exclude globs) or stdin."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, TextIO

from engram.ingest.loaders import (
    LoaderOptions,
    load_bytes,
    looks_like_text,
    names_a_format,
    supported_extensions,
)
from engram.ingest.loaders.base import fail
from engram.types import Failure, LoadedDocument


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """Translate a glob: ``*`` and ``?`` stay inside one path segment, ``**`` crosses them."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close]
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def matches(rel: str, pattern: str) -> bool:
    """Whether the POSIX relative path ``rel`` matches ``pattern``.

    A pattern without ``/`` matches the file or folder name at any depth (``*.md``,
    ``drafts``), as in ``.gitignore``; a pattern with ``/`` matches the whole relative path
    (``docs/**/*.md``). A trailing ``/`` is ignored.
    """
    pattern = pattern.strip().rstrip("/")
    if not pattern:
        return False
    target = rel if "/" in pattern else rel.rsplit("/", 1)[-1]
    return _compile(pattern.removeprefix("./")).fullmatch(target) is not None


def iter_files(
    root: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    recursive: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, key)`` for each loadable file under ``root``, sorted by key.

    The key is the POSIX path relative to ``root`` (for a file ``root``, its name). Hidden
    files and folders are skipped, and so are files of an extension no loader reads and
    extension-less files that are not text (``README``, ``LICENSE`` are read as text): each
    of those is reported to ``on_skip(path, reason)``. ``include`` keeps only paths
    matching one of its globs, ``exclude`` drops paths (and whole folders) matching one of
    its globs. A file named explicitly is yielded as-is, so an unsupported format still fails
    loudly instead of being skipped.
    """
    if root.is_file():
        yield root, root.name
        return
    if not root.is_dir():
        raise fail(str(root), "no such file or directory")
    extensions = supported_extensions()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(
            d
            for d in dirnames
            if recursive
            and not d.startswith(".")
            and not any(matches(prefix + d, p) for p in exclude)
        )
        for name in filenames:
            rel = prefix + name
            if name.startswith("."):
                continue
            if include and not any(matches(rel, p) for p in include):
                continue
            if any(matches(rel, p) for p in exclude):
                continue
            suffix = Path(name).suffix.lower()
            if suffix not in extensions:
                reason = _skip_reason(base / name, suffix)
                if reason is not None:
                    if on_skip is not None:
                        on_skip(str(base / name), reason)
                    continue
            found.append((rel, base / name))
    for rel, path in sorted(found):
        yield path, rel


def _skip_reason(path: Path, suffix: str) -> str | None:
    """Why a file of an unknown extension is not ingested, or None when it is text after
    all (no extension, or an extension that is not one: ``notes.2024``)."""
    if names_a_format(suffix):
        return f"no loader for {suffix} files"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None if head and looks_like_text(head) else "not a text file (no extension)"


def read_stdin_documents(
    stream: BinaryIO | TextIO,
    fmt: str,
    key: str = "stdin",
    options: LoaderOptions | None = None,
) -> list[LoadedDocument | Failure]:
    """Load documents piped in on ``stream`` (``sys.stdin`` or a binary stream) as ``fmt``
    (a Failure in place of each unreadable record of a record format)."""
    binary = getattr(stream, "buffer", stream)
    data = binary.read()
    if isinstance(data, str):  # a text stream without a buffer (io.StringIO)
        data = data.encode("utf-8")
    return load_bytes(data, fmt=fmt, key=key, options=options, source="stdin")
