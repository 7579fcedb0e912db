"""rag-rerank: fast cross-encoder reranking for retrieval-augmented generation.

>>> from rag_rerank import Reranker
>>> rr = Reranker("BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
>>> rr.rerank("what is a panda?", documents, top_n=5, threshold=0.5)  # doctest: +SKIP

Importing the package is light: the contract (:class:`RerankResult`, :class:`RerankerOptions`,
:class:`RerankerLike`) and the errors load at once; :class:`Reranker` (torch, transformers),
:class:`RemoteReranker` (httpx) and :class:`RerankPipeline` (chromadb) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .api import (
    DEFAULT_MODEL,
    Health,
    PruneOptions,
    RerankerLike,
    RerankerOptions,
    RerankerStats,
    RerankResult,
    ServerOptions,
)
from .errors import (
    CalibrationError,
    EngineStalledError,
    EngineStoppedError,
    InvalidInputError,
    InvalidInputTypeError,
    ModelLoadError,
    NonFiniteScoreError,
    OverloadedError,
    RemoteRerankError,
    RerankError,
)

if TYPE_CHECKING:
    from .client import RemoteReranker
    from .core import Reranker
    from .rag import PipelineResult, PipelineResults, RerankPipeline

__version__ = "0.1.0"

# Exports whose modules import heavy dependencies: loaded on first attribute access (PEP 562).
_LAZY = {
    "Reranker": ".core",
    "RemoteReranker": ".client",
    "RerankPipeline": ".rag",
    "PipelineResult": ".rag",
    "PipelineResults": ".rag",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_MODEL",
    "CalibrationError",
    "EngineStalledError",
    "EngineStoppedError",
    "Health",
    "InvalidInputError",
    "InvalidInputTypeError",
    "ModelLoadError",
    "NonFiniteScoreError",
    "OverloadedError",
    "PipelineResult",
    "PipelineResults",
    "PruneOptions",
    "RemoteRerankError",
    "RemoteReranker",
    "RerankError",
    "RerankPipeline",
    "RerankResult",
    "Reranker",
    "RerankerLike",
    "RerankerOptions",
    "RerankerStats",
    "ServerOptions",
    "__version__",
]
