"""The postings of a keyword index: for each term id, the slots (chunks) holding the term and
its frequency in each.

One main run in compressed-sparse-row form by term id (``offsets``, ``slots``, ``tfs``: the
arrays the index file holds), and the batches added since, each a small run sorted by (term
id, slot). A term's postings are its slice of the main run followed by its slices of the
batches, which is slot order since every batch's slots come after all earlier ones. Batches
are concatenated when they pile up, and merged into the main run once they hold a quarter as
many postings (so a posting is copied a bounded number of times on average). Adding, merging,
saving and loading are numpy work over whole arrays — never a Python loop per term or per
posting — and reading a term costs a slice and a few binary searches.
"""

from __future__ import annotations

import numpy as np

_MAX_RUNS = 8  # batches kept apart before they are concatenated into one
_MERGE_RATIO = 4  # batches are merged into the main run at a quarter of its size
_MIN_MERGE = 4096  # ...or at this many postings, whichever is larger

Run = tuple[np.ndarray, np.ndarray, np.ndarray]  # term ids (int64), slots (int32), tfs (float32)

_NO_SLOTS = np.zeros(0, dtype=np.int32)
_NO_TFS = np.zeros(0, dtype=np.float32)


class Postings:
    """Postings by term id; not thread-safe (its owner, BM25Index, holds a lock)."""

    def __init__(
        self,
        offsets: np.ndarray | None = None,
        slots: np.ndarray | None = None,
        tfs: np.ndarray | None = None,
    ) -> None:
        self.offsets = np.zeros(1, dtype=np.int64) if offsets is None else offsets
        self.slots = _NO_SLOTS if slots is None else slots
        self.tfs = _NO_TFS if tfs is None else tfs
        self._runs: list[Run] = []
        self._run_size = 0

    def add(self, tids: np.ndarray, slots: np.ndarray, tfs: np.ndarray) -> None:
        """A batch of postings sorted by (term id, slot), whose slots all come after every
        slot already held."""
        if not len(tids):
            return
        self._runs.append((tids, slots, tfs))
        self._run_size += len(tids)
        if self._run_size >= max(len(self.slots) // _MERGE_RATIO, _MIN_MERGE):
            self.merge()
        elif len(self._runs) > _MAX_RUNS:
            self._runs = [_concatenate(self._runs)]

    def get(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        """(slots, tfs) of term ``tid``, in slot order."""
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if tid + 1 < len(self.offsets):
            a, b = int(self.offsets[tid]), int(self.offsets[tid + 1])
            if b > a:
                parts.append((self.slots[a:b], self.tfs[a:b]))
        for tids, slots, tfs in self._runs:
            a, b = np.searchsorted(tids, (tid, tid + 1))
            if b > a:
                parts.append((slots[a:b], tfs[a:b]))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return _NO_SLOTS, _NO_TFS
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def merge(self) -> None:
        """Fold the batches into the main run."""
        if not self._runs:
            return
        tids, slots, tfs = _concatenate([(self._term_ids(), self.slots, self.tfs), *self._runs])
        terms = max(len(self.offsets) - 1, int(tids[-1]) + 1)
        self.offsets = _offsets(tids, terms)
        self.slots, self.tfs = slots, tfs
        self._runs, self._run_size = [], 0

    def keep(self, alive: np.ndarray, renumber: np.ndarray) -> np.ndarray:
        """Drop the postings of slots not ``alive`` and renumber the others' slots through
        ``renumber``; returns each term's count of postings left."""
        self.merge()
        kept = alive[self.slots]
        tids = self._term_ids()[kept]
        self.slots = renumber[self.slots[kept]].astype(np.int32)
        self.tfs = self.tfs[kept]
        self.offsets = _offsets(tids, len(self.offsets) - 1)
        return np.diff(self.offsets)

    def arrays(self, terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(offsets for ``terms`` terms, slots, tfs): everything as one run."""
        self.merge()
        offsets = self.offsets
        if len(offsets) < terms + 1:  # terms without postings at the end
            offsets = np.concatenate(
                [offsets, np.full(terms + 1 - len(offsets), offsets[-1], dtype=np.int64)]
            )
        return offsets, self.slots, self.tfs

    def _term_ids(self) -> np.ndarray:
        """The term id of each posting of the main run."""
        counts = np.diff(self.offsets)
        return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _concatenate(runs: list[Run]) -> Run:
    """Runs in slot order → one run sorted by (term id, slot): a stable sort by term id."""
    tids = np.concatenate([r[0] for r in runs])
    order = np.argsort(tids, kind="stable")
    return (
        tids[order],
        np.concatenate([r[1] for r in runs])[order],
        np.concatenate([r[2] for r in runs])[order],
    )


def _offsets(tids: np.ndarray, terms: int) -> np.ndarray:
    """Row offsets of postings sorted by term id."""
    counts = np.bincount(tids, minlength=terms) if len(tids) else np.zeros(terms, np.int64)
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts, dtype=np.int64)])
