"""End to end: Chroma (k=50) -> RagRerank (top-5, threshold) -> query engine with a mock LLM."""

from __future__ import annotations

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore
from llama_index.postprocessor.rag_rerank import RagRerank

from rag_rerank import Reranker

QUERY = "Which animals live in the mountain forests and eat bamboo?"


def _retrieve_50(index: VectorStoreIndex) -> list[NodeWithScore]:
    retrieved = index.as_retriever(similarity_top_k=50).retrieve(QUERY)
    assert len(retrieved) == 50
    return retrieved


def _expected(
    model: str, retrieved: list[NodeWithScore], keep: int
) -> tuple[list[int], list[float], float]:
    """Positions of the reranked top-5, their scores, and a threshold that keeps ``keep`` nodes.

    Scores come straight from ``Reranker.score`` on the text LlamaIndex embeds for each node.
    """
    texts = [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in retrieved]
    scores = Reranker.shared(model).score(QUERY, texts)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    # Halfway between the keep-th and the next best score: the threshold decides the cut.
    threshold = (scores[order[keep - 1]] + scores[order[keep]]) / 2
    top = order[: min(keep, 5)]
    return top, [scores[i] for i in top], threshold


def _check_sources(
    source_nodes: list[NodeWithScore],
    retrieved: list[NodeWithScore],
    top: list[int],
    scores: list[float],
) -> None:
    assert [n.node.node_id for n in source_nodes] == [retrieved[i].node.node_id for i in top]
    assert [n.score for n in source_nodes] == pytest.approx(scores, abs=1e-6)
    for node, i in zip(source_nodes, top, strict=True):
        assert node.node.metadata["retrieval_score"] == pytest.approx(retrieved[i].score)
        assert node.node.get_content() == retrieved[i].node.get_content()


def _engine(index: VectorStoreIndex, model: str, threshold: float) -> BaseQueryEngine:
    rerank = RagRerank(model=model, top_n=5, score_threshold=threshold)
    return index.as_query_engine(similarity_top_k=50, node_postprocessors=[rerank], llm=MockLLM())


@pytest.mark.parametrize("model_fixture", ["bert_dir", "xlmr_dir"])
@pytest.mark.parametrize("keep", [8, 3], ids=["threshold-below-top5", "threshold-cuts-to-3"])
def test_query_engine_sources_are_the_reranked_top_5(
    chroma_index: VectorStoreIndex, model_fixture: str, keep: int, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_fixture)
    retrieved = _retrieve_50(chroma_index)
    top, scores, threshold = _expected(model, retrieved, keep)

    response = _engine(chroma_index, model, threshold).query(QUERY)

    assert len(response.source_nodes) == min(keep, 5)
    _check_sources(response.source_nodes, retrieved, top, scores)
    assert all(n.score is not None and n.score >= threshold for n in response.source_nodes)


@pytest.mark.parametrize("model_fixture", ["bert_dir", "xlmr_dir"])
@pytest.mark.parametrize("keep", [8, 3], ids=["threshold-below-top5", "threshold-cuts-to-3"])
async def test_async_query_engine_sources_are_the_reranked_top_5(
    chroma_index: VectorStoreIndex, model_fixture: str, keep: int, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_fixture)
    retrieved = _retrieve_50(chroma_index)
    top, scores, threshold = _expected(model, retrieved, keep)

    response = await _engine(chroma_index, model, threshold).aquery(QUERY)

    assert len(response.source_nodes) == min(keep, 5)
    _check_sources(response.source_nodes, retrieved, top, scores)


def test_source_nodes_carry_no_retrieval_score_into_the_prompt(
    chroma_index: VectorStoreIndex, bert_dir: str
) -> None:
    response = _engine(chroma_index, bert_dir, 0.0).query(QUERY)
    for node in response.source_nodes:
        assert "retrieval_score" not in node.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "topic: " in node.node.get_content(metadata_mode=MetadataMode.LLM)
