"""The reranking contract, free of torch: results, the reranker protocol, options and input checks.

Everything that talks to a reranker (the local :class:`~rag_rerank.Reranker`, the HTTP
:class:`~rag_rerank.RemoteReranker`, the RAG pipeline, the server, the LangChain and LlamaIndex
packages) uses these definitions, each written once here. Importing this module loads numpy and
the standard library only.
"""

from .calibration import CALIBRATED, CALIBRATION_METHODS, Calibration, CalibrationMethod
from .checks import (
    check_documents,
    check_pairs,
    check_positive_int,
    check_query,
    check_reranker,
    check_selection,
    check_selection_field,
)
from .options import (
    CLEAN_MODES,
    DEFAULT_MODEL,
    LONG_DOCUMENTS,
    CleanMode,
    LongDocuments,
    RerankerOptions,
    options_from,
    split_options,
)
from .protocol import BaseReranker, RerankerLike
from .results import (
    CacheStats,
    Health,
    RerankerStats,
    RerankResult,
    resolve_threshold,
    scores_of,
    select,
    sigmoid,
)

__all__ = [
    "CALIBRATED",
    "CALIBRATION_METHODS",
    "CLEAN_MODES",
    "DEFAULT_MODEL",
    "LONG_DOCUMENTS",
    "BaseReranker",
    "CacheStats",
    "Calibration",
    "CalibrationMethod",
    "CleanMode",
    "Health",
    "LongDocuments",
    "RerankResult",
    "RerankerLike",
    "RerankerOptions",
    "RerankerStats",
    "check_documents",
    "check_pairs",
    "check_positive_int",
    "check_query",
    "check_reranker",
    "check_selection",
    "check_selection_field",
    "options_from",
    "resolve_threshold",
    "scores_of",
    "select",
    "sigmoid",
    "split_options",
]
