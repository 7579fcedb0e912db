"""RagRerank and RagRerankRetriever with prune, a token budget and the LLM order."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_rag_rerank import RagRerank, RagRerankRetriever
from pydantic import ValidationError

from rag_rerank import PruneOptions, Reranker
from rag_rerank.api import approximate_tokens

QUERY = "what do giant pandas eat"
TEXTS = [
    "The giant panda is a bear. It eats bamboo almost all day. It lives in China.",
    "Paris is the capital of France. It is on the Seine.",
    "Red pandas are small. Their diet is mostly bamboo, too. They are not bears.",
]


def make_docs() -> list[Document]:
    return [
        Document(page_content=text, metadata={"n": i}, id=f"id-{i}") for i, text in enumerate(TEXTS)
    ]


def test_pruned_copies_carry_the_original_and_the_spans(bert_dir) -> None:
    docs = make_docs()
    reranker = Reranker.shared(bert_dir)
    expected = reranker.rerank(QUERY, TEXTS, top_n=2, prune=True)
    out = RagRerank(model=bert_dir, top_n=2, prune=True).compress_documents(docs, QUERY)
    assert [d.id for d in out] == [f"id-{r.index}" for r in expected]
    for document, result in zip(out, expected, strict=True):
        assert document.page_content == result.pruned_text
        assert document.metadata["original_content"] == TEXTS[result.index]
        assert document.metadata["kept_spans"] == [list(span) for span in result.kept_spans]
        assert document.metadata["relevance_score"] == result.score
        assert document.metadata["n"] == result.index
    assert [d.page_content for d in docs] == TEXTS  # the caller's documents are untouched
    assert "original_content" not in docs[0].metadata


def test_without_prune_the_copies_are_whole(bert_dir) -> None:
    out = RagRerank(model=bert_dir, top_n=None).compress_documents(make_docs(), QUERY)
    assert sorted(d.page_content for d in out) == sorted(TEXTS)
    assert all("original_content" not in d.metadata for d in out)


def test_async_and_retriever_prune_the_same(bert_dir) -> None:
    compressor = RagRerank(model=bert_dir, top_n=None, prune=PruneOptions(threshold=0.8))
    sync = compressor.compress_documents(make_docs(), QUERY)
    assert asyncio.run(compressor.acompress_documents(make_docs(), QUERY)) == sync
    retriever = RagRerankRetriever(
        base_retriever=RunnableLambda(lambda query: make_docs()),
        model=bert_dir,
        top_n=None,
        prune={"threshold": 0.8},
    )
    assert retriever.invoke(QUERY) == sync


def test_budget_and_edges_order(bert_dir) -> None:
    whole = RagRerank(model=bert_dir, top_n=None, prune=True).compress_documents(make_docs(), QUERY)
    budget = approximate_tokens(whole[0].page_content) + approximate_tokens(whole[1].page_content)
    fitted = RagRerank(
        model=bert_dir, top_n=None, prune=True, max_context_tokens=budget
    ).compress_documents(make_docs(), QUERY)
    assert fitted == whole[:2]
    edges = RagRerank(model=bert_dir, top_n=None, order="edges").compress_documents(
        make_docs(), QUERY
    )
    plain = RagRerank(model=bert_dir, top_n=None).compress_documents(make_docs(), QUERY)
    assert [d.id for d in edges] == [plain[i].id for i in (0, 2, 1)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prune": "yes"}, "prune"),
        ({"prune": {"threshold": 2}}, "prune.threshold"),
        ({"max_context_tokens": 0}, "max_context_tokens"),
        ({"max_context_tokens": 10, "tokenizer": "/no/such/tokenizer"}, "tokenizer"),
        ({"order": "edge"}, "order"),
    ],
)
def test_bad_pruning_fields_are_refused_at_construction(bert_dir, kwargs, field) -> None:
    with pytest.raises(ValidationError, match=field):
        RagRerank(model=bert_dir, **kwargs)
