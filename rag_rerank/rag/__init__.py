"""Retrieval-augmented generation around the reranker: document splitting, a Chroma store with
an offline embedding model, and :class:`RerankPipeline` (retrieve ``k``, rerank, keep ``top_n``).

Needs the ``chroma`` extra (``pip install "rag-rerank[chroma]"``). The pipeline's names load on
first use (PEP 562), so ``rag_rerank.rag.splitting`` (pure string functions) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import PipelineResult, PipelineResults, RerankPipeline

__all__ = ["PipelineResult", "PipelineResults", "RerankPipeline"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".pipeline", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
