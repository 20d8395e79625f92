"""An HNSW vector index (hnswlib) derived from vectors stored elsewhere, persisted as a file.

The index is never the source of truth: it records the sequence number of the last change it
contains, and its owner replays newer changes (or rebuilds it) when it is missing or behind.
Indexes smaller than ``exact_below`` vectors, and filtered searches over few rows, are
answered exactly with numpy. Below that size no graph is built at all (inserting into HNSW
is most of the cost of indexing a small collection, and its searches would not use it): the
vectors are kept as they are, saved as a plain array, and the graph is built from them, in
one call, when the index grows to ``exact_below``.

hnswlib (Chroma's maintained build, ``chroma-hnswlib``) was chosen over usearch and faiss by
measurement (bench/bench_ann.py, docs/benchmarks.md): 3x faster to build and to query at
100k x 384 on this machine at equal recall, supports deletion (faiss HNSW does not), and has
none of usearch 2.25-2.26's crashes (a segfault when onnxruntime is imported after it, heap
corruption when saving after many removals).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np

from .persist import replace_atomically


@dataclass(frozen=True, slots=True)
class HnswParams:
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128
    exact_below: int = 5000


class VectorIndex:
    """Cosine-similarity index over int64 keys, with a persisted change watermark (``seq``)."""

    def __init__(self, path: Path, dimension: int, params: HnswParams) -> None:
        self.path = path
        self.dimension = dimension
        self.params = params
        self.seq = 0
        self._lock = threading.RLock()
        self._index: hnswlib.Index | None = None  # no graph while smaller than exact_below
        self._flat: dict[int, np.ndarray] = {}  # key → vector, while there is no graph
        self._live: set[int] = set()
        self._deleted: set[int] = set()  # marked deleted in hnswlib, still occupying a slot
        self._exact: tuple[np.ndarray, np.ndarray] | None = None  # (keys, unit vectors)
        self._dirty = False

    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=self.dimension)
        index.init_index(
            max_elements=capacity,
            ef_construction=self.params.expansion_add,
            M=self.params.connectivity,
        )
        index.set_ef(self.params.expansion_search)
        return index

    def load(self, path: Path | None = None) -> bool:
        """Load the index saved at ``path`` (default: its own) if it is complete and
        readable; returns whether it did. Anything unreadable is left for the owner to
        rebuild from the source of truth."""
        path = path or self.path
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta.get("dimension") != self.dimension or not path.exists():
                return False
            if meta.get("kind") == "flat":
                return self._load_flat(path, int(meta["seq"]))
            index = hnswlib.Index(space="cosine", dim=self.dimension)
            index.load_index(str(path), max_elements=int(meta["capacity"]))
            index.set_ef(self.params.expansion_search)
            deleted = {int(k) for k in meta.get("deleted", [])}
            live = {int(k) for k in index.get_ids_list()} - deleted
            seq = int(meta["seq"])
        except Exception:  # missing, truncated or damaged, whatever the parser says
            return False
        with self._lock:
            self._index, self._flat, self._live, self._deleted = index, {}, live, deleted
            self.seq, self._exact, self._dirty = seq, None, False
        return True

    def _load_flat(self, path: Path, seq: int) -> bool:
        with open(path, "rb") as fh, np.load(fh) as data:
            keys, vectors = data["keys"], data["vectors"]
        if keys.ndim != 1 or vectors.shape != (len(keys), self.dimension):
            return False
        with self._lock:
            self._index, self._deleted = None, set()
            self._flat = dict(zip(keys.tolist(), vectors))
            self._live = set(self._flat)
            self.seq, self._exact, self._dirty = seq, None, False
            if len(self._live) >= self.params.exact_below:
                self._build_graph()
        return True

    def save(self, path: Path | None = None) -> None:
        """Write the index to ``path`` (default: its own), then its metadata beside it
        (``.json``), each atomically: a crash leaves the old pair or none. An index saved to
        its own path is written only when it changed since."""
        with self._lock:
            own = path is None
            path = path or self.path
            if own and not self._dirty:
                return
            index = self._index
            meta: dict[str, object] = {"seq": self.seq, "dimension": self.dimension}
            if index is None:
                keys = np.fromiter(self._flat, dtype=np.int64, count=len(self._flat))
                vectors = self._matrix(keys)

                def write(tmp: Path) -> None:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, keys=keys, vectors=vectors)

                replace_atomically(path, write)
                meta["kind"] = "flat"
            else:
                replace_atomically(path, lambda tmp: index.save_index(str(tmp)))
                meta["capacity"] = index.get_max_elements()
                meta["deleted"] = sorted(self._deleted)
            replace_atomically(
                path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(meta))
            )
            self._dirty = False

    def reset(self) -> None:
        with self._lock:
            self._index, self._flat = None, {}
            self._live, self._deleted, self._exact = set(), set(), None
            self.seq = 0
            self._dirty = True

    def __len__(self) -> int:
        return len(self._live)

    def apply(self, adds: dict[int, np.ndarray], removes: Sequence[int], seq: int) -> None:
        """Apply a batch of changes that brings the index up to ``seq``."""
        with self._lock:
            for key in removes:
                if key not in self._live:
                    continue
                self._live.discard(key)
                if self._index is None:
                    del self._flat[key]
                else:
                    self._index.mark_deleted(int(key))
                    self._deleted.add(int(key))
            fresh = {
                k: v for k, v in adds.items() if k not in self._live and k not in self._deleted
            }
            index = self._index
            if fresh and index is None:
                self._flat.update(
                    (int(k), np.asarray(v, dtype=np.float32)) for k, v in fresh.items()
                )
                self._live.update(int(k) for k in fresh)
                if len(self._live) >= self.params.exact_below:
                    self._build_graph()
            elif fresh and index is not None:
                needed = index.get_current_count() + len(fresh)
                if needed > index.get_max_elements():
                    index.resize_index(max(needed, 2 * index.get_max_elements()))
                keys = np.fromiter(fresh.keys(), dtype=np.int64, count=len(fresh))
                index.add_items(np.stack(list(fresh.values())).astype(np.float32), keys)
                self._live.update(int(k) for k in keys)
            self.seq = max(self.seq, seq)
            self._exact = None
            self._dirty = True
            if len(self._deleted) > 1000 and len(self._deleted) > len(self._live) // 4:
                self._compact()

    def _build_graph(self) -> None:
        """Move the vectors kept flat into a new HNSW graph (one batch insert)."""
        keys = np.fromiter(self._flat, dtype=np.int64, count=len(self._flat))
        index = self._new_index(max(1024, 2 * len(keys)))
        if len(keys):
            index.add_items(self._matrix(keys), keys)
        self._index, self._flat, self._exact = index, {}, None

    def _compact(self) -> None:
        """Rebuild from the live vectors, dropping deleted slots."""
        assert self._index is not None  # only a graph keeps deleted slots
        keys = np.asarray(sorted(self._live), dtype=np.int64)
        index = self._new_index(max(1024, 2 * len(keys)))
        if len(keys):
            index.add_items(np.asarray(self._index.get_items(keys), dtype=np.float32), keys)
        self._index, self._deleted = index, set()

    def _matrix(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of ``keys``, one row each (as given, or as the graph holds them)."""
        if self._index is None:
            if not len(keys):
                return np.zeros((0, self.dimension), dtype=np.float32)
            return np.stack([self._flat[int(k)] for k in keys])
        return np.asarray(self._index.get_items(list(keys)), dtype=np.float32)

    def _vectors(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        matrix = self._matrix(keys)
        return matrix / (np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12)

    def search(
        self, query: np.ndarray, k: int, allowed: set[int] | None = None, *, exact: bool = False
    ) -> list[tuple[int, float]]:
        """Top ``k`` (key, cosine similarity); ``allowed`` restricts results to those keys."""
        with self._lock:
            size = len(self._live)
            if size == 0 or k <= 0:
                return []
            query = np.asarray(query, dtype=np.float32)
            query = query / (np.linalg.norm(query) + 1e-12)
            if allowed is not None:
                allowed = allowed & self._live
                if not allowed:
                    return []
                small = len(allowed) <= max(self.params.exact_below, 1000)
                if exact or small or self._index is None:
                    keys = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
                    return _top(keys, self._vectors(keys) @ query, k)
                return self._ann(query, min(k, len(allowed)), lambda key: key in allowed)
            if exact or size < self.params.exact_below or self._index is None:
                if self._exact is None:
                    keys = np.asarray(sorted(self._live), dtype=np.int64)
                    self._exact = (keys, self._vectors(keys))
                keys, matrix = self._exact
                return _top(keys, matrix @ query, k)
            return self._ann(query, min(k, size), None)

    def _ann(
        self, query: np.ndarray, k: int, keep: Callable[[int], bool] | None
    ) -> list[tuple[int, float]]:
        assert self._index is not None  # searched exactly while there is no graph
        # ef must be at least k for hnswlib to return k results.
        self._index.set_ef(max(self.params.expansion_search, k))
        labels, distances = self._index.knn_query(query, k=k, filter=keep)
        return [(int(key), 1.0 - float(d)) for key, d in zip(labels[0], distances[0])]


def _top(keys: np.ndarray, sims: np.ndarray, k: int) -> list[tuple[int, float]]:
    if len(keys) > k:
        part = np.argpartition(-sims, k - 1)[:k]
        keys, sims = keys[part], sims[part]
    order = np.lexsort((keys, -sims))
    return [(int(keys[i]), float(sims[i])) for i in order]
