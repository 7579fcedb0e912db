"""LangChain integration for rag-rerank: cross-encoder reranking of retrieved documents.

>>> from langchain_rag_rerank import RagRerank, RagRerankRetriever
>>> retriever = RagRerankRetriever(
...     base_retriever=vectorstore.as_retriever(search_kwargs={"k": 50}), top_n=5
... )  # doctest: +SKIP
"""

from rag_rerank.api import RerankerLike  # the one reranker protocol, re-exported for type hints

from .compressor import RagRerank
from .retriever import RagRerankRetriever

__version__ = "0.1.0"

__all__ = ["RagRerank", "RagRerankRetriever", "RerankerLike", "__version__"]
