import numpy as np
import pytest

from rag_rerank.core.batching import length_order, split_batch, token_budget_batches


def test_length_order_is_longest_first_and_stable():
    assert length_order([3, 7, 3, 9, 7]).tolist() == [3, 1, 4, 0, 2]


@pytest.mark.parametrize("budget", [1, 5, 16, 40, 1000])
def test_batches_cover_every_sequence_once_within_budget(budget):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 20, size=57)
    batches = token_budget_batches(lengths, budget)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(57))
    for batch in batches:
        padded = lengths[batch].max() * len(batch)
        assert padded <= budget or len(batch) == 1


def test_batches_follow_length_order():
    lengths = [2, 9, 5, 9, 1]
    batches = token_budget_batches(lengths, 18)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0, 4]]


def test_a_sequence_longer_than_the_budget_gets_its_own_batch():
    assert [b.tolist() for b in token_budget_batches([100, 3, 3], 10)] == [[0], [1, 2]]


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="batch_tokens"):
        token_budget_batches([1, 2], 0)


def test_split_batch_halves_and_refuses_one():
    a, b = split_batch(np.array([4, 5, 6]))
    assert a.tolist() == [4] and b.tolist() == [5, 6]
    with pytest.raises(ValueError):
        split_batch(np.array([1]))
