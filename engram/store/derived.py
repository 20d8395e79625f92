"""The derived indexes of one collection (BM25 + HNSW), kept in step with the chunk log.

Both are rebuilt from the store's tables when missing and replay the log when behind, so
they never hold anything the tables do not. They are saved together and carry the log
sequence number they are complete up to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..search.ann import HnswParams, VectorIndex
from ..search.bm25 import BM25Index


@dataclass(slots=True)
class ChunkChange:
    chunk_id: int
    added: bool
    terms: str | None = None  # None for removals, or an add undone later in the log
    vector: np.ndarray | None = None


class DerivedIndexes:
    def __init__(
        self, directory: Path | None, collection_id: int, dimension: int, hnsw: HnswParams
    ) -> None:
        base = directory / str(collection_id) if directory else None
        self.vectors = VectorIndex(
            base.with_suffix(".hnsw") if base else Path(f"/nonexistent/{collection_id}.hnsw"),
            dimension,
            hnsw,
        )
        self.keywords = BM25Index(base.with_suffix(".bm25.npz") if base else None)
        self.persistent = directory is not None
        if self.persistent:
            loaded = self.vectors.load() and self.keywords.load()
            if not loaded or self.vectors.seq != self.keywords.seq:
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

    def save(self) -> None:
        if self.persistent:
            self.vectors.save()
            self.keywords.save()

    def remove_files(self) -> None:
        for path in (self.vectors.path, self.vectors.path.with_suffix(".json"), self.keywords.path):
            if path is not None and self.persistent:
                path.unlink(missing_ok=True)
