"""Measure what the reranker buys on a labelled dataset: retrieval order vs reranked order.

Load a dataset in BEIR layout (:func:`load_beir`, :mod:`.datasets`), index its corpus in a Chroma
collection, retrieve ``k`` candidates per query and rerank them through the RAG pipeline
(:func:`evaluate`, :mod:`.runs`), and score both orders with NDCG@10, MRR@10, Recall@``top_n`` and
Recall@``k``, plus per-query latency (p50/p95) of retrieval and of reranking (:mod:`.metrics`).
Fit a calibration of the reranker's scores and choose a threshold from labels
(:mod:`.calibration`, scikit-learn and matplotlib).

The metrics come from `ir-measures <https://ir-measur.es>`_, which runs the reference
implementations, so the numbers are the ones BEIR papers and leaderboards report. Needs the
``eval`` extra.

>>> from rag_rerank import Reranker
>>> from rag_rerank.evaluation import evaluate, load_beir
>>> dataset = load_beir("scifact", split="test")  # doctest: +SKIP
>>> report = evaluate(dataset, Reranker("BAAI/bge-reranker-v2-m3"), k=50, top_n=5)  # doctest: +SKIP
>>> print(report.table())  # doctest: +SKIP
"""

from .calibration import (
    CalibrationFit,
    LabelledPair,
    ThresholdRow,
    fit_calibration,
    labels_from_beir,
    load_labels,
    pair_logits,
    recommend_threshold,
    threshold_table,
)
from .datasets import BeirDataset, BeirDocument, DatasetError, load_beir
from .metrics import (
    METRIC_DEPTH,
    LatencySummary,
    RankingMetrics,
    compute_metrics,
    per_query_metrics,
)
from .runs import EvaluationReport, QueryRun, evaluate, index_corpus

__all__ = [
    "METRIC_DEPTH",
    "BeirDataset",
    "BeirDocument",
    "CalibrationFit",
    "DatasetError",
    "EvaluationReport",
    "LabelledPair",
    "LatencySummary",
    "QueryRun",
    "RankingMetrics",
    "ThresholdRow",
    "compute_metrics",
    "evaluate",
    "fit_calibration",
    "index_corpus",
    "labels_from_beir",
    "load_beir",
    "load_labels",
    "pair_logits",
    "per_query_metrics",
    "recommend_threshold",
    "threshold_table",
]
