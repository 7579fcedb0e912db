"""RagRerank (LlamaIndex) with prune, a token budget and the LLM order: pruned node copies."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.rag_rerank import RagRerank
from pydantic import ValidationError

from rag_rerank import Reranker
from rag_rerank.api import join_sentences

QUERY = "what do giant pandas eat"
TEXTS = [
    "The giant panda is a bear. It eats bamboo almost all day. It lives in China.",
    "Paris is the capital of France. It is on the Seine.",
    "Red pandas are small. Their diet is mostly bamboo, too. They are not bears.",
]


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(id_=f"node-{i}", text=text, metadata={"source": f"doc{i}.txt"}),
            score=0.5,
        )
        for i, text in enumerate(TEXTS)
    ]


def test_pruned_node_copies(bert_dir) -> None:
    nodes = make_nodes()
    out = RagRerank(model=bert_dir, top_n=2, prune=True).postprocess_nodes(
        nodes, QueryBundle(QUERY)
    )
    contents = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    expected = Reranker.shared(bert_dir).rerank(QUERY, contents, top_n=2, prune=True)
    assert [n.node.node_id for n in out] == [f"node-{r.index}" for r in expected]
    for item, result in zip(out, expected, strict=True):
        node = item.node
        original = TEXTS[result.index]
        spans = [tuple(span) for span in node.metadata["kept_spans"]]
        assert node.metadata["original_content"] == original
        assert node.text == join_sentences(original, spans)
        assert node.text and node.text in result.pruned_text  # the metadata lines are dropped
        assert item.score == result.score
        # what the LLM reads: the pruned text, without the original or the spans
        llm_text = node.get_content(metadata_mode=MetadataMode.LLM)
        assert "original_content" not in llm_text and "kept_spans" not in llm_text
        assert node.text in llm_text
    assert [n.node.text for n in nodes] == TEXTS  # the caller's nodes are untouched
    assert "original_content" not in nodes[0].node.metadata


def test_async_budget_and_order(bert_dir) -> None:
    rerank = RagRerank(model=bert_dir, top_n=None, prune=True)
    sync = rerank.postprocess_nodes(make_nodes(), QueryBundle(QUERY))
    later = asyncio.run(rerank.apostprocess_nodes(make_nodes(), QueryBundle(QUERY)))
    assert [(n.node.node_id, n.node.text) for n in later] == [
        (n.node.node_id, n.node.text) for n in sync
    ]
    edges = RagRerank(model=bert_dir, top_n=None, order="edges").postprocess_nodes(
        make_nodes(), QueryBundle(QUERY)
    )
    assert [n.node.node_id for n in edges] == [sync[i].node.node_id for i in (0, 2, 1)]
    tiny = RagRerank(model=bert_dir, top_n=None, max_context_tokens=1).postprocess_nodes(
        make_nodes(), QueryBundle(QUERY)
    )
    assert tiny == []  # not even one sentence fits


def test_bad_pruning_fields_are_refused(bert_dir) -> None:
    with pytest.raises(ValidationError, match="max_context_tokens"):
        RagRerank(model=bert_dir, max_context_tokens=-1)
    with pytest.raises(ValidationError, match="order"):
        RagRerank(model=bert_dir, order="middle")
