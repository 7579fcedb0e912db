"""The public surface of langchain_rag_rerank, pinned."""

from __future__ import annotations

import langchain_rag_rerank
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.retrievers import BaseRetriever
from langchain_rag_rerank import RagRerank, RagRerankRetriever, RerankerLike

EXPECTED_ALL = ["RagRerank", "RagRerankRetriever", "RerankerLike", "__version__"]


def test_all_imports() -> None:
    assert sorted(langchain_rag_rerank.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert hasattr(langchain_rag_rerank, name)


def test_base_classes() -> None:
    assert issubclass(RagRerank, BaseDocumentCompressor)
    assert issubclass(RagRerankRetriever, BaseRetriever)
    assert isinstance(RerankerLike, type)


def test_defaults_match_the_issue() -> None:
    fields = RagRerank.model_fields
    assert fields["model"].default == "BAAI/bge-reranker-v2-m3"
    assert fields["top_n"].default == 5
    assert fields["score_threshold"].default is None
    assert fields["reranker"].default is None
    assert RagRerankRetriever.model_fields["top_n"].default == 5
    assert RagRerankRetriever.model_fields["base_retriever"].is_required()
