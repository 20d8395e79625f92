"""The derived indexes of one collection (BM25 + HNSW), kept in step with the chunk log.

Both are rebuilt from the store's tables when missing and replay the log when behind, so
they never hold anything the tables do not. They carry the log sequence number they are
complete up to.

On disk, several processes share them (``engram serve --workers N``, a CLI ingest beside a
server), so a save is a *generation*: both files are written under names of their own
(``<id>.<generation>.hnsw`` with its ``.json``, ``<id>.<generation>.bm25.npz``), then the
manifest ``<id>.manifest.json`` is replaced to name them — the one atomic step that makes
the pair current. (Below ``exact_search_below`` vectors, the ``.hnsw`` file holds the
vectors as a plain array: such a collection has no graph.) Saves hold an exclusive lock on ``<id>.lock`` and never replace a
manifest naming a newer generation than theirs; loads hold it shared, so the files they
read are not removed under them. Files no manifest names (a save killed halfway, an older
layout) are removed by the next save. Anything unreadable is rebuilt from the tables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...search.ann import HnswParams, VectorIndex
from ...search.bm25 import BM25Index
from ...search.persist import replace_atomically
from .filelock import file_lock

logger = logging.getLogger("engram.store")

_FORMAT = 2


@dataclass(slots=True)
class ChunkChange:
    chunk_id: int
    added: bool
    terms: str | None = None  # None for removals, or an add undone later in the log
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class IndexFiles:
    """Where one collection's derived indexes live in an index directory."""

    directory: Path
    collection_id: int

    @property
    def manifest(self) -> Path:
        return self.directory / f"{self.collection_id}.manifest.json"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.collection_id}.lock"

    def vectors(self, generation: str) -> Path:
        return self.directory / f"{self.collection_id}.{generation}.hnsw"

    def keywords(self, generation: str) -> Path:
        return self.directory / f"{self.collection_id}.{generation}.bm25.npz"

    def generation_files(self, generation: str) -> list[Path]:
        vectors = self.vectors(generation)
        return [vectors, vectors.with_suffix(".json"), self.keywords(generation)]

    def read_manifest(self) -> dict[str, Any] | None:
        """The current manifest, or None when there is none (or it is unreadable)."""
        try:
            manifest = json.loads(self.manifest.read_text())
            if manifest.get("format") != _FORMAT:
                return None
            int(manifest["seq"]), str(manifest["generation"])
            return dict(manifest)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def all_files(self) -> list[Path]:
        """Every file of this collection in the directory (any generation, lock, leftovers)."""
        if not self.directory.is_dir():
            return []
        prefix = f"{self.collection_id}."
        return [
            p
            for p in self.directory.iterdir()
            if p.name.startswith(prefix) or p.name.startswith("." + prefix)
        ]


class DerivedIndexes:
    def __init__(
        self, directory: Path | None, collection_id: int, dimension: int, hnsw: HnswParams
    ) -> None:
        self.files = IndexFiles(directory, collection_id) if directory else None
        self.vectors = VectorIndex(Path(f"/nonexistent/{collection_id}.hnsw"), dimension, hnsw)
        self.keywords = BM25Index(None)
        if self.files is not None:
            self._load(self.files)

    def _load(self, files: IndexFiles) -> None:
        with file_lock(files.lock, exclusive=False):
            manifest = files.read_manifest()
            if manifest is None:
                return
            generation, seq = str(manifest["generation"]), int(manifest["seq"])
            loaded = self.vectors.load(files.vectors(generation)) and self.keywords.load(
                files.keywords(generation)
            )
        if not (loaded and self.vectors.seq == self.keywords.seq == seq):
            logger.warning(
                "index files of collection %s are unreadable: rebuilding them from the database",
                files.collection_id,
            )
            self.reset()

    @property
    def seq(self) -> int:
        return min(self.vectors.seq, self.keywords.seq)

    def reset(self) -> None:
        self.vectors.reset()
        self.keywords.reset()

    def apply(self, changes: list[ChunkChange], head: int) -> None:
        vectors: dict[int, np.ndarray] = {}
        terms: dict[int, str] = {}
        removes: list[int] = []
        for change in changes:
            if change.added:
                if change.terms is not None and change.vector is not None:
                    vectors[change.chunk_id] = change.vector
                    terms[change.chunk_id] = change.terms
            else:
                vectors.pop(change.chunk_id, None)
                terms.pop(change.chunk_id, None)
                removes.append(change.chunk_id)
        self.vectors.apply(vectors, removes, head)
        self.keywords.apply(terms, removes, head)

    def save(self) -> int:
        """Save a new generation unless the directory already holds one as new; returns
        the sequence number the files on disk now hold (0 when not persistent)."""
        if self.files is None:
            return 0
        files = self.files
        with file_lock(files.lock, exclusive=True):
            current = files.read_manifest()
            on_disk = int(current["seq"]) if current else -1
            seq = self.seq
            if on_disk >= seq and current is not None:
                return on_disk  # another process saved as much or more: keep its files
            generation = f"{seq}-{secrets.token_hex(4)}"
            self.vectors.save(files.vectors(generation))
            self.keywords.save(files.keywords(generation))
            manifest = {"format": _FORMAT, "seq": seq, "generation": generation}
            replace_atomically(files.manifest, lambda tmp: tmp.write_text(json.dumps(manifest)))
            keep = {files.manifest, files.lock, *files.generation_files(generation)}
            for path in files.all_files():
                if path not in keep:
                    with contextlib.suppress(OSError):
                        path.unlink()
            return seq


def remove_index_files(directory: Path, collection_id: int) -> None:
    """Delete every index file of a collection (when the collection itself is deleted)."""
    files = IndexFiles(directory, collection_id)
    with file_lock(files.lock, exclusive=True):
        for path in files.all_files():
            if path != files.lock:
                with contextlib.suppress(OSError):
                    path.unlink()
