"""An HNSW vector index (usearch) derived from vectors stored elsewhere, persisted as a file.

The index is never the source of truth: it records the sequence number of the last change it
contains, and its owner replays newer changes (or rebuilds it) when it is missing or behind.
Small indexes, and filtered searches over few rows, are answered exactly.

Deletions are tombstones filtered out of results, never usearch's ``remove``: in usearch 2.25
saving an index after removing many keys corrupts the heap (tests/test_ranking.py keeps a
regression test). When tombstones pass a quarter of the index, it is rebuilt from its own live
vectors.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from usearch.index import Index


@dataclass(frozen=True, slots=True)
class HnswParams:
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128
    exact_below: int = 20000


class VectorIndex:
    """Cosine-similarity index over int64 keys, with a persisted change watermark (``seq``)."""

    def __init__(self, path: Path, dimension: int, params: HnswParams) -> None:
        self.path = path
        self.dimension = dimension
        self.params = params
        self.seq = 0
        self._lock = threading.RLock()
        self._index = self._new_index()
        self._deleted: set[int] = set()
        self._dirty = False

    def _new_index(self) -> Index:
        return Index(
            ndim=self.dimension,
            metric="cos",
            dtype="f32",
            connectivity=self.params.connectivity,
            expansion_add=self.params.expansion_add,
            expansion_search=self.params.expansion_search,
        )

    @property
    def _meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    def load(self) -> bool:
        """Load the saved index if there is a complete one; returns whether it did."""
        try:
            meta = json.loads(self._meta_path.read_text())
            if meta.get("dimension") != self.dimension or not self.path.exists():
                return False
            index = self._new_index()
            index.load(str(self.path))
            deleted = {int(k) for k in meta.get("deleted", [])}
        except (OSError, ValueError, RuntimeError, TypeError):
            return False  # missing or damaged: the owner rebuilds from the source of truth
        with self._lock:
            self._index, self.seq, self._deleted, self._dirty = (
                index,
                int(meta["seq"]),
                deleted,
                False,
            )
        return True

    def save(self) -> None:
        """Write index then metadata, each atomically: a crash leaves the old pair or none."""
        with self._lock:
            if not self._dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            self._index.save(str(tmp))
            os.replace(tmp, self.path)
            meta_tmp = self._meta_path.with_suffix(".json.tmp")
            meta = {"seq": self.seq, "dimension": self.dimension, "deleted": sorted(self._deleted)}
            meta_tmp.write_text(json.dumps(meta))
            os.replace(meta_tmp, self._meta_path)
            self._dirty = False

    def reset(self) -> None:
        with self._lock:
            self._index = self._new_index()
            self._deleted = set()
            self.seq = 0
            self._dirty = True

    def __len__(self) -> int:
        return len(self._index) - len(self._deleted)

    def apply(self, adds: dict[int, np.ndarray], removes: Sequence[int], seq: int) -> None:
        """Apply a batch of changes that brings the index up to ``seq``."""
        with self._lock:
            for key in removes:
                if self._index.contains(key):
                    self._deleted.add(int(key))
            if adds:
                keys = np.fromiter(adds.keys(), dtype=np.uint64, count=len(adds))
                fresh = ~np.asarray(self._index.contains(keys), dtype=bool).reshape(-1)
                if fresh.any():
                    vectors = np.stack(list(adds.values())).astype(np.float32)
                    self._index.add(keys[fresh], vectors[fresh])
            self.seq = max(self.seq, seq)
            self._dirty = True
            if len(self._deleted) > 1000 and len(self._deleted) > len(self._index) // 4:
                self._compact()

    def _compact(self) -> None:
        """Rebuild from the live vectors, dropping tombstones."""
        keys = np.asarray(
            [int(k) for k in self._index.keys if int(k) not in self._deleted], dtype=np.uint64
        )
        vectors = np.asarray(self._index.get(keys), dtype=np.float32) if len(keys) else None
        self._index = self._new_index()
        if vectors is not None:
            self._index.add(keys, vectors.reshape(len(keys), self.dimension))
        self._deleted = set()

    def search(
        self, query: np.ndarray, k: int, allowed: set[int] | None = None, *, exact: bool = False
    ) -> list[tuple[int, float]]:
        """Top ``k`` (key, cosine similarity); ``allowed`` restricts results to those keys."""
        size = len(self._index)
        if size == 0 or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        if allowed is not None:
            allowed = allowed - self._deleted
            if len(allowed) <= max(self.params.exact_below, 1000) or exact:
                return self._exact_subset(query, k, allowed)
            return self._filtered_ann(query, k, allowed, size)
        use_exact = exact or size < self.params.exact_below
        with self._lock:
            matches = self._index.search(query, min(k + len(self._deleted), size), exact=use_exact)
            hits = [
                (int(key), 1.0 - float(d))
                for key, d in zip(matches.keys, matches.distances)
                if int(key) not in self._deleted
            ]
        return hits[:k]

    def _exact_subset(
        self, query: np.ndarray, k: int, allowed: set[int]
    ) -> list[tuple[int, float]]:
        keys = [key for key in allowed if self._index.contains(key)]
        if not keys:
            return []
        with self._lock:
            matrix = np.asarray(
                self._index.get(np.asarray(keys, dtype=np.uint64)), dtype=np.float32
            )
        sims = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-12)
        top = np.argsort(-sims)[:k]
        return [(int(keys[i]), float(sims[i])) for i in top]

    def _filtered_ann(
        self, query: np.ndarray, k: int, allowed: set[int], size: int
    ) -> list[tuple[int, float]]:
        # Over-fetch in proportion to how selective the filter is, doubling until enough pass.
        fetch = min(size, max(k * 4, int(k * size / max(len(allowed), 1) * 2)))
        while True:
            with self._lock:
                matches = self._index.search(query, fetch)
            hits = [
                (int(key), 1.0 - float(d))
                for key, d in zip(matches.keys, matches.distances)
                if int(key) in allowed
            ]
            if len(hits) >= k or fetch >= size:
                return hits[:k]
            fetch = min(size, fetch * 2)
