"""BM25 over PostgreSQL postings, scored in the client: the database reads, numpy adds.

The SQL form of the keyword leg (``PostgresStore.keyword_search`` with a filter) scores every
posting in the executor and groups them in a hash aggregate, about 0.5–1.5 µs per posting;
a query with common terms reads 30–160k postings at 100k chunks. Here the database does only
what it is fast at: index range scans over ``postings`` (index-only once vacuumed),
concatenating the ``packed`` column (a stored generated column of fixed-size records: chunk
id int8, tf int4, chunk length int4, big-endian) into one ``bytea`` per term and block of
chunk ids. numpy then computes the same Okapi BM25 as :mod:`engram.search.bm25` (k1 = 1.2,
b = 0.75, ``idf = max(ln((N - df + 0.5) / (df + 0.5)), 1e-6)``, N and avgdl over live
chunks) in float64, and picks the top k with ties broken by chunk id. One statement, one
round trip.

Frequent terms' blocks are kept decoded in memory (:class:`PostingsCache`) and sent by the
database only when they changed: each (term, block) has a row in ``posting_blocks`` that every
write touching the block rewrites, so its ``xmin`` names the block's content (migration 0003).
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import psycopg

from ...search.bm25 import K1, B

BLOCK_SHIFT = 16  # a posting block holds the postings of 65,536 consecutive chunk ids
BlockCounts = Counter[tuple[str, int]]  # (term, block) -> change of its number of postings

_RECORD = np.dtype([("chunk", ">i8"), ("tf", ">i4"), ("length", ">i4")])

# The collection id is an integer literal (not a parameter) so each block's subquery is a
# plain range scan of the postings primary key (collection_id, term, chunk_id). A block the
# client holds at the posting_blocks row's current version is not sent again.
_QUERY = (
    "SELECT v.term, v.df, c.chunk_count, c.total_length, b.block, b.xmin::text AS version,"
    " CASE WHEN k.version IS DISTINCT FROM b.xmin::text THEN"
    " (SELECT string_agg(p.packed, ''::bytea) FROM postings p"
    "  WHERE p.collection_id = {cid} AND p.term = v.term"
    "  AND p.chunk_id >= b.block << {shift} AND p.chunk_id < (b.block + 1) << {shift})"
    " END AS postings"
    " FROM collections c JOIN vocabulary v ON v.collection_id = c.id"
    " JOIN posting_blocks b ON b.collection_id = {cid} AND b.term = v.term"
    " LEFT JOIN unnest(%s::text[], %s::bigint[], %s::text[]) AS k(term, block, version)"
    " ON k.term = v.term AND k.block = b.block"
    " WHERE c.id = {cid} AND c.total_length > 0 AND v.term = ANY(%s)"
)


class Postings(NamedTuple):
    """Postings decoded: chunk ids, term frequencies, chunk lengths."""

    chunk: np.ndarray  # int64
    tf: np.ndarray  # float64
    length: np.ndarray  # float64

    @classmethod
    def decode(cls, packed: bytes) -> Postings:
        block = np.frombuffer(packed, dtype=_RECORD)
        return cls(
            block["chunk"].astype(np.int64),
            block["tf"].astype(np.float64),
            block["length"].astype(np.float64),
        )

    @property
    def nbytes(self) -> int:
        return self.chunk.nbytes + self.tf.nbytes + self.length.nbytes


_Key = tuple[int, str, int]  # collection id, term, block


class PostingsCache:
    """Decoded posting blocks of frequent terms, each valid for one version of its
    ``posting_blocks`` row, least recently used evicted past ``max_bytes``.

    Every transaction that adds or removes a posting rewrites its block's row (even when the
    count nets to zero), so the row's ``xmin``, the id of the transaction that last wrote it,
    names the block's content: the query sends the postings of a held block only when the
    versions differ, in the same snapshot as everything else it reads. A hit is therefore
    exactly what the database holds; the cache saves reading, not correctness. Blocks of
    fewer than ``min_postings`` postings are cheap to read and not kept."""

    def __init__(self, max_bytes: int, min_postings: int = 512) -> None:
        self.max_bytes = max_bytes
        self.min_postings = min_postings
        self._entries: OrderedDict[_Key, tuple[str, Postings]] = OrderedDict()
        self._blocks: dict[tuple[int, str], set[int]] = {}  # held blocks of each term
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def lookup(
        self, collection_id: int, terms: Sequence[str]
    ) -> dict[tuple[str, int], tuple[str, Postings]]:
        """The held (version, postings) of every cached block of ``terms``."""
        found = {}
        with self._lock:
            for term in set(terms):
                for block in self._blocks.get((collection_id, term), ()):
                    key = (collection_id, term, block)
                    found[(term, block)] = self._entries[key]
                    self._entries.move_to_end(key)
        return found

    def put(
        self, collection_id: int, term: str, block: int, version: str, postings: Postings
    ) -> None:
        key = (collection_id, term, block)
        with self._lock:
            self._drop(key)
            if len(postings.chunk) < self.min_postings or postings.nbytes > self.max_bytes:
                return
            self._entries[key] = (version, postings)
            self._blocks.setdefault(key[:2], set()).add(block)
            self._bytes += postings.nbytes
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: _Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1].nbytes
            held = self._blocks[key[:2]]
            held.discard(key[2])
            if not held:
                del self._blocks[key[:2]]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes


def top_k(
    cur: psycopg.Cursor[Any],
    collection_id: int,
    terms: Sequence[str],
    k: int,
    cache: PostingsCache | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` best (chunk id, BM25 score) for OR-ed ``terms``, best first; a term given n
    times counts n times, as in :meth:`engram.search.bm25.BM25Index.search`."""
    counts = Counter(terms)
    terms = list(counts)
    held = cache.lookup(collection_id, terms) if cache is not None else {}
    cur.execute(
        _QUERY.format(cid=int(collection_id), shift=BLOCK_SHIFT),
        (
            [term for term, _ in held],
            [block for _, block in held],
            [version for version, _ in held.values()],
            terms,
        ),
        binary=True,
    )
    lists: list[Postings] = []
    weights: list[float] = []
    n = total = 0
    for row in cur.fetchall():
        term, block, version = row["term"], row["block"], row["version"]
        n, total, packed = row["chunk_count"], row["total_length"], row["postings"]
        hit = held.get((term, block))
        if packed is None and hit is not None and hit[0] == version:
            postings = hit[1]  # the database holds exactly this version
            if cache is not None:
                cache.hits += 1
        else:
            postings = Postings.decode(packed or b"")
            if cache is not None:
                cache.misses += 1
                cache.put(collection_id, term, block, version, postings)
        if len(postings.chunk):
            df = row["df"]
            lists.append(postings)
            weights.append(max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6) * counts[term])
    if not lists or n <= 0:
        return []
    chunk = np.concatenate([p.chunk for p in lists])
    tf = np.concatenate([p.tf for p in lists])
    length = np.concatenate([p.length for p in lists])
    idf = np.repeat(weights, [len(p.chunk) for p in lists])
    avgdl = total / n
    contrib = idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))
    return rank(chunk, contrib, k)


def rank(chunk: np.ndarray, contrib: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Sum each chunk's contributions; the ``k`` best (chunk id, score), ties by chunk id."""
    low = int(chunk.min())
    span = int(chunk.max()) - low + 1
    if span <= 8 * len(chunk) + 4096:  # ids close together (the usual case): sum in place
        dense = np.bincount(chunk - low, weights=contrib, minlength=span)
        slots = np.flatnonzero(dense)  # every posting adds > 0 (idf >= 1e-6, tf >= 1)
        ids, scores = slots + low, dense[slots]
    else:
        ids, slot = np.unique(chunk, return_inverse=True)
        scores = np.bincount(slot, weights=contrib, minlength=len(ids))
    if len(ids) > k:  # every chunk scoring at least the k-th best, so ties at the cut go by id
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        best = np.flatnonzero(scores >= kth)
    else:
        best = np.arange(len(ids))
    order = sorted(best.tolist(), key=lambda s: (-float(scores[s]), int(ids[s])))[:k]
    return [(int(ids[s]), float(scores[s])) for s in order]
