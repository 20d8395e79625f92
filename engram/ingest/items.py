"""Turn what the user points at (files, folders, stdin, dicts) into pipeline items."""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from ..errors import EngramError, InvalidInput
from ..store.records import StampedDocument
from ..types import Failure, LoadedDocument, Skipped
from ..unicode import path_text
from .loaders import LoaderOptions, load_bytes, load_file_bytes, load_path
from .pipeline import FILE_METADATA, Item, UnchangedFile
from .sources import iter_files
from .stamps import FileStamps


def items_from_paths(
    paths: Sequence[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    options: LoaderOptions | None = None,
    stdin: BinaryIO | None = None,
    stdin_format: str = "txt",
    stdin_key: str | None = None,
    stamps: FileStamps | None = None,
) -> Iterator[Item]:
    """Documents from files and folders (recursively, filtered by globs); ``-`` reads stdin,
    keyed ``stdin_key`` — by default ``stdin-`` and the start of the content's SHA-256, so
    two different pipes never replace each other.

    A path that does not exist or a file that fails to parse becomes a :class:`Failure`
    naming the path and the reason; the rest go on. With ``stamps``, files unchanged since
    their documents were stamped are skipped unparsed (engram.ingest.stamps).
    """
    for raw in paths:
        if str(raw) == "-":
            data = (stdin or sys.stdin.buffer).read()
            key = stdin_key or f"stdin-{hashlib.sha256(data).hexdigest()[:12]}"
            yield from _load(load_bytes, data, "stdin", key, fmt=stdin_format, options=options)
            continue
        path = Path(raw)
        if not path.exists():
            yield Failure(path_text(path), "no such file or directory")
        elif path.is_dir():
            yield from _folder(path, include, exclude, options, stamps)
        else:
            stored = stamps.lookup([path_text(path)]) if stamps else {}
            yield from _file(path, path_text(path.name), options, stamps, stored)


def _folder(
    path: Path,
    include: Sequence[str],
    exclude: Sequence[str],
    options: LoaderOptions | None,
    stamps: FileStamps | None,
) -> Iterator[Item]:
    """The documents of a folder's files, and a :class:`Skipped` for each file left out."""
    skipped: list[Skipped] = []

    def skip(source: str, reason: str) -> None:
        skipped.append(Skipped(source, reason))

    files = iter_files(path, include=include, exclude=exclude, on_skip=skip)
    # The stored stamps of the files are looked up a batch at a time.
    while group := list(itertools.islice(files, 256)):
        stored = stamps.lookup([path_text(f) for f, _ in group]) if stamps else {}
        for file, key in group:
            yield from skipped
            skipped.clear()
            yield from _file(file, path_text(key), options, stamps, stored)
    yield from skipped


def _file(
    path: Path,
    key: str,
    options: LoaderOptions | None,
    stamps: FileStamps | None,
    stored: Mapping[str, Sequence[StampedDocument]],
) -> Iterator[Item]:
    """The documents of one file, loaded under ``key``; with ``stamps``, an
    :class:`UnchangedFile` instead when the file has not changed (engram.ingest.stamps)."""
    source = path_text(path)
    found = stamps.check(path, source, key, stored.get(source, ())) if stamps else None
    if isinstance(found, UnchangedFile):
        yield found
        return
    if found is None or found.data is None:  # not stamped, or unreadable (the loader says why)
        yield from _with_file(_load(load_path, path, source, key, options=options), path, key)
        return
    items = list(_load(load_file_bytes, path, source, key, data=found.data, options=options))
    if not any(isinstance(i, Failure) for i in items):  # a failure is reported every time
        stamp = found.stamp(len(items))
        for item in items:
            if isinstance(item, LoadedDocument):
                item.file_stamp = stamp
    yield from _with_file(iter(items), path, key)


def _load(loader: Any, subject: Any, source: str, key: str, **kwargs: Any) -> Iterator[Item]:
    try:
        docs = loader(subject, key=key, **kwargs)
    except EngramError as exc:
        # A single-document file's key is known, so --sync will not delete its old version.
        records = Path(source).suffix.lower() in {".json", ".jsonl", ".ndjson", ".csv"}
        # The failure names the source once: loader messages start with it already.
        reason = str(exc).removeprefix(f"{source}: ")
        yield Failure(source, reason, () if records else (key,))
        return
    yield from docs


def _with_file(items: Iterator[Item], path: Path, relative: str) -> Iterator[Item]:
    """The documents of a file, each with the file's facts under ``metadata["file"]``
    (``path`` relative to the folder ingested, ``folder``, ``name``, ``extension``,
    ``size``, ``modified``), to filter on: ``--where 'file.extension=.pdf'``. Kept out of
    the content hash, so touching a file does not make a new version."""
    try:
        stat = path.stat()
    except OSError:
        yield from items
        return
    name = relative.rsplit("/", 1)[-1]
    facts = {
        "path": relative,
        "folder": relative.rsplit("/", 1)[0] if "/" in relative else "",
        "name": name,
        "extension": PurePosixPath(name).suffix.lower(),
        "size": stat.st_size,
        "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds"),
    }
    for item in items:
        if isinstance(item, LoadedDocument):
            item.metadata.setdefault(FILE_METADATA, facts)
        yield item


def items_from_records(
    records: Iterable[Mapping[str, Any] | LoadedDocument | Failure],
) -> Iterator[LoadedDocument | Failure]:
    """Documents given as dicts ``{"id"|"key", "text", "title"?, "metadata"?}`` or
    LoadedDocument (a Failure, from a loader, passes through to the report)."""
    for i, record in enumerate(records):
        if isinstance(record, LoadedDocument | Failure):
            yield record
            continue
        key = record.get("key") or record.get("id") or record.get("_id")
        text = record.get("text")
        if not key or not isinstance(text, str) or not text.strip():
            raise InvalidInput(
                f"record {i} needs a non-empty 'id' (or 'key') and 'text'",
                hint="pass {'id': 'doc-1', 'text': '...', 'title': '...', 'metadata': {...}}",
            )
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidInput(f"record {key!r}: metadata must be an object")
        yield LoadedDocument(
            key=str(key),
            text=text,
            title=str(record.get("title") or ""),
            metadata=dict(metadata),
            source=str(record.get("source") or ""),
        )
