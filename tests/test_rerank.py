"""Reranking blends the cross-encoder's ranking with the fused one (engram.search.rerank).

The cross-encoder is a deterministic stand-in here (the real one is exercised end to end in
tests/test_end_to_end.py): what is under test is how its scores change the order."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import InvalidInput
from engram.providers.rerankers.base import Reranker
from engram.search.rerank import blend
from engram.server import create_app

DOCS = [
    {"id": f"d{i}", "text": f"solar panel report {i}: " + " ".join(["solar"] * (i % 4 + 1))}
    for i in range(12)
] + [{"id": "other", "text": "wind turbines and solar farms on the coast"}]


class ScriptedReranker(Reranker):
    """Scores each passage by the first of ``scores``'s keys it contains (else 0); records
    the passages it was asked about."""

    model_id = "scripted"

    def __init__(self, scores: dict[str, float] | None = None) -> None:
        self.scores = scores or {}
        self.seen: list[str] = []

    def rerank(self, query: str, passages: Sequence[str]) -> list[float]:
        self.seen = list(passages)
        return [next((s for t, s in self.scores.items() if t in p), 0.0) for p in passages]


def reference(fused: list[float], model: list[float], w: float) -> tuple[list[int], list[float]]:
    """The blend written out: positions of the head (the first len(model) entries) best
    first by w * minmax(model) + (1 - w) * minmax(fused) over the head, ties in fused order;
    and every entry's score, the tail's with the model part at the head's minimum."""
    n = len(model)

    def norm(xs: list[float], x: float) -> float:
        lo, hi = min(xs), max(xs)
        return 1.0 + x - lo if hi - lo < 1e-12 else (x - lo) / (hi - lo)

    m_floor = 1.0 if max(model) - min(model) < 1e-12 else 0.0
    score = [
        w * (norm(model, model[p]) if p < n else m_floor) + (1 - w) * norm(fused[:n], fused[p])
        for p in range(len(fused))
    ]
    return sorted(range(n), key=lambda p: (-score[p], p)), score


# -- the blend itself ----------------------------------------------------------------------
def test_blend_matches_the_formula_on_random_cases() -> None:
    rng = random.Random(7)
    for _ in range(300):
        total = rng.randint(1, 40)
        n = rng.randint(1, total)
        fused = sorted((rng.choice([rng.random(), 0.5, 0.25]) for _ in range(total)), reverse=True)
        model = [float(rng.randint(-5, 5)) for _ in range(n)]  # many ties on purpose
        w = rng.choice([0.0, 0.2, 0.5, 0.7, 1.0, rng.random()])
        order, head, tail = blend(fused, model, w)
        want_order, want_scores = reference(fused, model, w)
        assert order == want_order
        assert [r.score for r in head] + tail == pytest.approx(want_scores)
        for p, r in enumerate(head):
            assert (r.fused_rank, r.model_score, r.weight) == (p + 1, model[p], w)
            assert r.model_rank == 1 + sum(
                m > model[p] or (m == model[p] and q < p) for q, m in enumerate(model)
            )
        # Scores decrease down the reranked list, the tail included.
        scores = [head[p].score for p in order] + tail
        assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:]))


def test_weight_one_is_the_model_order_and_zero_the_fused_order() -> None:
    fused = [0.9, 0.8, 0.7, 0.6, 0.5, 0.1]
    model = [0.1, 3.0, -2.0, 3.5, 0.2]
    assert blend(fused, model, 1.0)[0] == [3, 1, 4, 0, 2]
    assert blend(fused, model, 0.0)[0] == [0, 1, 2, 3, 4]


def test_the_blend_keeps_a_fused_top_hit_the_model_alone_would_demote() -> None:
    fused = [1.0, 0.5, 0.45, 0.4]  # a clear fused winner
    model = [4.0, 1.0, 5.0, 0.0]  # the model prefers the third, by a little
    assert blend(fused, model, 1.0)[0][0] == 2
    assert blend(fused, model, 0.5)[0] == [0, 2, 1, 3]
    # When the model is sure and the fusion is not, the model's favourite goes first.
    assert blend([1.0, 0.98, 0.97, 0.0], [0.0, 1.0, 9.0, -5.0], 0.5)[0][0] == 2


def test_blend_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match="2 model scores for 1 candidates"):
        blend([0.5], [0.5, 0.1], 0.5)
    with pytest.raises(ValueError, match="0 model scores"):
        blend([0.5], [], 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend([0.5], [0.5], 1.5)


# -- in the searcher, every mode, both backends ----------------------------------------------
@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_search_orders_the_head_by_the_blend(db: engram.Engram, mode: str) -> None:
    db.add(DOCS)
    rng = random.Random(mode)
    per_doc = {d["text"]: float(rng.randint(0, 20)) for d in DOCS}
    db._reranker = fake = ScriptedReranker(per_doc)
    plain = db.search("solar report", k=13, mode=mode)
    fused = [r.chunk_id for r in plain.results]
    fused_scores = [r.score for r in plain.results]
    model = [per_doc[r.text] for r in plain.results]
    assert len(fake.seen) == 0 and len(fused) >= 5
    for w in (0.5, 1.0, 0.3):
        got = db.search("solar report", k=13, mode=mode, rerank=True, rerank_weight=w)
        assert len(fake.seen) == len(fused)  # the whole head was rescored
        order, scores = reference(fused_scores, model, w)
        assert [r.chunk_id for r in got.results] == [fused[p] for p in order]
        for r in got.results:
            m = r.explain["rerank"]
            p = fused.index(r.chunk_id)
            assert m["fused_rank"] == p + 1
            assert m["model_score"] == per_doc[r.text] and m["weight"] == w
            assert r.score == pytest.approx(scores[p]) == pytest.approx(m["score"], abs=1e-6)
        assert "rerank" in got.timings_ms


def test_only_the_rerank_candidates_move(settings: Settings) -> None:
    with engram.open(settings=settings, rerank_candidates=4) as db:
        db.add(DOCS)
        plain = db.search("solar report", k=13, mode="keyword").results
        db._reranker = ScriptedReranker({d["text"]: float(i) for i, d in enumerate(DOCS)})
        got = db.search("solar report", k=13, mode="keyword", rerank=True).results
        ids, before = [r.chunk_id for r in got], [r.chunk_id for r in plain]
        assert sorted(ids[:4]) == sorted(before[:4]) and ids[4:] == before[4:]
        assert all("rerank" not in r.explain for r in got[4:])
        scores = [r.score for r in got]
        assert scores == sorted(scores, reverse=True)  # the tail is scored on the same scale


def test_the_weight_setting_and_its_per_query_override(settings: Settings) -> None:
    scores = {d["text"]: float(i) for i, d in enumerate(DOCS)}
    with engram.open(settings=settings, rerank_weight=1.0) as db:
        db.add(DOCS)
        db._reranker = ScriptedReranker(scores)
        model_only = db.search("solar report", k=13, mode="keyword", rerank=True)
        texts = [r.text for r in model_only.results]
        assert [scores[t] for t in texts] == sorted((scores[t] for t in texts), reverse=True)
        plain = db.search("solar report", k=13, mode="keyword")
        unchanged = db.search("solar report", k=13, mode="keyword", rerank=True, rerank_weight=0)
        assert [r.chunk_id for r in unchanged.results] == [r.chunk_id for r in plain.results]
        with pytest.raises(InvalidInput, match="rerank_weight must be between 0 and 1"):
            db.search("solar", rerank=True, rerank_weight=2.0)
    assert Settings.build(data_dir=settings.data_dir).rerank_weight == 0.5


def test_rerank_weight_from_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGRAM_RERANK_WEIGHT", "0.8")
    assert Settings.build(data_dir=settings.data_dir).rerank_weight == 0.8
    monkeypatch.setenv("ENGRAM_RERANK_WEIGHT", "1.5")
    with pytest.raises(Exception, match="rerank_weight"):
        Settings.build(data_dir=settings.data_dir)


# -- over HTTP and on the command line -------------------------------------------------------
def test_http_search_takes_rerank_weight_and_explains(settings: Settings) -> None:
    server = settings.model_copy(update={"auth": "none"})
    with TestClient(create_app(server)) as client:
        res = client.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
        assert res.status_code == 201, res.text
        client.app.state.db._reranker = ScriptedReranker({"report 3": 9.0})  # type: ignore[attr-defined]
        body = {"query": "solar report", "collection": "kb", "k": 5, "mode": "keyword"}
        res = client.post("/v1/search", json={**body, "rerank": True, "rerank_weight": 1.0})
        assert res.status_code == 200, res.text
        top = res.json()["data"][0]
        assert "report 3" in top["text"]
        assert top["explain"]["rerank"] == {
            "model_score": 9.0,
            "model_rank": 1,
            "fused_rank": top["explain"]["rerank"]["fused_rank"],
            "weight": 1.0,
            "score": pytest.approx(1.0),  # the model's best, alone
        }
        res = client.post("/v1/search", json={**body, "rerank": True, "rerank_weight": -0.1})
        assert res.status_code == 422 and "rerank_weight" in res.text


def test_cli_rerank_weight_is_checked(settings: Settings) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(settings.data_dir),
            "search",
            "solar",
            "--rerank",
            "--rerank-weight",
            "3",
        ],
    )
    assert result.exit_code != 0 and "--rerank-weight" in result.output
