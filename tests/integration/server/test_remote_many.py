"""RemoteReranker gets ``rerank_many`` / ``score_pairs`` and their async twins from
:class:`~rag_rerank.api.BaseReranker`: against a real server they equal ``rerank`` / ``score`` per
query, and the in-process reranker's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_testing import POISON_WORD, build_nan_model, live_server

from rag_rerank import NonFiniteScoreError, RemoteReranker, Reranker
from rag_rerank.server import create_app

QUERIES = ["which bank pays interest on savings?", "what do pandas eat?", "boats on the river"]
DOCUMENTS = [
    [
        "The bank pays interest on savings accounts every month. Savings grow slowly.",
        "We sat on the river bank and watched the boats.",
        "Interest rates rose again this year.",
    ],
    ["Pandas eat bamboo. They sleep a lot. Bamboo grows fast.", "A loan bought the boat."],
    [],
]


@pytest.fixture(scope="module")
def local(bert_dir: str) -> Iterator[Reranker]:
    reranker = Reranker(bert_dir, show_progress=False, cache=None)
    yield reranker
    reranker.close()


@pytest.fixture(scope="module")
def remote(local: Reranker) -> Iterator[RemoteReranker]:
    with live_server(create_app(local)) as url, RemoteReranker(url) as client:
        yield client


def _key(ranked: list) -> list:
    return [[(r.index, r.document, r.pruned_text) for r in results] for results in ranked]


def _logits(ranked: list) -> list:
    return [r.raw_score for results in ranked for r in results]


@pytest.mark.parametrize("settings", [{}, {"top_n": 2, "threshold": 0.1}, {"prune": True}])
def test_rerank_many_equals_rerank_per_query(
    remote: RemoteReranker, local: Reranker, settings: dict[str, object]
) -> None:
    per_query = [remote.rerank(q, d, **settings) for q, d in zip(QUERIES, DOCUMENTS, strict=True)]
    # The async twin's requests run concurrently, so the server may batch them together: equal
    # up to floating-point noise, as the engine promises for shared batches.
    for ranked in (
        remote.rerank_many(QUERIES, DOCUMENTS, **settings),
        asyncio.run(remote.arerank_many(QUERIES, DOCUMENTS, **settings)),
        local.rerank_many(QUERIES, DOCUMENTS, **settings),
    ):
        assert _key(ranked) == _key(per_query)
        assert _logits(ranked) == pytest.approx(_logits(per_query), abs=1e-5)


def test_score_pairs_equals_score_per_pair(remote: RemoteReranker, local: Reranker) -> None:
    pairs = [(q, d) for q, docs in zip(QUERIES, DOCUMENTS, strict=True) for d in docs]
    pairs.insert(1, pairs[3])  # queries interleaved: scores still come back in pair order
    expected = [remote.score(q, [d])[0] for q, d in pairs]
    assert remote.score_pairs(pairs) == pytest.approx(expected, abs=1e-6)
    assert asyncio.run(remote.ascore_pairs(pairs)) == pytest.approx(expected, abs=1e-6)
    assert remote.score_pairs(pairs) == pytest.approx(local.score_pairs(pairs), abs=1e-5)


def test_a_non_finite_pair_is_named_by_its_pair_index(bert_dir: str, tmp_path: Path) -> None:
    with (
        Reranker(build_nan_model(bert_dir, tmp_path / "nan"), cache=None) as poisoned,
        live_server(create_app(poisoned)) as url,
        RemoteReranker(url) as client,
    ):
        pairs = [("q one", "fine"), ("q two", "also fine"), ("q one", f"a {POISON_WORD} here")]
        with pytest.raises(NonFiniteScoreError) as info:
            client.score_pairs(pairs)
        assert info.value.pair_index == 2
        with pytest.raises(NonFiniteScoreError) as info:
            asyncio.run(client.ascore_pairs(pairs))
        assert info.value.pair_index == 2
