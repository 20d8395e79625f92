"""The bundled local models end to end: bge-small embeddings and the cross-encoder reranker."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

import engram
from engram.providers.rerankers.base import Reranker

REPO = Path(__file__).resolve().parent.parent


class ReverseReranker(Reranker):
    """Deterministic stand-in: prefers shorter passages, so the order visibly changes."""

    model_id = "reverse"

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        return [-float(len(p)) for p in passages]


def test_rerank_reorders_the_head_and_explains(db: engram.Engram, corpus: Path) -> None:
    db.ingest(corpus)
    db._reranker = ReverseReranker()
    plain = db.search("cats dogs parrots qubits plants", k=5, mode="keyword")
    reranked = db.search(
        "cats dogs parrots qubits plants", k=5, mode="keyword", rerank=True, rerank_weight=1.0
    )
    assert {r.chunk_id for r in plain.results} == {r.chunk_id for r in reranked.results}
    scores = [r.explain["rerank"]["model_score"] for r in reranked.results]
    assert scores == sorted(scores, reverse=True)  # ordered by the reranker, not by BM25
    blended = [r.explain["rerank"]["score"] for r in reranked.results]
    assert [round(r.score, 6) for r in reranked.results] == blended
    assert [r.chunk_id for r in plain.results] != [r.chunk_id for r in reranked.results]
    assert "rerank" in reranked.timings_ms


@pytest.mark.slow
def test_bundled_models_answer_real_questions(tmp_path: Path) -> None:
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    with engram.open(tmp_path / "data") as db:
        report = db.ingest(tmp_path / "samples")
        assert report.failed == 0 and report.added == 8
        collection = db.collection()
        assert (collection.model_id, collection.dimension) == ("bge-small-en-v1.5", 384)
        # Paraphrase with no shared keyword: only the dense leg can find it.
        dense = db.search("time off for holidays", mode="vector", k=1)
        assert dense.results[0].document_key == "vacation.html"
        answer = db.search("how do I rotate an API key?", k=3, rerank=True)
        top = answer.results[0]
        assert top.document_key == "security.md" and "rotate" in top.text
        assert top.explain["rerank"] is not None and answer.timings_ms["rerank"] > 0
        assert "<mark>" in top.highlight


def test_highlight_is_one_line_around_the_matches() -> None:
    from engram.search.analyzer import get_analyzer
    from engram.search.highlight import highlight

    text = (
        "Intro paragraph.\n\n"
        + "filler words here " * 30
        + "\n\nRotating   keys\nmatters: rotate often."
    )
    snippet = highlight(text, {"rotat"}, get_analyzer("en"), width=80)
    assert "\n" not in snippet and "  " not in snippet
    assert (
        snippet.startswith("…")
        and "<mark>Rotating</mark>" in snippet
        and "<mark>rotate</mark>" in snippet
    )


def test_library_and_json_share_one_vocabulary(tmp_path: Path) -> None:
    """Every name in the JSON of a search (library to_dict, CLI --json, HTTP, client) reads
    the same value as an attribute of the library's objects (issue 16: data, document,
    span)."""
    import engram

    with engram.open(tmp_path, embedding_model="hash") as db:
        db.add(
            [{"id": "k", "text": "Rotate keys every 90 days.", "title": "Keys"}], collection="kb"
        )
        response = db.search("rotate keys", collection="kb")
    as_json = response.to_dict()
    for name in ("data", "count", "mode", "next_offset", "timings_ms", "expansions", "cached"):
        value = getattr(response, name)
        if name == "data":
            value = [r.to_dict() for r in value]
        assert value == as_json[name], name
    (hit,) = response.data
    for name, value in hit.to_dict().items():
        attribute = getattr(hit, name)
        assert (list(attribute) if isinstance(attribute, tuple) else attribute) == value, name
