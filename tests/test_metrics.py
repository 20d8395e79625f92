"""Metrics: hand-computed cases, edge cases, and agreement with pytrec_eval (trec_eval)."""

from __future__ import annotations

import math
import random

import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.errors import InvalidInput
from engram.eval import (
    Run,
    evaluate,
    evaluate_per_query,
    latency_percentiles,
    ndcg_at_k,
    precision_at_k,
    rank,
    recall_at_k,
    reciprocal_rank_at_k,
)

# d1 is highly relevant (2), d2 relevant (1), d3 judged non-relevant (0), x unjudged.
JUDGED = {"d1": 2, "d2": 1, "d3": 0}
RANKING = ["d3", "d1", "x", "d2"]


def test_ndcg_hand_computed() -> None:
    # DCG@3  = 0/log2(2) + 2/log2(3) + 0/log2(4)              = 2/log2(3)
    # IDCG@3 = 2/log2(2) + 1/log2(3)                          = 2 + 1/log2(3)
    assert ndcg_at_k(RANKING, JUDGED, 3) == pytest.approx(
        (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    )
    # DCG@4 adds d2 at rank 4: 1/log2(5); the ideal has only two relevant docs, so IDCG@4 = IDCG@3
    expected = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(RANKING, JUDGED, 4) == pytest.approx(expected)
    # DCG@1 = 0 (d3 is non-relevant)
    assert ndcg_at_k(RANKING, JUDGED, 1) == 0.0
    # the ideal order scores 1
    assert ndcg_at_k(["d1", "d2"], JUDGED, 10) == pytest.approx(1.0)


def test_ndcg_ideal_is_cut_at_k() -> None:
    # three relevant docs but k = 1: IDCG@1 = 3/log2(2) = 3 (the best one only), DCG@1 = 1
    assert ndcg_at_k(["b"], {"a": 3, "b": 1, "c": 1}, 1) == pytest.approx(1 / 3)


def test_ndcg_uses_graded_gain_not_exponential() -> None:
    # gain = rel (trec_eval), not 2^rel - 1: DCG@2 = 1/1 + 3/log2(3); IDCG@2 = 3/1 + 1/log2(3)
    got = ndcg_at_k(["low", "high"], {"high": 3, "low": 1}, 2)
    assert got == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_recall_precision_rr_hand_computed() -> None:
    assert recall_at_k(RANKING, JUDGED, 2) == 0.5  # d1 of {d1, d2}
    assert recall_at_k(RANKING, JUDGED, 4) == 1.0
    assert precision_at_k(RANKING, JUDGED, 2) == 0.5  # 1 hit / 2
    assert precision_at_k(RANKING, JUDGED, 5) == 0.4  # 2 hits / 5, though only 4 retrieved
    assert reciprocal_rank_at_k(RANKING, JUDGED, 1) == 0.0  # d3 is not relevant
    assert reciprocal_rank_at_k(RANKING, JUDGED, 10) == 0.5  # first relevant at rank 2


def test_non_positive_relevance_is_not_relevant() -> None:
    judged = {"neg": -1, "zero": 0, "rel": 1}
    ranking = ["neg", "zero", "rel"]
    # only "rel" counts, at rank 3: DCG = 1/log2(4) = 0.5, IDCG = 1; a negative gain subtracts nothing
    assert ndcg_at_k(ranking, judged, 3) == pytest.approx(0.5)
    assert recall_at_k(ranking, judged, 3) == 1.0
    assert precision_at_k(ranking, judged, 3) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(ranking, judged, 3) == pytest.approx(1 / 3)


def test_no_relevant_retrieved_and_no_relevant_at_all() -> None:
    for fn in (ndcg_at_k, recall_at_k, precision_at_k, reciprocal_rank_at_k):
        assert fn(["x", "y"], {"a": 1}, 10) == 0.0
        assert fn([], {"a": 1}, 10) == 0.0
        assert fn(["a"], {"a": 0}, 10) == 0.0  # judged, but nothing is relevant


def test_rank_breaks_ties_by_doc_id_descending() -> None:
    assert rank({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]
    # plain string order: "d9" > "d10" > "D1"
    assert rank({"d10": 0.5, "d9": 0.5, "D1": 0.5}) == ["d9", "d10", "D1"]
    assert rank(["z", "a"]) == ["z", "a"]  # a list is already ranked


def test_rank_compares_scores_as_float32_like_trec_eval() -> None:
    # 1 + 1e-9 and 1.0 are the same float32, so the tie goes to the larger doc id
    assert rank({"a": 1.0 + 1e-9, "b": 1.0}) == ["b", "a"]
    assert rank({"a": 1.0 + 1e-6, "b": 1.0}) == ["a", "b"]
    assert rank({"a": 1e300, "b": 1e301, "c": 0.0}) == ["b", "a", "c"]  # both inf in float32


def test_rank_rejects_bad_ranked_lists() -> None:
    with pytest.raises(InvalidInput, match="repeats"):
        rank(["a", "b", "a"])
    with pytest.raises(InvalidInput, match="string"):
        rank("abc")


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_cutoff(k: object) -> None:
    with pytest.raises(InvalidInput, match="cutoff"):
        ndcg_at_k(["a"], {"a": 1}, k)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="cutoff"):
        evaluate({}, {"q": {"a": 1}}, ks=[k])  # type: ignore[list-item]


def test_evaluate_keys_and_means() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run: Run = {
        "q1": {"a": 0.9, "z": 0.1},  # a at rank 1: everything perfect, P@5 = 1/5
        "q2": ["x", "b"],  # b at rank 2 of two relevant: RR = 1/2, recall = 1/2, P@5 = 1/5
        "q9": {"a": 1.0},  # not in qrels: ignored
    }
    got = evaluate(run, qrels, ks=[5, 10])
    assert set(got) == {f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "p") for k in (5, 10)}
    assert got["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert got["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert got["p@5"] == pytest.approx((0.2 + 0.2) / 2)
    # q2: DCG = 1/log2(3); IDCG = 1 + 1/log2(3)
    assert got["ndcg@10"] == pytest.approx((1 + (1 / math.log2(3)) / (1 + 1 / math.log2(3))) / 2)


def test_evaluate_default_keys() -> None:
    got = evaluate({"q": ["a"]}, {"q": {"a": 1}})
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "p@5"} <= set(got)


def test_missing_query_counts_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    got = evaluate({"q1": ["a"]}, qrels, ks=[10])
    assert got["ndcg@10"] == 0.5  # (1 + 0) / 2, as trec_eval -c
    assert evaluate_per_query({"q1": ["a"]}, qrels, ks=[10])["q2"]["recall@10"] == 0.0


def test_empty_run_scores_zero() -> None:
    got = evaluate({}, {"q1": {"a": 1}, "q2": {"b": 2}})
    assert got and all(value == 0.0 for value in got.values())


def test_empty_qrels_or_ks_rejected() -> None:
    with pytest.raises(InvalidInput, match="empty qrels"):
        evaluate({"q": ["a"]}, {})
    with pytest.raises(InvalidInput, match="at least one cutoff"):
        evaluate({"q": ["a"]}, {"q": {"a": 1}}, ks=[])


def test_latency_percentiles() -> None:
    # numpy's linear interpolation on 1..100: rank (n-1)p = 99p between sorted values
    got = latency_percentiles([float(v) for v in range(100, 0, -1)])
    assert got == pytest.approx({"p50": 50.5, "p95": 95.05, "p99": 99.01})
    assert latency_percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    with pytest.raises(InvalidInput):
        latency_percentiles([])


# --- agreement with pytrec_eval -------------------------------------------------------------

TREC_MEASURES = {"ndcg_cut.10", "recall.10", "recall.100", "P.5"}
OURS_TO_TREC = {
    "ndcg@10": "ndcg_cut_10",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "p@5": "P_5",
}


def assert_agrees_with_trec_eval(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]
) -> None:
    # a fresh evaluator per evaluate() call: reusing one gives wrong results
    # (cvangysel/pytrec_eval#22)
    trec = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)
    # trec_eval's recip_rank has no cutoff: give it the run already cut at 10
    top10 = {qid: {d: docs[d] for d in rank(docs)[:10]} for qid, docs in run.items()}
    trec_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    ours = evaluate_per_query(run, qrels, ks=(5, 10, 100))
    for qid, scores in ours.items():
        if qid not in run:
            assert all(value == 0.0 for value in scores.values())
            continue
        for key, measure in OURS_TO_TREC.items():
            assert scores[key] == pytest.approx(trec[qid][measure], abs=1e-9), (qid, key)
        assert scores["mrr@10"] == pytest.approx(trec_rr[qid]["recip_rank"], abs=1e-9), qid
    # the mean over qrels, with unanswered queries as 0 (trec_eval -c)
    means = evaluate(run, qrels, ks=(5, 10, 100))
    for key, measure in OURS_TO_TREC.items():
        expected = sum(trec[q][measure] for q in trec) / len(qrels)
        assert means[key] == pytest.approx(expected, abs=1e-9), key
    expected_rr = sum(trec_rr[q]["recip_rank"] for q in trec_rr) / len(qrels)
    assert means["mrr@10"] == pytest.approx(expected_rr, abs=1e-9)


# few distinct doc ids and scores so that ties and "d10" vs "d9" orderings happen often
DOC_IDS = st.sampled_from([f"d{i}" for i in range(25)] + ["D3", "é", "a-b", "10"])
# the whole float range: trec_eval compares scores as float32, so 1e-50 ties 0.0 and 1e39 ties 1e40
SCORES = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]), st.floats(allow_nan=False))
QIDS = st.sampled_from(["q1", "q2", "q3", "q4"])


@settings(max_examples=300, deadline=None)
@given(
    qrels=st.dictionaries(
        QIDS,
        # not below -1: trec_eval reserves -2 and pytrec_eval then reads out of bounds (segfaults)
        st.dictionaries(DOC_IDS, st.integers(min_value=-1, max_value=3), min_size=1, max_size=12),
        min_size=1,
    ),
    run=st.dictionaries(QIDS, st.dictionaries(DOC_IDS, SCORES, max_size=29)),
)
def test_agrees_with_pytrec_eval_property(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> None:
    assert_agrees_with_trec_eval(run, qrels)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_pytrec_eval_at_scale(seed: int) -> None:
    rng = random.Random(seed)
    pool = [f"doc{i}" for i in range(400)]
    qrels = {
        f"q{q}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(pool, rng.randint(1, 30))}
        for q in range(60)
    }
    run = {
        # rounded scores give ties; ~10% of queries unanswered
        qid: {d: round(rng.random(), 2) for d in rng.sample(pool, rng.randint(0, 150))}
        for qid in qrels
        if rng.random() > 0.1
    }
    run["extra"] = {"doc1": 1.0}  # a run query without qrels is ignored by both
    assert_agrees_with_trec_eval(run, qrels)
