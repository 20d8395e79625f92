"""The onnxruntime session of an ONNX provider's model, created on first use.

Creating a session loads the weights (hundreds of milliseconds, tens of megabytes), so a
provider built only for its ``model_id``, dimension or tokenizer never pays for it, and
onnxruntime itself is imported only then (engram.providers._onnx): importing a provider
stays cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.providers import _onnx

if TYPE_CHECKING:
    import onnxruntime

Batch = tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]  # indices, inputs, output


@dataclass(frozen=True, slots=True)
class OnnxSession:
    """A loaded session, with the inputs its graph declares and the one output read."""

    session: onnxruntime.InferenceSession
    input_names: list[str]
    output_name: str

    def inputs(self, encodings: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
        """``tokenizers.Encoding`` objects as the graph's inputs, padded to the longest."""
        return _onnx.pad_batch(encodings, self.input_names, pad_id=pad_id)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        output: np.ndarray = self.session.run([self.output_name], inputs)[0]
        return output

    def batches(
        self, encodings: Sequence[Any], batch_size: int, *, pad_id: int, lock: threading.Lock
    ) -> Iterator[Batch]:
        """Runs over batches of similar length (longest first, for little padding), one at
        a time under ``lock``: each run already uses every core, so concurrent runs would
        only oversubscribe the CPU."""
        for idx in _onnx.length_batches([len(e.ids) for e in encodings], batch_size):
            inputs = self.inputs([encodings[i] for i in idx], pad_id)
            with lock:
                output = self.run(inputs)
            yield idx, inputs, output

    def parallel_batches(
        self, encodings: Sequence[Any], batch_size: int, *, pad_id: int, runs: RunPool
    ) -> Iterator[Batch]:
        """The same runs as :meth:`batches`, spread over the ``runs`` pool's threads (this
        session should then run on one thread: see :class:`RunPool`), in input order."""
        groups = list(_onnx.length_batches([len(e.ids) for e in encodings], batch_size))

        def run(idx: np.ndarray) -> Batch:
            inputs = self.inputs([encodings[i] for i in idx], pad_id)
            return idx, inputs, self.run(inputs)

        yield from runs.map(run, groups)


class RunPool:
    """Runs of a one-thread session on ``workers`` threads at once (default: one per core).

    On a small machine, one text per run and one run per core embeds more per second than
    one run at a time on every core: a run on two threads meets at a barrier after each of
    its graph nodes, where one thread waits for the other (and, with onnxruntime's spinning,
    burns CPU doing so, the most when other processes hold the cores). The runs come from
    any number of callers and share one queue, so one pool never runs more than ``workers``
    at once (a lone text goes through the pool too). The longest texts go first
    (:func:`~engram.providers._onnx.length_batches`), so the last runs of a call are the
    short ones and the threads finish together.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def map(
        self, fn: Callable[[np.ndarray], Batch], groups: Sequence[np.ndarray]
    ) -> Iterator[Batch]:
        """``fn`` of each group, run on the pool's threads, yielded in input order."""
        yield from self._executor().map(fn, groups)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            # A forked child inherits the pool but not its threads: it makes its own.
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="engram-onnx")
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Stop the threads (after the runs already queued); the next call starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=True)


class LazySession:
    """The session of ``model_path``, created by the first :meth:`get` (of any thread).

    ``output`` picks the output to read from the graph's output names, or raises
    ModelUnavailable when the graph is not the kind of model the provider runs. ``threads``,
    ``spin`` and ``cache`` are those of :func:`engram.providers._onnx.create_session`.
    """

    def __init__(
        self,
        model_path: Path,
        output: Callable[[list[str]], str],
        *,
        threads: int | None = None,
        spin: bool = True,
        cache: str = "",
    ) -> None:
        self._model_path = model_path
        self._output = output
        self._threads, self._spin, self._cache = threads, spin, cache
        self._lock = threading.Lock()
        self._session: OnnxSession | None = None

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def get(self) -> OnnxSession:
        with self._lock:
            if self._session is None:
                session = _onnx.create_session(
                    self._model_path, threads=self._threads, spin=self._spin, cache=self._cache
                )
                self._session = OnnxSession(
                    session,
                    [i.name for i in session.get_inputs()],
                    self._output([o.name for o in session.get_outputs()]),
                )
            return self._session

    def close(self) -> None:
        """Drop the session; the next :meth:`get` creates it again."""
        with self._lock:
            self._session = None
