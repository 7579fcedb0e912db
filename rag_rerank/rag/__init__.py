"""Retrieval-augmented generation around the reranker: document splitting, a Chroma store with
an offline embedding model, and :class:`RerankPipeline` (retrieve ``k``, rerank, keep ``top_n``).

Needs the ``chroma`` extra (``pip install "rag-rerank[chroma]"``).
"""

from .pipeline import PipelineResult, PipelineResults, RerankPipeline

__all__ = ["PipelineResult", "PipelineResults", "RerankPipeline"]
