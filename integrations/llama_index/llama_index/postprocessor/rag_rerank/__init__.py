"""rag-rerank for LlamaIndex: a node postprocessor that reranks nodes with a cross-encoder.

>>> from llama_index.postprocessor.rag_rerank import RagRerank
>>> engine = index.as_query_engine(similarity_top_k=50,
...                                node_postprocessors=[RagRerank(top_n=5)])  # doctest: +SKIP
"""

from llama_index.postprocessor.rag_rerank.base import RETRIEVAL_SCORE_KEY, RagRerank, SupportsRerank

__all__ = ["RETRIEVAL_SCORE_KEY", "RagRerank", "SupportsRerank"]
