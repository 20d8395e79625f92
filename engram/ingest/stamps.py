"""Skip unchanged files before reading or parsing them.

Each document loaded from a file keeps a *stamp* of that file (``documents.file_stamp``):
its size and modification time, the SHA-256 of its bytes, how many documents it gave, and a
digest of everything else that decides those documents: the key the file is loaded under,
the loader options, the chunk settings, the embedding model, engram's version and
``PIPELINE_VERSION``. A re-ingest looks up the stamps of the files it is about to load
(``DocumentStore.file_stamps``, by path, a batch at a time), and for each file:

1. same size and modification time as stamped, and every document the file gave still
   carries the stamp → skipped without being read, as git and rsync do (a file rewritten
   with the same size and its old modification time put back is not seen:
   ``engram ingest --reparse`` reads and parses every file);
2. else its bytes are read and hashed: the same hash → skipped without being parsed, and its
   documents restamped with the new size and time, so that the next run skips it unread;
3. else it is parsed as before: its documents are written if their content changed, else
   restamped.

Documents of a skipped file count as unchanged; with ``--sync`` they are present.

A modification time less than :data:`RACY_NS` before the file was looked at is not recorded
(the file could change again within the same clock tick, and keep its time): such a file is
hashed next time. A file with a record that could not be loaded is not stamped, so that its
failure is reported again on every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..config import Settings
from ..store.records import StampedDocument
from .loaders import LoaderOptions
from .loaders.base import DEFAULT_OPTIONS
from .pipeline import PIPELINE_VERSION, UnchangedFile

# A modification time at least this old when the file is looked at is trusted: any later
# change gets a later time, on filesystems with a time resolution of up to 2 s (FAT).
RACY_NS = 2_000_000_000
_FORMAT = "1"  # of the stamp text; another one is never equal, so files are read again

Lookup = Callable[[Sequence[str]], dict[str, list[StampedDocument]]]


@lru_cache(maxsize=1)
def _engram_version() -> str:
    """engram's version: a new one may parse files differently, so it re-reads them once."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engram")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@dataclass(frozen=True, slots=True)
class Stamp:
    size: int
    mtime_ns: int  # -1: too recent to be trusted (see RACY_NS)
    count: int  # documents the file gave
    context: str  # digest of what besides the bytes decides them
    sha256: str  # of the file's bytes

    def text(self) -> str:
        return f"{_FORMAT} {self.size} {self.mtime_ns} {self.count} {self.context} {self.sha256}"

    @classmethod
    def parse(cls, text: str) -> Stamp | None:
        parts = text.split(" ")
        if len(parts) != 6 or parts[0] != _FORMAT:
            return None
        try:
            return cls(int(parts[1]), int(parts[2]), int(parts[3]), parts[4], parts[5])
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ReadFile:
    """A file to parse: its bytes (None when it could not be read: the loader says why)
    and how to stamp the documents it gives."""

    data: bytes | None
    size: int = 0
    mtime_ns: int = -1
    context: str = ""
    sha256: str = ""

    def stamp(self, count: int) -> str | None:
        if self.data is None:
            return None
        return Stamp(self.size, self.mtime_ns, count, self.context, self.sha256).text()


class FileStamps:
    """The stamps of one ingest: ``lookup`` reads those stored in the collection (None for
    a collection not created yet); ``reparse`` reads and parses every file regardless."""

    def __init__(
        self,
        settings: Settings,
        model_id: str,
        options: LoaderOptions | None,
        lookup: Lookup | None,
        *,
        reparse: bool = False,
    ) -> None:
        self._lookup = lookup
        self.reparse = reparse
        self._base = json.dumps(
            [
                _engram_version(),
                PIPELINE_VERSION,
                settings.chunk_tokens,
                settings.chunk_overlap,
                model_id,
                dataclasses.asdict(options or DEFAULT_OPTIONS),
            ],
            sort_keys=True,
            default=str,
        )

    def context(self, key: str) -> str:
        return hashlib.sha256(f"{self._base}\n{key}".encode()).hexdigest()[:16]

    def lookup(self, sources: Sequence[str]) -> dict[str, list[StampedDocument]]:
        if self._lookup is None or self.reparse or not sources:
            return {}
        return self._lookup(sources)

    def check(
        self, path: Path, source: str, key: str, stored: Sequence[StampedDocument]
    ) -> UnchangedFile | ReadFile:
        """Whether the file at ``path`` (``source``, loaded under ``key``) is unchanged since
        the documents ``stored`` were stamped; if not, its bytes, read once for the loader."""
        try:
            stat = path.stat()
        except OSError:
            return ReadFile(None)
        context = self.context(key)
        groups: dict[str, list[StampedDocument]] = {}
        for row in stored:
            groups.setdefault(row.stamp, []).append(row)
        # Stamps of this context that every document the file gave still carries.
        candidates: list[tuple[Stamp, list[StampedDocument]]] = []
        for text, rows in groups.items():
            stamp = Stamp.parse(text)
            if stamp is not None and stamp.context == context and stamp.count == len(rows):
                candidates.append((stamp, rows))
        for stamp, rows in candidates:
            if stamp.mtime_ns >= 0 and (stamp.size, stamp.mtime_ns) == (
                stat.st_size,
                stat.st_mtime_ns,
            ):
                return UnchangedFile(source, tuple(r.key for r in rows))
        mtime = stat.st_mtime_ns if time.time_ns() - stat.st_mtime_ns >= RACY_NS else -1
        try:
            data = path.read_bytes()
        except OSError:
            return ReadFile(None)
        digest = hashlib.sha256(data).hexdigest()
        for stamp, rows in candidates:
            if stamp.sha256 == digest:
                fresh = Stamp(stat.st_size, mtime, stamp.count, context, digest).text()
                restamp = tuple(
                    StampedDocument(r.key, r.content_hash, fresh) for r in rows if r.stamp != fresh
                )
                return UnchangedFile(source, tuple(r.key for r in rows), restamp)
        return ReadFile(data, stat.st_size, mtime, context, digest)
