"""LangChain's standard retriever tests (``langchain-tests``) against RagRerankRetriever.

As LangChain partner packages do: subclass the standard suite, say how to build the retriever and
which argument sets the number of results (``top_n``, on the constructor and per call). The base
retriever is the offline Chroma store of ``conftest.py``; the reranker is the tiny random BERT.
``langchain-tests`` ships no unit suite for retrievers, so the integration suite is the one here.
"""

from __future__ import annotations

from typing import Any

import pytest

standard = pytest.importorskip("langchain_tests.integration_tests", reason="needs langchain-tests")

from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_rag_rerank import RagRerankRetriever  # noqa: E402


class TestRagRerankRetrieverStandard(standard.RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _offline_inputs(self, bert_dir: str, chroma_store: Any) -> None:
        # The suite builds the retriever from properties, not fixtures: keep what they need.
        self._model = bert_dir
        self._base = chroma_store.as_retriever(search_kwargs={"k": 20})

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return RagRerankRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"base_retriever": self._base, "model": self._model}

    @property
    def retriever_query_example(self) -> str:
        return "What does the panda eat?"

    @property
    def num_results_arg_name(self) -> str:
        return "top_n"
