"""Retrieval-augmented generation around the reranker: document splitting (:mod:`.splitting`), a
Chroma store with an offline embedding model (:mod:`.store`, :mod:`.embeddings`),
:class:`RerankPipeline` (retrieve ``k``, rerank, keep ``top_n``) and its results (:mod:`.results`),
and the demo corpus (:mod:`.demo`).

Needs the ``chroma`` extra (``pip install "rag-rerank[chroma]"``). Importing this package loads
no torch: the pipeline loads its reranker on the first query.
"""

from .pipeline import RerankPipeline
from .results import AddSummary, PipelineResult, PipelineResults
from .store import DEFAULT_COLLECTION, TEXT_SUFFIXES, Retrieved

__all__ = [
    "DEFAULT_COLLECTION",
    "TEXT_SUFFIXES",
    "AddSummary",
    "PipelineResult",
    "PipelineResults",
    "RerankPipeline",
    "Retrieved",
]
