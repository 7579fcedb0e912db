"""Metrics on hand-built rankings, checked against values worked out by hand below.

NDCG uses linear gains (the grade itself) and log2(rank + 1) discounts, as trec_eval and BEIR do;
MRR@10 counts grade >= 1 as relevant; recall divides by every relevant document in the qrels.
"""

from __future__ import annotations

import math

import pytest

from rag_rerank.errors import InvalidInputError, InvalidInputTypeError
from rag_rerank.evaluation import (
    LatencySummary,
    RankingMetrics,
    compute_metrics,
    per_query_metrics,
)

TEN = [f"d{i}" for i in range(1, 11)]


def metrics_of(judged: dict[str, int], ranking: list[str], n: int = 5, k: int = 10):
    return per_query_metrics({"q": judged}, {"q": ranking}, n=n, k=k)["q"]


def assert_metrics(got: RankingMetrics, ndcg: float, mrr: float, r_n: float, r_k: float) -> None:
    assert got.ndcg_at_10 == pytest.approx(ndcg, abs=1e-6)
    assert got.mrr_at_10 == pytest.approx(mrr, abs=1e-6)
    assert got.recall_at_n == pytest.approx(r_n, abs=1e-6)
    assert got.recall_at_k == pytest.approx(r_k, abs=1e-6)


def test_perfect_ranking_scores_one_everywhere() -> None:
    got = metrics_of({"d1": 2, "d2": 1, "d9": 0}, TEN)
    assert_metrics(got, ndcg=1.0, mrr=1.0, r_n=1.0, r_k=1.0)


def test_reversed_ranking() -> None:
    # The two relevant documents come last: d1 (grade 2) at rank 10, d2 (grade 1) at rank 9.
    ranking = list(reversed(TEN))
    dcg = 1 / math.log2(9 + 1) + 2 / math.log2(10 + 1)
    ideal = 2 / math.log2(1 + 1) + 1 / math.log2(2 + 1)
    got = metrics_of({"d1": 2, "d2": 1}, ranking)
    assert_metrics(got, ndcg=dcg / ideal, mrr=1 / 9, r_n=0.0, r_k=1.0)
    assert got.ndcg_at_10 == pytest.approx(0.3342, abs=1e-4)  # 0.8792 / 2.6309


def test_graded_relevance() -> None:
    # grades: a=3, b=2, c=1, z=0 (judged not relevant); x is unjudged. Ranking: b z a x c.
    judged = {"a": 3, "b": 2, "c": 1, "z": 0}
    dcg = 2 / math.log2(2) + 0 + 3 / math.log2(4) + 0 + 1 / math.log2(6)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    got = metrics_of(judged, ["b", "z", "a", "x", "c"], n=2, k=5)
    # b is relevant, so MRR is 1; the top 2 hold b of {a, b, c}; the top 5 hold all three.
    assert_metrics(got, ndcg=dcg / ideal, mrr=1.0, r_n=1 / 3, r_k=1.0)
    assert got.ndcg_at_10 == pytest.approx(0.8162, abs=1e-4)  # 3.8869 / 4.7619


def test_grade_zero_is_not_relevant_but_grade_one_is() -> None:
    got = metrics_of({"z": 0, "c": 1}, ["z", "c"], n=1, k=2)
    # DCG = 1/log2(3), ideal = 1/log2(2) = 1.
    assert_metrics(got, ndcg=1 / math.log2(3), mrr=0.5, r_n=0.0, r_k=1.0)


def test_no_relevant_documents_in_qrels_scores_zero() -> None:
    got = metrics_of({"d1": 0, "d2": 0}, TEN)
    assert_metrics(got, ndcg=0.0, mrr=0.0, r_n=0.0, r_k=0.0)


def test_no_relevant_document_retrieved_scores_zero() -> None:
    got = metrics_of({"elsewhere": 1}, TEN)
    assert_metrics(got, ndcg=0.0, mrr=0.0, r_n=0.0, r_k=0.0)


def test_empty_ranking_scores_zero() -> None:
    got = metrics_of({"d1": 1}, [])
    assert_metrics(got, ndcg=0.0, mrr=0.0, r_n=0.0, r_k=0.0)


def test_relevant_document_past_rank_ten_counts_only_for_recall_at_k() -> None:
    ranking = [*TEN, "d11"]
    got = metrics_of({"d11": 1}, ranking, n=5, k=11)
    assert_metrics(got, ndcg=0.0, mrr=0.0, r_n=0.0, r_k=1.0)


def test_recall_at_k_ignores_documents_past_k() -> None:
    got = metrics_of({"d1": 1, "d10": 1}, TEN, n=5, k=8)
    assert_metrics(
        got, ndcg=(1 + 1 / math.log2(11)) / (1 + 1 / math.log2(3)), mrr=1.0, r_n=0.5, r_k=0.5
    )


def test_the_callers_order_is_kept_whatever_the_ids() -> None:
    # trec_eval sorts by score and breaks ties by id; the ids here sort against the ranking.
    got = metrics_of({"a": 1}, ["b", "a"], n=1, k=2)
    assert_metrics(got, ndcg=1 / math.log2(3), mrr=0.5, r_n=0.0, r_k=1.0)


def test_mean_over_queries() -> None:
    qrels = {"perfect": {"d1": 1}, "last": {"d1": 1}, "none": {"d1": 0}}
    rankings = {"perfect": TEN, "last": list(reversed(TEN)), "none": TEN}
    got = compute_metrics(qrels, rankings, n=5, k=10)
    # perfect: 1, 1, 1, 1; last: 1/log2(11), 1/10, 0, 1; none: zeros.
    assert_metrics(
        got,
        ndcg=(1 + 1 / math.log2(11)) / 3,
        mrr=(1 + 0.1) / 3,
        r_n=1 / 3,
        r_k=2 / 3,
    )
    assert (got.n, got.k) == (5, 10)


def test_only_the_ranked_queries_are_evaluated() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 1}}
    got = compute_metrics(qrels, {"q1": TEN}, n=5, k=10)
    assert_metrics(got, ndcg=1.0, mrr=1.0, r_n=1.0, r_k=1.0)


def test_as_dict_names_the_cutoffs() -> None:
    got = metrics_of({"d1": 1}, TEN, n=3, k=10)
    assert got.as_dict() == {"NDCG@10": 1.0, "MRR@10": 1.0, "Recall@3": 1.0, "Recall@10": 1.0}


def test_equal_cutoffs_fill_both_recalls() -> None:
    got = metrics_of({"d1": 1, "d9": 1}, TEN, n=5, k=5)
    assert (got.recall_at_n, got.recall_at_k) == (0.5, 0.5)
    assert got.as_dict()["Recall@5"] == 0.5


def test_the_callers_rankings_are_not_changed() -> None:
    qrels = {"q": {"d1": 1}}
    rankings = {"q": list(reversed(TEN))}
    per_query_metrics(qrels, rankings)
    assert rankings == {"q": list(reversed(TEN))}
    assert qrels == {"q": {"d1": 1}}


def test_query_missing_from_qrels_is_an_error() -> None:
    with pytest.raises(InvalidInputError) as info:
        per_query_metrics({"q1": {"d1": 1}}, {"q2": TEN})
    assert info.value.field == "rankings['q2']"


def test_document_ranked_twice_is_an_error() -> None:
    with pytest.raises(InvalidInputError) as info:
        per_query_metrics({"q": {"d1": 1}}, {"q": ["d1", "d2", "d1"]})
    assert info.value.field == "rankings['q'][2]"


def test_non_string_document_id_is_an_error() -> None:
    with pytest.raises(InvalidInputTypeError) as info:
        per_query_metrics({"q": {"d1": 1}}, {"q": ["d1", 2]})  # type: ignore[list-item]
    assert info.value.field == "rankings['q'][1]"


def test_ranking_given_as_a_string_is_an_error() -> None:
    with pytest.raises(InvalidInputTypeError) as info:
        per_query_metrics({"q": {"d1": 1}}, {"q": "d1"})
    assert info.value.field == "rankings['q']"


def test_non_integer_grade_is_an_error() -> None:
    with pytest.raises(InvalidInputTypeError) as info:
        per_query_metrics({"q": {"d1": 0.5}}, {"q": ["d1"]})  # type: ignore[dict-item]
    assert info.value.field == "qrels['q']['d1']"


def test_negative_grade_counts_as_not_relevant() -> None:
    got = metrics_of({"a": -1, "b": 1}, ["a", "b"], n=1, k=2)
    assert_metrics(got, ndcg=1 / math.log2(3), mrr=0.5, r_n=0.0, r_k=1.0)


@pytest.mark.parametrize(("n", "k", "field"), [(0, 10, "n"), (5, 0, "k")])
def test_cutoffs_below_one_are_errors(n: int, k: int, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        per_query_metrics({"q": {"d1": 1}}, {"q": TEN}, n=n, k=k)
    assert info.value.field == field


def test_no_queries_is_an_error() -> None:
    with pytest.raises(InvalidInputError) as info:
        compute_metrics({"q": {"d1": 1}}, {})
    assert info.value.field == "rankings"


def test_latency_percentiles_interpolate_linearly() -> None:
    got = LatencySummary.from_samples([40.0, 10.0, 30.0, 20.0])
    # sorted 10 20 30 40: p50 halfway between 20 and 30; p95 at position 0.95 * 3 = 2.85.
    assert got.p50_ms == pytest.approx(25.0)
    assert got.p95_ms == pytest.approx(30.0 + 0.85 * 10.0)
    assert got.mean_ms == pytest.approx(25.0)
    assert got.count == 4


def test_latency_of_nothing_is_an_error() -> None:
    with pytest.raises(InvalidInputError):
        LatencySummary.from_samples([])
