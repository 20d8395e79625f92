"""Micro-batching of query embeddings across concurrent callers.

A server embeds each query in the thread that serves its request. Run one at a time, as
they arrive, N concurrent queries cost N model runs; :class:`MicroBatcher` instead lets the
queries that arrived while a run was under way go together in the next run, which costs less
per query (one batch of 4 short queries ≈ 0.8 × the CPU of 4 single runs, measured on
bge-small) and keeps at most one run per embedder on the CPU. Nothing waits on a timer: a
lone query runs at once, so an idle server answers as fast as without batching.

The catch: bge-small ships int8 with *dynamic* quantization, whose scale is computed over
the whole input tensor, so a query's vector depends slightly on the other queries of its
batch (cosine ≥ 0.988 to its vector alone, on SciFact's queries). Hence off by default
(``ENGRAM_QUERY_BATCH=1``: every query runs alone, one run at a time).

Leader/follower: the caller that finds the batcher idle runs a batch (its own query and any
queued behind it), hands its followers their vectors, then makes the oldest waiting caller
the next leader. Every caller's query is in the first batch run after it arrives.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np


class _Slot:
    __slots__ = ("text", "vector", "error", "lead", "ready")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.ready = threading.Event()


class MicroBatcher:
    """Runs ``embed(texts) -> (len(texts), dim) array`` over the queries of concurrent
    callers, at most ``max_batch`` per run and one run at a time."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be ≥ 1")
        self._embed = embed
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Slot] = deque()
        self._busy = False
        self.runs = 0  # model runs so far (tests and benchmarks read it)

    def embed(self, text: str) -> np.ndarray:
        """The vector of ``text``, computed alone or with other callers' queries."""
        slot = _Slot(text)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.ready.wait()
            if not slot.lead:
                return _result(slot)
        # The leader is always at the head of the queue, so its query is in this batch.
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        try:
            vectors = self._embed([s.text for s in batch])
            for s, vector in zip(batch, vectors, strict=True):
                s.vector = vector
        except BaseException as exc:
            for s in batch:
                s.error = exc
        finally:
            self.runs += 1
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is not None:
                    successor.lead = True
                else:
                    self._busy = False
            for s in batch:
                if s is not slot:
                    s.ready.set()
            if successor is not None:
                successor.ready.set()
        return _result(slot)


def _result(slot: _Slot) -> np.ndarray:
    if slot.error is not None:
        raise slot.error
    assert slot.vector is not None
    return slot.vector
