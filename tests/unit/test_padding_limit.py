"""The padding allowance splits batches that would waste work, and never changes scores."""

import numpy as np
import pytest

from rag_rerank import Reranker
from rag_rerank.core.batching import packed_batches, token_budget_batches

LENGTHS = [512, 500, 480, 300, 290, 120, 118, 64, 64, 64, 33, 7]


def _padding(batch):
    widths = np.asarray(LENGTHS)[batch]
    return int(widths.max()) * len(batch) - int(widths.sum())


@pytest.mark.parametrize("max_padding", [0, 10, 64, 500])
def test_batches_cover_everything_once_and_respect_the_padding_limit(max_padding):
    batches = token_budget_batches(LENGTHS, 4096, max_padding=max_padding)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(LENGTHS)))
    for batch in batches:
        assert len(batch) == 1 or _padding(batch) <= max_padding
        assert int(np.asarray(LENGTHS)[batch].max()) * len(batch) <= 4096


def test_zero_padding_groups_equal_lengths_only():
    batches = token_budget_batches(LENGTHS, 4096, max_padding=0)
    assert [sorted(np.asarray(LENGTHS)[b].tolist()) for b in batches if len(b) > 1] == [
        [64, 64, 64]
    ]


def test_no_limit_is_the_plain_token_budget():
    a = token_budget_batches(LENGTHS, 1024)
    b = token_budget_batches(LENGTHS, 1024, max_padding=None)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]


def test_negative_limit_is_refused():
    with pytest.raises(ValueError, match="max_padding"):
        token_budget_batches(LENGTHS, 1024, max_padding=-1)


def test_padding_limit_does_not_change_scores(bert_dir, xlmr_dir):
    docs = [("word " * n).strip() for n in (3, 40, 41, 200, 7, 90, 600, 1)]
    for folder in (bert_dir, xlmr_dir):
        rr = Reranker(folder, batch_tokens=100_000)
        rr.engine.model.packed = False  # the padded path, as on a GPU
        loose = rr.score("a query", docs)
        rr.engine.max_padding = 0
        assert rr.score("a query", docs) == pytest.approx(loose, abs=1e-5)
        rr.engine.max_padding = None
        assert rr.score("a query", docs) == pytest.approx(loose, abs=1e-5)


def test_padding_free_execution_is_on_for_cpu_bert_and_xlmr(bert_dir, xlmr_dir, bert2_dir):
    for folder in (bert_dir, xlmr_dir, bert2_dir):
        assert Reranker(folder).engine.model.packed


@pytest.mark.parametrize("batch_tokens", [1, 100, 100_000])
def test_padding_free_scores_equal_padded_scores(bert_dir, xlmr_dir, bert2_dir, batch_tokens):
    docs = [("word " * n).strip() for n in (3, 40, 41, 200, 7, 90, 600, 1)] + ["", "苹果 x"]
    for folder in (bert_dir, xlmr_dir, bert2_dir):
        rr = Reranker(folder, batch_tokens=batch_tokens)
        packed = rr.score_pairs([("a query", d) for d in docs] + [("other", "word")])
        rr.engine.model.packed = False
        padded = rr.score_pairs([("a query", d) for d in docs] + [("other", "word")])
        assert packed == pytest.approx(padded, abs=1e-6)


def test_packed_batches_hold_at_most_the_budget_of_real_tokens():
    batches = packed_batches(LENGTHS, 600)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(LENGTHS)))
    for batch in batches:
        assert len(batch) == 1 or int(np.asarray(LENGTHS)[batch].sum()) <= 600
    with pytest.raises(ValueError, match="batch_tokens"):
        packed_batches(LENGTHS, 0)
