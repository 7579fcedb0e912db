"""The reranking contract, free of torch: results, the reranker protocol, options, input checks,
and what the LLM reads (sentence pruning, the token budget, the order).

Everything that talks to a reranker (the local :class:`~rag_rerank.Reranker`, the HTTP
:class:`~rag_rerank.RemoteReranker`, the RAG pipeline, the server, the LangChain and LlamaIndex
packages) uses these definitions, each written once here. Importing this module loads numpy and
the standard library only.
"""

from .calibration import CALIBRATED, CALIBRATION_METHODS, Calibration, CalibrationMethod
from .checks import (
    check_documents,
    check_int,
    check_pairs,
    check_positive_int,
    check_positive_number,
    check_query,
    check_reranker,
    check_selection,
    check_selection_field,
)
from .context import (
    CONTEXT_ORDERS,
    ContextBudget,
    ContextOrder,
    TokenCounter,
    approximate_tokens,
    edges_order,
    token_counter,
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
from .protocol import BaseReranker, RerankerLike, context_request
from .pruning import (
    MAX_SENTENCE_CHARS,
    PruneJob,
    PruneOptions,
    Span,
    join_sentences,
    prune_options,
    select_sentences,
    split_sentences,
)
from .results import (
    CacheStats,
    Health,
    RerankerStats,
    RerankResult,
    cut_ranked,
    resolve_threshold,
    scores_of,
    select,
    sigmoid,
)
from .serving import ServerOptions
from .training import LOSSES, Loss, TrainingOptions

__all__ = [
    "CALIBRATED",
    "CALIBRATION_METHODS",
    "CLEAN_MODES",
    "CONTEXT_ORDERS",
    "DEFAULT_MODEL",
    "LONG_DOCUMENTS",
    "LOSSES",
    "MAX_SENTENCE_CHARS",
    "BaseReranker",
    "CacheStats",
    "Calibration",
    "CalibrationMethod",
    "CleanMode",
    "ContextBudget",
    "ContextOrder",
    "Health",
    "LongDocuments",
    "Loss",
    "PruneJob",
    "PruneOptions",
    "RerankResult",
    "RerankerLike",
    "RerankerOptions",
    "RerankerStats",
    "ServerOptions",
    "Span",
    "TokenCounter",
    "TrainingOptions",
    "approximate_tokens",
    "check_documents",
    "check_int",
    "check_pairs",
    "check_positive_int",
    "check_positive_number",
    "check_query",
    "check_reranker",
    "check_selection",
    "check_selection_field",
    "context_request",
    "cut_ranked",
    "edges_order",
    "join_sentences",
    "options_from",
    "prune_options",
    "resolve_threshold",
    "scores_of",
    "select",
    "select_sentences",
    "sigmoid",
    "split_options",
    "split_sentences",
    "token_counter",
]
