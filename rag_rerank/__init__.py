"""rag-rerank: fast cross-encoder reranking for retrieval-augmented generation.

>>> from rag_rerank import Reranker
>>> rr = Reranker("BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
>>> rr.rerank("what is a panda?", documents, top_n=5, threshold=0.5)  # doctest: +SKIP
"""

from .errors import (
    EngineStoppedError,
    InvalidInputError,
    InvalidInputTypeError,
    ModelLoadError,
    NonFiniteScoreError,
    OverloadedError,
    RerankError,
)
from .model import DEFAULT_MODEL
from .pipeline import PipelineResult, PipelineResults, RerankPipeline
from .reranker import Reranker
from .types import RerankResult

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # RemoteReranker needs httpx (the "server" extra): imported on first use, not with rag_rerank.
    if name == "RemoteReranker":
        from .client import RemoteReranker

        return RemoteReranker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "EngineStoppedError",
    "InvalidInputError",
    "InvalidInputTypeError",
    "ModelLoadError",
    "NonFiniteScoreError",
    "OverloadedError",
    "PipelineResult",
    "PipelineResults",
    "RemoteReranker",
    "RerankError",
    "RerankPipeline",
    "RerankResult",
    "Reranker",
    "__version__",
]
