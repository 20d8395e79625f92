"""The onnxruntime session of an ONNX provider's model, created on first use.

Creating a session loads the weights (hundreds of milliseconds, tens of megabytes), so a
provider built only for its ``model_id``, dimension or tokenizer never pays for it, and
onnxruntime itself is imported only then (engram.providers._onnx): importing a provider
stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
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
