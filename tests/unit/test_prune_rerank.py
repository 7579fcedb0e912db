"""Pruning and the token budget through Reranker.rerank / rerank_many and their async twins."""

import asyncio

import pytest

from rag_rerank import InvalidInputError, PruneOptions, Reranker
from rag_rerank.api import approximate_tokens, join_sentences, split_sentences

QUERY = "what do giant pandas eat"
DOCS = [
    "The giant panda is a bear. It eats bamboo almost all day. It lives in the mountains of China.",
    "Paris is the capital of France.",
    "Red pandas are small mammals. They are not bears. Their diet is mostly bamboo, too.",
    "Pandas is a Python library.\nIt reads CSV files. It has data frames.",
]


@pytest.fixture(scope="module")
def rr(bert_dir):
    reranker = Reranker(bert_dir, cache=None)
    yield reranker
    reranker.close()


def test_prune_off_is_the_plain_rerank(rr):
    plain = rr.rerank(QUERY, DOCS, top_n=3)
    assert rr.rerank(QUERY, DOCS, top_n=3, prune=False) == plain
    assert rr.rerank(QUERY, DOCS, top_n=3, prune=None, order="score") == plain
    assert all(r.pruned_text is None and r.kept_spans is None for r in plain)


def test_pruning_keeps_scores_order_and_documents(rr):
    plain = rr.rerank(QUERY, DOCS, top_n=3)
    pruned = rr.rerank(QUERY, DOCS, top_n=3, prune=True)
    assert [(r.index, r.score, r.raw_score, r.document) for r in pruned] == [
        (r.index, r.score, r.raw_score, r.document) for r in plain
    ]
    for r in pruned:
        assert r.pruned_text  # never empty
        assert r.kept_spans
        assert r.pruned_text == join_sentences(r.document, r.kept_spans)
        assert set(r.kept_spans) <= set(split_sentences(r.document))


def test_sentence_scores_equal_scoring_the_sentences_directly(rr):
    for threshold in (1.0, 0.7, 0.3):
        for r in rr.rerank(QUERY, DOCS, prune=PruneOptions(threshold=threshold)):
            spans = split_sentences(r.document)
            direct = rr.score(QUERY, [r.document[s:e] for s, e in spans])
            best = max(direct)
            expected = {
                span
                for span, score in zip(spans, direct, strict=True)
                if score >= threshold * best - 1e-6 or score == best
            }
            assert set(r.kept_spans) == expected, (threshold, r.document)


def test_all_sentences_go_to_the_engine_in_one_submission(rr, monkeypatch):
    calls = []
    submit = rr.engine.submit

    def counting_submit(queries, documents, **kwargs):
        calls.append(len(documents))
        return submit(queries, documents, **kwargs)

    monkeypatch.setattr(rr.engine, "submit", counting_submit)
    rr.rerank(QUERY, DOCS, prune=True)
    # the rerank, then the 3 + 3 + 3 sentences of the passages of more than one sentence together
    assert calls == [4, 9]
    calls.clear()
    rr.rerank_many([QUERY, "python data frames"], [DOCS, DOCS[2:]], prune=True)
    assert calls == [6, 9 + 6]


def test_pruning_is_deterministic_and_async_agrees(rr):
    options = PruneOptions(threshold=0.6, context=1)
    first = rr.rerank(QUERY, DOCS, prune=options)
    assert rr.rerank(QUERY, DOCS, prune=options) == first
    assert asyncio.run(rr.arerank(QUERY, DOCS, prune=options)) == first


def test_rerank_many_prunes_each_query_against_its_own_results(rr):
    queries = [QUERY, "python data frames"]
    many = rr.rerank_many(queries, [DOCS, DOCS[2:]], top_n=2, prune=True)
    for query, docs, results in zip(queries, [DOCS, DOCS[2:]], many, strict=True):
        single = rr.rerank(query, docs, top_n=2, prune=True)
        assert [(r.index, r.kept_spans) for r in results] == [
            (r.index, r.kept_spans) for r in single
        ]
    amany = asyncio.run(rr.arerank_many(queries, [DOCS, DOCS[2:]], top_n=2, prune=True))
    assert [[r.kept_spans for r in rs] for rs in amany] == [
        [r.kept_spans for r in rs] for rs in many
    ]


def test_budget_fills_with_the_best_pruned_passages(rr):
    pruned = rr.rerank(QUERY, DOCS, prune=True)
    budget = sum(approximate_tokens(r.pruned_text) for r in pruned[:2])
    fitted = rr.rerank(QUERY, DOCS, prune=True, max_context_tokens=budget)
    assert fitted[:2] == pruned[:2]
    assert sum(approximate_tokens(r.text) for r in fitted) <= budget
    edges = rr.rerank(QUERY, DOCS, prune=True, order="edges")
    assert [r.index for r in edges] == [pruned[i].index for i in (1, 3, 2, 0)]  # LongContextReorder


def test_budget_counts_with_a_hugging_face_tokenizer(rr, bert_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    by_name = rr.rerank(QUERY, DOCS, max_context_tokens=30, tokenizer=bert_dir)
    by_object = rr.rerank(QUERY, DOCS, max_context_tokens=30, tokenizer=tokenizer)
    assert by_name == by_object
    used = sum(len(tokenizer.encode(r.text, add_special_tokens=False)) for r in by_name)
    assert 0 < used <= 30


def test_bad_budget_arguments_name_the_field(rr, tmp_path):
    for kwargs, field in [
        ({"max_context_tokens": 0}, "max_context_tokens"),
        ({"max_context_tokens": 10, "tokenizer": str(tmp_path / "missing")}, "tokenizer"),
        ({"order": "edge"}, "order"),
        ({"prune": PruneOptions(), "max_context_tokens": -1}, "max_context_tokens"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            rr.rerank(QUERY, DOCS, **kwargs)
        assert info.value.field == field
        with pytest.raises(InvalidInputError):
            asyncio.run(rr.arerank(QUERY, DOCS, **kwargs))
        with pytest.raises(InvalidInputError):
            rr.rerank_many([QUERY], [DOCS], **kwargs)
