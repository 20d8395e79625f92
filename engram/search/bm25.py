"""An in-memory BM25 index over analyzed terms, derived from the store and persisted as a file.

Why not SQLite FTS5's ``bm25()``: FTS5 evaluates its ranking function row by row for every
document matching any query term, which measured 20 ms per SciFact query at 10k chunks and
grows linearly (≈ 200 ms at 100k). Here postings are numpy arrays and a query scores each
term's postings in one vectorised step, so a 100k-chunk search costs a few milliseconds.

Scores are exact Okapi BM25 (Robertson & Zaragoza 2009), the formula FTS5 documents:
``idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |D| / avgdl))`` with
``idf(t) = max(ln((N - df + 0.5) / (df + 0.5)), 1e-6)``; N, df and avgdl count live chunks
only, so deletions change statistics immediately, exactly as a rebuilt index would.

Postings live in numpy arrays by term (engram.search.postings): a batch of new chunks is
counted and appended with a few whole-array operations; deletions are tombstones, compacted
away when they pile up.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .analyzer import get_analyzer
from .fuzzy import Vocabulary
from .persist import replace_atomically
from .postings import Postings

K1, B = 1.2, 0.75
_FORMAT = 1
LAST_CHAR = chr(0x10FFFF)  # sorts after every character: prefix + LAST_CHAR bounds its range
_COMPLETED = 64  # completions kept per remembered prefix (a suggestion asks for at most 50)
_COMPLETED_PREFIXES = 20_000  # prefixes remembered between two changes of the index
_HEAD = 3  # letters of a prefix looked up in a set before its range is searched


class BM25Index:
    """Postings per term over "slots"; each live chunk id occupies one slot."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.seq = 0
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._term_ids: dict[str, int] = {}
        self._terms: list[str] = []
        self._postings = Postings()
        self._chunk_ids = np.zeros(1024, dtype=np.int64)
        self._lengths = np.zeros(1024, dtype=np.float32)
        self._alive = np.zeros(1024, dtype=bool)
        self._slots = 0
        self._slot_of: dict[int, int] = {}
        self._live = 0
        self._total_length = 0.0
        self._dead = 0
        self._dirty = True
        self._norm: np.ndarray | None = None  # K1 * (1 - B + B * |D| / avgdl) per slot
        self._spelling: Vocabulary | None = None
        # term id → document frequency, exact while nothing is dead (capacity grows)
        self._df = np.zeros(1024, dtype=np.int64)
        self._sorted: list[str] = []  # the terms in code point order, for prefix lookups
        self._unsorted: list[str] = []  # terms added since _sorted was last brought up to date
        # Completions of prefixes whose range is long (a short prefix spans thousands of
        # terms, each range scan a sort of their frequencies): prefix → the best terms of its
        # range, emptied by any change.
        self._completed: dict[str, list[tuple[str, int]]] = {}
        self._heads: set[str] = set()  # the first _HEAD letters of every term (ever indexed)

    # -- updates ------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._reset()
            self.seq = 0

    def apply(self, adds: dict[int, str], removes: Sequence[int], seq: int) -> None:
        """Add chunks (id → space-separated terms), remove chunk ids; now up to ``seq``."""
        with self._lock:
            for chunk_id in removes:
                self._remove(chunk_id)
            fresh = [(c, terms) for c, terms in adds.items() if c not in self._slot_of]
            if fresh:
                self._add(fresh)
            self.seq = max(self.seq, seq)
            self._dirty = True
            if adds or removes:
                self._norm = None
                self._spelling = None
                self._completed = {}
            if self._dead > 1000 and self._dead > self._live // 4:
                self._compact()

    def _grow(self) -> None:
        size = len(self._chunk_ids) * 2
        for name in ("_chunk_ids", "_lengths", "_alive"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _add(self, chunks: list[tuple[int, str]]) -> None:
        """Give each new chunk (id, space-separated terms) a slot and its postings: the
        batch's (term, slot) pairs are counted with one numpy sort and handed to the
        postings as one run; Python touches each word once, to find its term id."""
        docs = [terms.split() for _, terms in chunks]
        n = len(docs)
        while self._slots + n > len(self._chunk_ids):
            self._grow()
        first, end = self._slots, self._slots + n
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n)
        ids = [c for c, _ in chunks]
        self._chunk_ids[first:end] = ids
        self._lengths[first:end] = lengths
        self._alive[first:end] = True
        self._slot_of.update(zip(ids, range(first, end)))
        self._slots, self._live = end, self._live + n
        self._total_length += float(lengths.sum())
        words = list(itertools.chain.from_iterable(docs))
        if not words:
            return
        term_ids = self._term_ids
        try:
            found = np.fromiter(map(term_ids.__getitem__, words), np.int64, len(words))
        except KeyError:  # new terms get the next ids, in order of first appearance
            for term in dict.fromkeys(words):
                if term not in term_ids:
                    self._new_term(term)
            found = np.fromiter(map(term_ids.__getitem__, words), np.int64, len(words))
        # One key per (term, slot) occurrence; unique keys sort by term, then slot.
        keys = found * end + np.repeat(np.arange(first, end, dtype=np.int64), lengths)
        pairs, counts = np.unique(keys, return_counts=True)
        tids, slots = np.divmod(pairs, end)
        self._postings.add(tids, slots.astype(np.int32), counts.astype(np.float32))
        starts = np.flatnonzero(np.concatenate(([True], tids[1:] != tids[:-1])))
        self._df[tids[starts]] += np.diff(np.append(starts, len(tids)))

    def _new_term(self, term: str) -> int:
        tid = self._term_ids[term] = len(self._terms)
        self._terms.append(term)
        self._unsorted.append(term)
        if tid == len(self._df):
            self._df = np.concatenate([self._df, np.zeros(tid, dtype=np.int64)])
        return tid

    def _remove(self, chunk_id: int) -> None:
        slot = self._slot_of.pop(chunk_id, None)
        if slot is None:
            return
        self._alive[slot] = False
        self._live -= 1
        self._total_length -= float(self._lengths[slot])
        self._dead += 1

    def _merged(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        return self._postings.get(tid)

    def _compact(self) -> None:
        """Drop tombstoned slots: renumber live slots densely and filter every posting list."""
        self._norm = None
        live = np.flatnonzero(self._alive[: self._slots])
        remap = np.full(self._slots, -1, dtype=np.int64)
        remap[live] = np.arange(len(live))
        counts = self._postings.keep(self._alive, remap)
        self._df[:] = 0
        self._df[: len(counts)] = counts
        size = max(1024, len(live) * 2)
        ids, lengths = self._chunk_ids[live], self._lengths[live]
        self._chunk_ids = np.zeros(size, dtype=np.int64)
        self._lengths = np.zeros(size, dtype=np.float32)
        self._alive = np.zeros(size, dtype=bool)
        self._chunk_ids[: len(live)], self._lengths[: len(live)] = ids, lengths
        self._alive[: len(live)] = True
        self._slots, self._dead = len(live), 0
        self._slot_of = {int(c): i for i, c in enumerate(ids)}

    # -- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._live

    def doc_freq(self, term: str) -> int:
        with self._lock:
            tid = self._term_ids.get(term)
            if tid is None:
                return 0
            slots, _ = self._merged(tid)
            return int(self._alive[slots].sum()) if self._dead else len(slots)

    def spelling_candidates(self, terms: Sequence[str]) -> dict[str, list[str]]:
        """Indexed terms of a length within reach of each term's (see fuzzy.closest)."""
        with self._lock:
            if self._spelling is None:
                self._spelling = Vocabulary(self.vocabulary())
            return {t: self._spelling.candidates(t) for t in terms}

    def completions(
        self, prefixes: Sequence[str], limit: int, exact: Sequence[str] = ()
    ) -> list[tuple[str, int]]:
        """The ``limit`` most frequent live terms starting with each prefix, all together
        with the live terms of ``exact``: (term, document frequency), most frequent first,
        ties in term order. A bisection of the sorted vocabulary per prefix, then the
        frequencies of the terms in its range."""
        with self._lock:
            terms = self._sorted_terms()
            heads = self._heads
            found = {t: df for t in exact if t in self._term_ids and (df := self._live_df(t))}
            for prefix in prefixes:
                if len(prefix) >= _HEAD and prefix[:_HEAD] not in heads:
                    continue  # no term starts so (most one-edit variants of a typo)
                best = self._completed.get(prefix)
                if best is None or (len(best) < limit and len(best) == _COMPLETED):
                    low = bisect_left(terms, prefix)
                    high = bisect_left(terms, prefix + LAST_CHAR, low)
                    if high - low <= limit:  # all of them (sorted below)
                        found.update((t, df) for t in terms[low:high] if (df := self._live_df(t)))
                        continue
                    ranged = [(-self._live_df(t), t) for t in terms[low:high]]
                    best = [
                        (t, -n) for n, t in heapq.nsmallest(max(limit, _COMPLETED), ranged) if n
                    ]
                    if high - low > _COMPLETED and len(self._completed) < _COMPLETED_PREFIXES:
                        self._completed[prefix] = best
                found.update(best[:limit])
            return sorted(found.items(), key=lambda item: (-item[1], item[0]))

    def _sorted_terms(self) -> list[str]:
        if self._unsorted:  # a few new terms are inserted in place, many sorted in
            if len(self._unsorted) > 64:
                self._sorted = sorted(self._sorted + self._unsorted)
            else:
                for term in self._unsorted:
                    self._sorted.insert(bisect_left(self._sorted, term), term)
            self._heads.update(t[:_HEAD] for t in self._unsorted)
            self._unsorted = []
        return self._sorted

    def _live_df(self, term: str) -> int:
        return self.doc_freq(term) if self._dead else int(self._df[self._term_ids[term]])

    def sample(self, term: str, n: int) -> list[int]:
        """Up to ``n`` ids of live chunks holding ``term`` (the first indexed)."""
        with self._lock:
            tid = self._term_ids.get(term)
            if tid is None:
                return []
            slots, _ = self._merged(tid)
            if self._dead:
                slots = slots[self._alive[slots]]
            return [int(self._chunk_ids[s]) for s in slots[:n]]

    def vocabulary(self) -> list[str]:
        with self._lock:
            return (
                [t for t in self._terms if self.doc_freq(t) > 0]
                if self._dead
                else list(self._terms)
            )

    def search(
        self, terms: Iterable[str], k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25 score) for OR-ed ``terms``, restricted to ``allowed``.
        A term given n times counts n times (query-term frequency, as in Lucene and bm25s):
        a long query's repeated words weigh more, a short query is unchanged."""
        with self._lock:
            if self._live == 0 or k <= 0:
                return []
            n, avgdl = self._live, self._total_length / self._live
            scores = np.zeros(self._slots, dtype=np.float32)
            alive = self._alive[: self._slots]
            if self._norm is None:  # the length normalisation, until the next change
                self._norm = K1 * (1 - B + B * self._lengths[: self._slots] / avgdl)
            norm = self._norm
            touched = False
            for term, qtf in Counter(terms).items():
                tid = self._term_ids.get(term)
                if tid is None:
                    continue
                slots, tfs = self._merged(tid)
                if self._dead:
                    keep = alive[slots]
                    slots, tfs = slots[keep], tfs[keep]
                df = len(slots)
                if df == 0:
                    continue
                idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6) * qtf
                scores[slots] += idf * tfs * (K1 + 1) / (tfs + norm[slots])
                touched = True
            if not touched:
                return []
            if allowed is not None:
                mask = np.zeros(self._slots, dtype=bool)
                idx = [self._slot_of[c] for c in allowed if c in self._slot_of]
                mask[idx] = True
                scores[~mask] = 0
            candidates = np.flatnonzero(scores > 0)
            if len(candidates) > k:  # every one scoring at least the k-th best: ties at the cut
                found = scores[candidates]  # go by chunk id below, as on PostgreSQL
                kth = found[np.argpartition(-found, k - 1)[k - 1]]
                candidates = candidates[found >= kth]
            # Best first; ties by chunk id so rankings are deterministic.
            found, ids = scores[candidates], self._chunk_ids[candidates]
            order = np.lexsort((ids, -found))[:k]
            return list(zip(ids[order].tolist(), found[order].tolist()))

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path | None = None) -> None:
        """Write a compact snapshot to ``path`` (default: its own) atomically (a temporary
        file + rename). A snapshot to its own path is written only when it changed since."""
        own = path is None
        path = path or self.path
        if path is None:
            return
        with self._lock:
            if own and not self._dirty:
                return
            if self._dead:
                self._compact()
            offsets, postings, tfs = self._postings.arrays(len(self._terms))
            meta = {"format": _FORMAT, "seq": self.seq, "terms": self._terms}
            arrays: dict[str, np.ndarray] = {
                "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                "chunk_ids": self._chunk_ids[: self._slots],
                "lengths": self._lengths[: self._slots],
                "offsets": offsets,
                "postings": postings,
                "tfs": tfs,
            }

            def write(tmp: Path) -> None:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds

            replace_atomically(path, write)
            self._dirty = False

    def load(self, path: Path | None = None) -> bool:
        """Load the snapshot at ``path`` (default: its own) if it is readable; returns
        whether it did. A missing, truncated or damaged file is left for the owner to
        rebuild from the store."""
        path = path or self.path
        if path is None or not path.exists():
            return False
        try:
            # Our own handle: np.load leaks its own when the file is not a readable archive.
            with open(path, "rb") as fh, np.load(fh) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("format") != _FORMAT:
                    return False
                chunk_ids, lengths = data["chunk_ids"], data["lengths"]
                offsets, postings, tfs = data["offsets"], data["postings"], data["tfs"]
                terms, seq = list(meta["terms"]), int(meta["seq"])
            if not (len(offsets) == len(terms) + 1 and len(lengths) == len(chunk_ids)):
                return False
            if offsets[-1] != len(postings) or len(postings) != len(tfs):
                return False
        except Exception:  # BadZipFile, EOFError, ValueError...: whatever the parser says
            return False
        with self._lock:
            self._reset()
            self._terms = terms
            self._term_ids = {t: i for i, t in enumerate(self._terms)}
            self._df = np.zeros(max(1024, 2 * len(terms)), dtype=np.int64)
            self._df[: len(terms)] = np.diff(offsets)
            self._unsorted = list(terms)
            self._postings = Postings(
                offsets.astype(np.int64), postings.astype(np.int32), tfs.astype(np.float32)
            )
            n = len(chunk_ids)
            size = max(1024, n * 2)
            self._chunk_ids = np.zeros(size, dtype=np.int64)
            self._lengths = np.zeros(size, dtype=np.float32)
            self._alive = np.zeros(size, dtype=bool)
            self._chunk_ids[:n], self._lengths[:n], self._alive[:n] = chunk_ids, lengths, True
            self._slots = self._live = n
            self._slot_of = {int(c): i for i, c in enumerate(chunk_ids)}
            self._total_length = float(lengths.sum())
            self.seq = seq
            self._dirty = False
        return True


def rank_texts(
    texts: Iterable[tuple[str, str]], terms: Sequence[str], *, language: str, k: int
) -> list[tuple[str, float]]:
    """BM25 over a small set of (id, text) analysed on the fly — e.g. one user's memories —
    through a throwaway in-memory index: the ``k`` best (id, score). Order of ``texts``
    breaks score ties, so callers pass them in insertion order."""
    analyzer = get_analyzer(language)
    ids: list[str] = []
    docs: dict[int, str] = {}
    for text_id, text in texts:
        analyzed = analyzer.terms(text)
        if analyzed:  # a text without terms can never match (and would skew avgdl)
            docs[len(ids)] = " ".join(analyzed)
            ids.append(text_id)
    if not docs:
        return []
    index = BM25Index()  # in memory, for this query only
    index.apply(docs, [], 0)
    return [(ids[slot], score) for slot, score in index.search(terms, k)]
