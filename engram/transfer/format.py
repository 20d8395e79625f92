"""The portable export format (docs/export-format.md): a manifest and JSON Lines files.

This module holds the constants, the manifest, the line encoding and reading; ``records``
maps records to and from lines, ``archive`` puts an export in a folder or an archive.

Every line is one JSON object written with sorted keys, no spaces and UTF-8 text, so the same
data gives the same bytes whatever backend it came from. Vectors are base64 of float32
little-endian bytes: exact, and a third of the size of decimal text. Backend ids (document,
chunk, message ids) never appear; conversations and memories keep their ids, which are
public. An export is a directory, or the same files in a ``.tar`` / ``.tar.gz`` archive.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InvalidInput

FORMAT = "engram-export"
FORMAT_VERSION = 1  # bumped when a reader of the previous version could misread new files
MANIFEST = "manifest.json"
# An import builds a collection under this prefix and renames it when complete.
STAGING_PREFIX = "~import~"

# File names inside a collection's and a tenant's folder.
DOCUMENTS, CHUNKS, EMBEDDINGS = "documents.jsonl", "chunks.jsonl", "embeddings.jsonl"
CONVERSATIONS, MESSAGES = "conversations.jsonl", "messages.jsonl"
MEMORIES, HISTORY, EVENTS = "memories.jsonl", "memory_history.jsonl", "events.jsonl"


def engram_version() -> str:
    try:
        return metadata.version("engram")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def backend_name(store: object) -> str:
    """ "sqlite", "postgres", or the class name of another backend."""
    name = type(store).__name__
    for prefix, label in (("SQLite", "sqlite"), ("Postgres", "postgres")):
        if name.startswith(prefix):
            return label
    return name


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dumps(value: Any) -> str:
    """The one JSON encoding of the format (deterministic)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def vector_b64(blob: bytes) -> str:
    return base64.b64encode(np.frombuffer(blob, dtype=np.float32).astype("<f4").tobytes()).decode()


def vector_from_b64(text: Any, dimension: int | None, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{where}: vector is not valid base64") from exc
    if len(raw) % 4 or (dimension is not None and len(raw) != 4 * dimension):
        raise InvalidInput(
            f"{where}: vector of {len(raw)} bytes, expected {4 * (dimension or 0)}"
            f" ({dimension} float32)"
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


# -- writing ----------------------------------------------------------------------------------
@dataclass(slots=True)
class FileInfo:
    records: int = 0
    bytes: int = 0
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "records": self.records, "sha256": self.sha256}


class JsonlWriter:
    """Writes one JSONL file, counting records and bytes and hashing as it goes."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("wb")
        self._hash = hashlib.sha256()
        self.info = FileInfo()

    def write(self, record: dict[str, Any]) -> None:
        data = (dumps(record) + "\n").encode()
        self._file.write(data)
        self._hash.update(data)
        self.info.records += 1
        self.info.bytes += len(data)

    def close(self) -> FileInfo:
        self._file.close()
        self.info.sha256 = self._hash.hexdigest()
        return self.info


@dataclass(slots=True)
class Manifest:
    """What ``manifest.json`` holds (see docs/export-format.md)."""

    created_at: str
    source: dict[str, Any]
    collections: list[dict[str, Any]] = field(default_factory=list)
    tenants: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    engram: str = field(default_factory=engram_version)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "engram_version": self.engram,
            "created_at": self.created_at,
            "source": self.source,
            "collections": self.collections,
            "tenants": self.tenants,
            "files": self.files,
        }


def write_manifest(root: Path, manifest: Manifest) -> int:
    data = json.dumps(manifest.to_dict(), ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    (root / MANIFEST).write_text(data, encoding="utf-8")
    return len(data.encode())


def read_manifest(root: Path) -> Manifest:
    """The manifest of an export, validated: the format and a version this engram reads."""
    path = root / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{root} is not an engram export: it has no {MANIFEST}",
            hint="pass a folder or archive written by `engram export`",
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is unreadable: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InvalidInput(
            f"{path} is not an engram export manifest (format {raw.get('format') if isinstance(raw, dict) else None!r})",
            hint=f"expected format {FORMAT!r}, written by `engram export`",
        )
    version = raw.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InvalidInput(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise InvalidInput(
            f"this export is format version {version}; this engram reads up to version"
            f" {FORMAT_VERSION}",
            hint=f"upgrade engram (the export was written by engram {raw.get('engram_version')})",
        )
    for key in ("collections", "tenants", "files"):
        if not isinstance(raw.get(key), list if key != "files" else dict):
            raise InvalidInput(f"{path}: {key!r} is missing or malformed")
    return Manifest(
        created_at=str(raw.get("created_at", "")),
        source=dict(raw.get("source") or {}),
        collections=raw["collections"],
        tenants=raw["tenants"],
        files=raw["files"],
        engram=str(raw.get("engram_version", "")),
        format_version=version,
    )


def member(path: Any, where: str) -> str:
    """A folder or file name from a manifest, checked to stay inside the export."""
    parts = str(path).split("/") if isinstance(path, str) else []
    if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise InvalidInput(f"{where}: {path!r} is not a path inside the export")
    return str(path)


def verify_files(root: Path, manifest: Manifest, names: list[str]) -> None:
    """Check that each file has the size and SHA-256 the manifest records (a truncated copy
    or an edited file fails here, before anything is written)."""
    for name in names:
        expected = manifest.files.get(name)
        if not isinstance(expected, dict):
            raise InvalidInput(f"the manifest does not list {name}")
        path = root / name
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    size += len(block)
        except OSError as exc:
            raise InvalidInput(f"{name}: cannot read ({exc})") from exc
        if size != expected.get("bytes") or digest.hexdigest() != expected.get("sha256"):
            raise InvalidInput(
                f"{name} does not match the manifest ({size} bytes, expected"
                f" {expected.get('bytes')}): the export is damaged or was modified",
                hint="export again, or copy the export completely",
            )


# -- reading lines ----------------------------------------------------------------------------
class Line:
    """One parsed line, with typed accessors that name the file and line on bad input."""

    def __init__(self, where: str, value: dict[str, Any]) -> None:
        self.where = where
        self.value = value

    def _get(self, name: str, types: type | tuple[type, ...], optional: bool) -> Any:
        value = self.value.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise InvalidInput(f"{self.where}: field {name!r} is missing or not {_names(types)}")
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, str, False))

    def opt_text(self, name: str) -> str | None:
        value = self._get(name, str, True)
        return None if value is None else str(value)

    def integer(self, name: str) -> int:
        return int(self._get(name, int, False))

    def opt_integer(self, name: str) -> int | None:
        value = self._get(name, int, True)
        return None if value is None else int(value)

    def opt_float(self, name: str) -> float | None:
        value = self._get(name, (int, float), True)
        return None if value is None else float(value) if isinstance(value, float) else value

    def mapping(self, name: str) -> dict[str, Any]:
        return dict(self._get(name, dict, False))

    def array(self, name: str) -> list[Any]:
        return list(self._get(name, list, False))


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _tuple(types))


def read_lines(root: Path, name: str) -> Iterator[Line]:
    """Stream the records of one JSONL file of an export."""
    try:
        f = (root / name).open("r", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read ({exc})") from exc
    with f:
        for lineno, text in enumerate(f, start=1):
            where = f"{name}:{lineno}"
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise InvalidInput(f"{where}: invalid JSON ({exc})") from exc
            if not isinstance(value, dict):
                raise InvalidInput(f"{where}: expected a JSON object")
            yield Line(where, value)


def grouped(
    parents: Iterator[Line], children: Iterator[Line], parent_key: str, child_key: str
) -> Iterator[tuple[Line, list[Line]]]:
    """Join two files sorted by the same key (parents unique), streaming: each parent with its
    children. Out-of-order lines and children without a parent are errors."""
    pending = next(children, None)
    previous: str | None = None
    for parent in parents:
        key = parent.text(parent_key)
        if previous is not None and key <= previous:
            raise InvalidInput(f"{parent.where}: {parent_key} {key!r} is out of order")
        previous = key
        mine: list[Line] = []
        while pending is not None and pending.text(child_key) <= key:
            if pending.text(child_key) < key:
                raise InvalidInput(
                    f"{pending.where}: {child_key} {pending.text(child_key)!r} matches no record"
                    " (or the file is out of order)"
                )
            mine.append(pending)
            pending = next(children, None)
        yield parent, mine
    if pending is not None:
        raise InvalidInput(
            f"{pending.where}: {child_key} {pending.text(child_key)!r} matches no record"
        )
