"""Ordering, top_n, threshold, ties, indices, long queries and non-Latin text."""

import pytest

from rag_rerank import Reranker, RerankResult
from reference import PlainCrossEncoder

DOCS = [
    "The giant panda is a bear native to China.",
    "Apple released a new iPhone.",
    "An apple a day keeps the doctor away.",
    "Pandas is a Python library for data frames.",
    "Bamboo makes up most of a panda's diet.",
    "The Eiffel Tower is in Paris.",
]


@pytest.fixture(scope="module")
def rr(xlmr_dir):
    return Reranker(xlmr_dir)


def test_results_are_best_first_with_caller_indices(rr):
    scores = rr.score("what do pandas eat", DOCS)
    results = rr.rerank("what do pandas eat", DOCS)
    assert [r.index for r in results] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    for r in results:
        assert isinstance(r, RerankResult)
        assert r.document == DOCS[r.index]
        assert r.score == pytest.approx(scores[r.index], abs=1e-6)


def test_top_n_keeps_the_best_n(rr):
    everything = rr.rerank("what do pandas eat", DOCS)
    assert rr.rerank("what do pandas eat", DOCS, top_n=2) == everything[:2]
    assert rr.rerank("what do pandas eat", DOCS, top_n=100) == everything


def test_threshold_then_top_n(rr):
    everything = rr.rerank("what do pandas eat", DOCS)
    cut = everything[2].score
    kept = rr.rerank("what do pandas eat", DOCS, threshold=cut)
    assert kept == [r for r in everything if r.score >= cut]
    assert rr.rerank("what do pandas eat", DOCS, threshold=cut, top_n=1) == everything[:1]
    assert rr.rerank("what do pandas eat", DOCS, threshold=1.0) == []


def test_ties_keep_input_order(rr):
    docs = ["same text", "other text", "same text", "same text"]
    results = rr.rerank("query", docs)
    same = [r.index for r in results if r.document == "same text"]
    assert same == [0, 2, 3]


def test_input_is_not_mutated_or_reordered(rr):
    docs = list(DOCS)
    rr.rerank("pandas", docs, top_n=2)
    assert docs == DOCS


def test_empty_documents_return_empty(rr):
    assert rr.score("q", []) == []
    assert rr.rerank("q", []) == []
    assert rr.rerank_many(["q", "r"], [[], ["a"]])[0] == []
    assert rr.score_pairs([]) == []


def test_chinese_and_mixed_text(rr, xlmr_dir):
    plain = PlainCrossEncoder(xlmr_dir)
    query = "苹果公司发布了什么"
    docs = [
        "苹果公司发布了新的手机。",
        "我喜欢吃苹果。",
        "Apple 发布了 iPhone。",
        "大熊猫 eats bamboo",
    ]
    assert rr.score(query, docs) == pytest.approx([plain.score(query, d) for d in docs], abs=1e-5)


def test_a_long_query_is_cut_to_a_quarter_of_the_window(xlmr_dir):
    rr = Reranker(xlmr_dir, max_length=64)
    tokenizer = PlainCrossEncoder(xlmr_dir).tokenizer
    long_query = " ".join(["panda bamboo forest"] * 40)
    enc = tokenizer(long_query, add_special_tokens=False, return_offsets_mapping=True)
    assert len(enc["input_ids"]) > 16
    cut_query = long_query[: enc["offset_mapping"][15][1]]
    doc = ["Bamboo makes up most of a panda's diet."]
    assert rr.score(long_query, doc) == pytest.approx(rr.score(cut_query, doc), abs=1e-6)


def test_max_length_is_capped_by_the_model(bert_dir):
    assert Reranker(bert_dir, max_length=100_000).max_length == 512


async def test_async_methods_match_sync(rr):
    assert await rr.ascore("pandas", DOCS) == rr.score("pandas", DOCS)
    assert await rr.arerank("pandas", DOCS, top_n=3) == rr.rerank("pandas", DOCS, top_n=3)
    assert await rr.arerank_many(["a", "b"], [DOCS, DOCS[:2]]) == rr.rerank_many(
        ["a", "b"], [DOCS, DOCS[:2]]
    )
    assert await rr.ascore_pairs([("a", "b")]) == rr.score_pairs([("a", "b")])
