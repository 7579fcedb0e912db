"""A user's own reranker gets the whole contract from :class:`BaseReranker` by writing one pairs
primitive: ``rerank_many`` / ``score_pairs`` and their async twins equal ``rerank`` / ``score`` per
query, with the same order, ties, threshold, top-n, pruning, token budget and order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from rag_rerank import InvalidInputError, InvalidInputTypeError
from rag_rerank.api import BaseReranker, cut_ranked


class WordOverlap(BaseReranker):
    """Logit: words shared with the query, minus 1 (ties are common)."""

    def __init__(self) -> None:
        self.calls = 0

    def _pair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        self.calls += 1
        logits = []
        for query, document in zip(queries, documents, strict=True):
            words = set(document.lower().replace(".", "").split())
            shared = len(set(query.lower().split()) & words)
            logits.append(shared - 1.0)
        return np.asarray(logits, dtype=np.float32)

    async def _apair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        await asyncio.sleep(0)
        return self._pair_logits(queries, documents)


QUERIES = ["panda bamboo diet", "river bank boats", "interest on savings"]
DOCUMENTS = [
    [
        "Pandas eat bamboo. The giant panda lives in China. Its diet is mostly bamboo.",
        "A panda is a bear.",
        "Rivers flow to the sea.",
        "bamboo grows fast. Panda cubs are small.",
    ],
    ["The river bank was muddy. Boats passed by.", "The bank pays interest.", "Boats float."],
    [],
]
SETTINGS = [
    {},
    {"top_n": 2},
    {"threshold": 0.5},
    {"top_n": 1, "threshold": 0.2},
    {"prune": True},
    {"max_context_tokens": 12},
    {"order": "edges"},
    {"prune": True, "max_context_tokens": 10, "order": "edges", "top_n": 3},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: repr(s))
def test_rerank_many_equals_rerank_per_query(settings: dict[str, object]) -> None:
    rr = WordOverlap()
    expected = [rr.rerank(q, docs, **settings) for q, docs in zip(QUERIES, DOCUMENTS, strict=True)]
    assert rr.rerank_many(QUERIES, DOCUMENTS, **settings) == expected
    assert asyncio.run(rr.arerank_many(QUERIES, DOCUMENTS, **settings)) == expected
    pairs = zip(QUERIES, DOCUMENTS, strict=True)
    assert [asyncio.run(rr.arerank(q, docs, **settings)) for q, docs in pairs] == expected


def test_rerank_many_scores_every_query_in_one_call() -> None:
    rr = WordOverlap()
    rr.rerank_many(QUERIES, DOCUMENTS)
    assert rr.calls == 1
    rr.calls = 0
    rr.rerank_many(QUERIES, DOCUMENTS, prune=True)
    assert rr.calls == 2  # the passages, then every sentence of every query's results


def test_ties_keep_input_order() -> None:
    rr = WordOverlap()
    (ranked,) = rr.rerank_many(["x"], [["a", "b", "c"]])
    assert [r.index for r in ranked] == [0, 1, 2]


def test_score_pairs_equals_score_per_pair() -> None:
    rr = WordOverlap()
    pairs = [(q, d) for q, docs in zip(QUERIES, DOCUMENTS, strict=True) for d in docs]
    expected = [rr.score(q, [d])[0] for q, d in pairs]
    assert rr.score_pairs(pairs) == expected
    assert asyncio.run(rr.ascore_pairs(pairs)) == expected
    assert rr.score_pairs([]) == [] and asyncio.run(rr.ascore_pairs([])) == []


def test_bad_input_is_named() -> None:
    rr = WordOverlap()
    with pytest.raises(InvalidInputError) as info:
        rr.rerank_many(QUERIES, DOCUMENTS[:2])
    assert info.value.field == "documents_per_query"
    with pytest.raises(InvalidInputError) as info:
        rr.rerank_many(["ok", ""], [["a"], ["b"]])
    assert info.value.field == "queries[1]"
    with pytest.raises(InvalidInputTypeError) as type_info:
        rr.rerank_many(["ok"], [["a", 3]])  # type: ignore[list-item]
    assert type_info.value.field == "documents_per_query[0][1]"
    with pytest.raises(InvalidInputTypeError) as type_info:
        rr.score_pairs([("ok", None)])  # type: ignore[list-item]
    assert type_info.value.field == "pairs[0][1]"


def test_the_primitive_is_all_a_subclass_writes() -> None:
    assert BaseReranker.__abstractmethods__ == frozenset({"_pair_logits", "_apair_logits"})


@pytest.mark.parametrize("settings", SETTINGS[:4], ids=lambda s: repr(s))
def test_cut_ranked_of_the_full_ranking_equals_reranking_with_the_cut(
    settings: dict[str, float],
) -> None:
    rr = WordOverlap()
    full = rr.rerank(QUERIES[0], DOCUMENTS[0])
    top_n, threshold = settings.get("top_n"), settings.get("threshold")
    cut = cut_ranked(full, None if top_n is None else int(top_n), threshold)
    assert cut == rr.rerank(QUERIES[0], DOCUMENTS[0], **settings)
