"""Shared-prefix reuse: each query's common prefix runs once per batch and scores do not move."""

from __future__ import annotations

import warnings

import pytest

from rag_rerank import Reranker

QUERIES = ["what do pandas eat", "where is the Eiffel Tower", "python programming language"]
DOCS = [
    "bamboo",
    "Pandas eat bamboo shoots and leaves.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. " * 5,
    "Python is a programming language that lets you work quickly. " * 12,
    "苹果公司发布了新的手机，配备更快的芯片。" * 3,
    "An apple a day keeps the doctor away; apples are rich in fibre.",
]


def _plain_and_shared(folder: str, **options: object) -> tuple[Reranker, Reranker]:
    plain = Reranker(folder, device="cpu", cache=None, **options)
    plain.engine.model.share_prefix = False
    return plain, Reranker(folder, device="cpu", cache=None, **options)


@pytest.mark.parametrize("fixture", ["qwen3_dir", "gemma_dir"])
def test_shared_prefix_equals_the_plain_path_for_several_queries(request, fixture):
    plain, shared = _plain_and_shared(request.getfixturevalue(fixture), batch_tokens=600)
    per_query = [DOCS, DOCS[::-1], DOCS[2:]]
    expected = plain.rerank_many(QUERIES, per_query)
    got = shared.rerank_many(QUERIES, per_query)
    for want, have in zip(expected, got, strict=True):
        assert [r.index for r in have] == [r.index for r in want]
        assert [r.raw_score for r in have] == pytest.approx([r.raw_score for r in want], abs=1e-4)
    # The prefix ran once per batch, not once per row. Qwen3's prefix holds the system prompt
    # and instruction; bge-gemma's prompt comes after the passage, so only "A: query" is shared.
    share = 0.8 if fixture == "qwen3_dir" else 0.95
    assert shared.stats().real_tokens < share * plain.stats().real_tokens
    plain.close()
    shared.close()


def test_jobs_queued_together_share_rounds_and_keep_their_scores(qwen3_dir):
    plain, shared = _plain_and_shared(qwen3_dir)
    futures = [shared.engine.submit([q] * len(DOCS), DOCS, max_length=512) for q in QUERIES * 2]
    expected = [plain.engine.submit([q] * len(DOCS), DOCS, max_length=512) for q in QUERIES * 2]
    for have, want in zip(futures, expected, strict=True):
        assert have.result() == pytest.approx(want.result(), abs=1e-4)
    plain.close()
    shared.close()


@pytest.mark.parametrize("fixture", ["qwen3_dir", "gemma_dir"])
def test_a_query_longer_than_its_budget_and_long_documents(request, fixture):
    long_query = " ".join(QUERIES * 12)  # more tokens than a quarter of the window
    plain, shared = _plain_and_shared(request.getfixturevalue(fixture), max_length=192)
    expected = plain.rerank(long_query, DOCS)
    got = shared.rerank(long_query, DOCS)
    assert [r.index for r in got] == [r.index for r in expected]
    assert [r.raw_score for r in got] == pytest.approx([r.raw_score for r in expected], abs=1e-4)
    assert shared.stats().windows > len(DOCS)  # the long documents ran as several windows
    plain.close()
    shared.close()


def test_one_document_needs_no_prefix_and_async_scores_the_same(qwen3_dir):
    import asyncio

    with Reranker(qwen3_dir, device="cpu", cache=None) as rr:
        alone = rr.score(QUERIES[0], [DOCS[1]])
        together = rr.score(QUERIES[0], DOCS)
        assert alone[0] == pytest.approx(together[1], abs=1e-5)
        results = asyncio.run(rr.arerank(QUERIES[0], DOCS, top_n=2, threshold=0.0))
        assert [r.score for r in results] == pytest.approx(sorted(together)[::-1][:2], abs=1e-5)


def test_a_kept_prefix_is_reused_by_later_batches_and_repeated_queries(qwen3_dir):
    with Reranker(qwen3_dir, device="cpu", cache=None, batch_tokens=300) as rr:
        model = rr.engine.model
        model.clear_prefix_cache()
        before = model.tokens_run
        first = rr.score(QUERIES[0], DOCS)
        cold = model.tokens_run - before
        again = rr.score(QUERIES[0], DOCS)  # the prefix's keys and values are kept
        warm = model.tokens_run - before - cold
        prefix = model.encode(QUERIES[:1] * 2, DOCS[:2], max_length=512, windows=True).extra[0]
        assert rr.stats().batches > 2  # several batches, one prefix run
        assert cold - warm == prefix
        assert again == pytest.approx(first, abs=1e-6)


@pytest.mark.parametrize("fixture", ["qwen3_dir", "gemma_dir"])
def test_the_shared_prefix_uses_the_supported_cache_api(request, fixture):
    # transformers deprecates ``past_key_values`` for the decoder (FutureWarning, gone in 5.40).
    reranker = Reranker(request.getfixturevalue(fixture), device="cpu", cache=None)
    try:
        with warnings.catch_warnings(record=True) as caught:  # filters are global: worker too
            warnings.simplefilter("always")
            reranker.rerank_many(QUERIES[:2], [DOCS, DOCS])
        assert reranker.stats().real_tokens > 0
    finally:
        reranker.close()
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
