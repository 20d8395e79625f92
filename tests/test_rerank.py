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
from engram.search.rerank import BLEND_K, blend
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


def reference(fused: list[int], model: list[float], w: float, k: int = BLEND_K) -> list[int]:
    """The blend written out: rank by model score (ties: fused order), then by
    w/(k + model rank) + (1-w)/(k + fused rank) (ties: fused order)."""
    model_rank = {}
    for r, (_, i) in enumerate(sorted(zip(model, range(len(fused))), key=lambda t: -t[0]), 1):
        model_rank[i] = r  # sorted() is stable: equal scores stay in fused order
    score = {i: w / (k + model_rank[i]) + (1 - w) / (k + i + 1) for i in range(len(fused))}
    return [fused[i] for i in sorted(range(len(fused)), key=lambda i: (-score[i], i))]


# -- the blend itself ----------------------------------------------------------------------
def test_blend_matches_the_formula_on_random_cases() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 30)
        ids = rng.sample(range(1000), n)
        model = [float(rng.randint(-5, 5)) for _ in range(n)]  # many ties on purpose
        w = rng.choice([0.0, 0.2, 0.5, 0.7, 1.0, rng.random()])
        got = blend(ids, model, w)
        assert [i for i, _ in got] == reference(ids, model, w)
        for chunk_id, r in got:
            p = ids.index(chunk_id)
            assert (r.fused_rank, r.model_score, r.weight) == (p + 1, model[p], w)
            assert r.score == pytest.approx(w / (5 + r.model_rank) + (1 - w) / (5 + p + 1))
        assert sorted(r.model_rank for _, r in got) == list(range(1, n + 1))
        scores = [r.score for _, r in got]
        assert scores == sorted(scores, reverse=True)


def test_weight_one_is_the_model_order_and_zero_the_fused_order() -> None:
    ids = [10, 11, 12, 13, 14]
    model = [0.1, 3.0, -2.0, 3.5, 0.2]
    assert [i for i, _ in blend(ids, model, 1.0)] == [13, 11, 14, 10, 12]
    assert [i for i, _ in blend(ids, model, 0.0)] == ids


def test_the_blend_keeps_a_fused_top_hit_the_model_alone_would_demote() -> None:
    ids = [1, 2, 3, 4]  # fused order
    model = [5.0, 1.0, 9.0, 0.0]  # the model prefers 3, then puts the fused top hit second
    assert [i for i, _ in blend(ids, model, 1.0)][0] == 3
    assert [i for i, _ in blend(ids, model, 0.5)] == [1, 3, 2, 4]
    # A strong enough model weight lets the model's favourite through.
    assert [i for i, _ in blend(ids, model, 0.9)][0] == 3


def test_blend_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match="2 candidates but 1"):
        blend([1, 2], [0.5], 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend([1], [0.5], 1.5)


# -- in the searcher, every mode, both backends ----------------------------------------------
@pytest.mark.parametrize("mode", ["hybrid", "keyword", "vector"])
def test_search_orders_the_head_by_the_blend(db: engram.Engram, mode: str) -> None:
    db.add(DOCS)
    rng = random.Random(mode)
    per_doc = {d["text"]: float(rng.randint(0, 20)) for d in DOCS}
    db._reranker = fake = ScriptedReranker(per_doc)
    plain = db.search("solar report", k=13, mode=mode)
    fused = [r.chunk_id for r in plain.results]
    model = [per_doc[r.text] for r in plain.results]
    assert len(fake.seen) == 0 and len(fused) >= 5
    for w in (0.5, 1.0, 0.3):
        got = db.search("solar report", k=13, mode=mode, rerank=True, rerank_weight=w)
        assert len(fake.seen) == len(fused)  # the whole head was rescored
        assert [r.chunk_id for r in got.results] == reference(fused, model, w)
        for r in got.results:
            m = r.explain["rerank"]
            assert m["fused_rank"] == fused.index(r.chunk_id) + 1
            assert m["model_score"] == per_doc[r.text] and m["weight"] == w
            assert r.score == pytest.approx(m["score"], abs=1e-6)
        assert "rerank" in got.timings_ms


def test_only_the_rerank_candidates_move(settings: Settings) -> None:
    with engram.open(settings=settings, rerank_candidates=4) as db:
        db.add(DOCS)
        plain = [r.chunk_id for r in db.search("solar report", k=13, mode="keyword").results]
        db._reranker = ScriptedReranker({d["text"]: float(i) for i, d in enumerate(DOCS)})
        got = db.search("solar report", k=13, mode="keyword", rerank=True)
        ids = [r.chunk_id for r in got.results]
        assert sorted(ids[:4]) == sorted(plain[:4]) and ids[4:] == plain[4:]
        assert all("rerank" not in r.explain for r in got.results[4:])


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
            "score": pytest.approx(1 / (BLEND_K + 1), abs=1e-6),
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
