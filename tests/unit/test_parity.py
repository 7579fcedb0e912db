"""Scores equal a plain transformers forward on the same weights, however the pairs are batched."""

import random

import pytest

from rag_rerank import Reranker
from reference import PlainCrossEncoder

QUERY = "what does a cross-encoder do in retrieval"
DOCUMENTS = [
    "A cross-encoder reads the query and the passage together.",
    "Pandas eat bamboo.",
    "",
    "Retrieval-augmented generation grounds a language model in retrieved passages. " * 6,
    "The Eiffel Tower is in Paris.",
    "Python is a programming language that lets you work quickly and integrate systems.",
    "x",
    "Photosynthesis converts light energy into chemical energy in plants, " * 3,
    "苹果公司发布了新的手机。 Apple released a phone.",
    "An apple a day keeps the doctor away.",
]


@pytest.fixture(scope="module", params=["bert_dir", "xlmr_dir", "bert2_dir"])
def folder(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def expected(folder):
    plain = PlainCrossEncoder(folder)
    return [plain.score(QUERY, d) for d in DOCUMENTS]


@pytest.mark.parametrize("batch_tokens", [1, 64, 256, 100_000])
def test_scores_equal_plain_forward_for_any_batch_budget(folder, expected, batch_tokens):
    rr = Reranker(folder, batch_tokens=batch_tokens)
    assert rr.score(QUERY, DOCUMENTS) == pytest.approx(expected, abs=1e-5)


def test_shuffled_order_gives_the_same_scores(folder, expected):
    rr = Reranker(folder, batch_tokens=200)
    order = list(range(len(DOCUMENTS)))
    random.Random(3).shuffle(order)
    shuffled = rr.score(QUERY, [DOCUMENTS[i] for i in order])
    assert shuffled == pytest.approx([expected[i] for i in order], abs=1e-5)


def test_rerank_many_and_score_pairs_agree_with_score(folder, expected):
    rr = Reranker(folder, batch_tokens=300)
    other_query = "where is the eiffel tower"
    plain = PlainCrossEncoder(folder)
    many = rr.rerank_many([QUERY, other_query], [DOCUMENTS, DOCUMENTS[:4]])
    by_index = {r.index: r.score for r in many[0]}
    assert [by_index[i] for i in range(len(DOCUMENTS))] == pytest.approx(expected, abs=1e-5)
    second = {r.index: r.score for r in many[1]}
    assert [second[i] for i in range(4)] == pytest.approx(
        [plain.score(other_query, d) for d in DOCUMENTS[:4]], abs=1e-5
    )
    pairs = [(QUERY, d) for d in DOCUMENTS]
    assert rr.score_pairs(pairs) == pytest.approx(expected, abs=1e-5)


def test_raw_score_is_the_logit_and_score_its_sigmoid(folder):
    rr = Reranker(folder)
    plain = PlainCrossEncoder(folder)
    for r in rr.rerank(QUERY, DOCUMENTS):
        assert r.raw_score == pytest.approx(plain.logit(QUERY, DOCUMENTS[r.index]), abs=1e-5)
        assert 0.0 <= r.score <= 1.0


def test_sentence_transformers_cross_encoder_agrees(bert_dir, xlmr_dir):
    from sentence_transformers import CrossEncoder

    for folder in (bert_dir, xlmr_dir):
        ce = CrossEncoder(folder, device="cpu")
        theirs = ce.predict([(QUERY, d) for d in DOCUMENTS], batch_size=4).tolist()
        assert Reranker(folder).score(QUERY, DOCUMENTS) == pytest.approx(theirs, abs=1e-5)


def test_two_label_score_is_softmax_of_the_positive_class(bert2_dir):
    import torch

    plain = PlainCrossEncoder(bert2_dir)
    enc = plain.tokenizer([QUERY], [DOCUMENTS[0]], return_tensors="pt")
    with torch.inference_mode():
        probabilities = plain.model(**enc).logits[0].softmax(-1)
    [score] = Reranker(bert2_dir).score(QUERY, DOCUMENTS[:1])
    assert score == pytest.approx(float(probabilities[1]), abs=1e-5)
