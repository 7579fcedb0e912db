"""Ranking metrics (NDCG@10, MRR@10, Recall@n, Recall@k) and per-query latency summaries.

The metrics come from `ir-measures <https://ir-measur.es>`_, which runs the reference
implementations (``trec_eval`` through pytrec_eval for NDCG and recall, the MS MARCO script for
MRR@10), so the numbers are the ones BEIR papers and leaderboards report. Needs the ``eval`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api import check_positive_int
from ..errors import InvalidInputError, InvalidInputTypeError

__all__ = [
    "METRIC_DEPTH",
    "LatencySummary",
    "RankingMetrics",
    "compute_metrics",
    "per_query_metrics",
]

METRIC_DEPTH = 10
"""NDCG and MRR are read at 10, the depth BEIR and MS MARCO report."""


@dataclass(frozen=True, slots=True)
class RankingMetrics:
    """Metrics of one ranking, or their mean over queries.

    Attributes:
        ndcg_at_10: NDCG@10 with linear gains (the grade itself), as trec_eval and BEIR compute it.
        mrr_at_10: Reciprocal rank of the first relevant (grade >= 1) document in the top 10.
        recall_at_n: Share of the relevant documents found in the top ``n``.
        recall_at_k: Share of the relevant documents found in the top ``k``.
        n: The cutoff of ``recall_at_n`` (the top-n handed to the LLM).
        k: The cutoff of ``recall_at_k`` (the retrieval depth).
    """

    ndcg_at_10: float
    mrr_at_10: float
    recall_at_n: float
    recall_at_k: float
    n: int
    k: int

    def as_dict(self) -> dict[str, float]:
        """The values keyed by their usual names: ``NDCG@10``, ``MRR@10``, ``Recall@<n>``..."""
        return {
            "NDCG@10": self.ndcg_at_10,
            "MRR@10": self.mrr_at_10,
            f"Recall@{self.n}": self.recall_at_n,
            f"Recall@{self.k}": self.recall_at_k,
        }


_METRIC_NAMES = ("ndcg_at_10", "mrr_at_10", "recall_at_n", "recall_at_k")


def per_query_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    rankings: Mapping[str, Sequence[str]],
    *,
    n: int = 5,
    k: int = 50,
) -> dict[str, RankingMetrics]:
    """NDCG@10, MRR@10, Recall@n and Recall@k of each ranking.

    Args:
        qrels: Integer relevance grades by query id, then document id (``>= 1`` is relevant;
            ``0`` and negative grades count as not relevant, with no gain).
        rankings: Document ids by query id, best first. Every query must be in ``qrels``. An empty
            ranking scores 0; a query whose qrels mark nothing relevant scores 0 on every metric
            (as in trec_eval and BEIR).
        n: Cutoff of the first recall (default 5).
        k: Cutoff of the second recall (default 50): the retrieval depth.

    Returns:
        Metrics by query id, in the order of ``rankings``.

    Raises:
        InvalidInputError: ``n`` or ``k`` is below 1, a query is not in ``qrels``, or a ranking
            names a document twice.
        InvalidInputTypeError: A ranking is a bare string, a document id is not a string, or a
            grade is not an integer.
    """
    ir_measures = _ir_measures()

    check_positive_int(n, "n")
    check_positive_int(k, "k")
    # Recall@n and Recall@k are one measure when n == k: map each measure to every name it fills.
    names: dict[Any, list[str]] = {}
    for name, measure in (
        ("ndcg_at_10", ir_measures.nDCG @ METRIC_DEPTH),
        ("mrr_at_10", ir_measures.RR @ METRIC_DEPTH),
        ("recall_at_n", ir_measures.R @ n),
        ("recall_at_k", ir_measures.R @ k),
    ):
        names.setdefault(measure, []).append(name)
    run: dict[str, dict[str, float]] = {}
    for query_id, ranking in rankings.items():
        if query_id not in qrels:
            raise InvalidInputError(f"rankings[{query_id!r}]", "query is not in qrels")
        if isinstance(ranking, str):
            raise InvalidInputTypeError(
                f"rankings[{query_id!r}]", "expected a sequence of document ids, got a str"
            )
        for doc_id, grade in qrels[query_id].items():
            if isinstance(grade, bool) or not isinstance(grade, int):
                raise InvalidInputTypeError(
                    f"qrels[{query_id!r}][{doc_id!r}]",
                    f"expected an integer grade, got {type(grade).__name__}",
                )
        scores: dict[str, float] = {}
        for rank, doc_id in enumerate(ranking):
            if not isinstance(doc_id, str):
                raise InvalidInputTypeError(
                    f"rankings[{query_id!r}][{rank}]", f"expected str, got {type(doc_id).__name__}"
                )
            if doc_id in scores:
                raise InvalidInputError(
                    f"rankings[{query_id!r}][{rank}]", f"document {doc_id!r} is ranked twice"
                )
            # trec_eval re-sorts by score and breaks ties by id: distinct descending scores pin
            # the caller's order.
            scores[doc_id] = float(len(ranking) - rank)
        if scores:
            run[query_id] = scores
    # A query with an empty ranking, or that a provider leaves out, scores 0.
    values = {query_id: dict.fromkeys(_METRIC_NAMES, 0.0) for query_id in rankings}
    if run:
        judged = {query_id: dict(qrels[query_id]) for query_id in rankings}
        for metric in ir_measures.iter_calc(list(names), judged, run):
            if metric.query_id in values:
                for name in names[metric.measure]:
                    values[metric.query_id][name] = float(metric.value)
    return {query_id: RankingMetrics(**got, n=n, k=k) for query_id, got in values.items()}


def compute_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    rankings: Mapping[str, Sequence[str]],
    *,
    n: int = 5,
    k: int = 50,
) -> RankingMetrics:
    """The mean of :func:`per_query_metrics` over every query in ``rankings``.

    Args:
        qrels: Relevance grades by query id, then document id (``>= 1`` is relevant).
        rankings: Document ids by query id, best first; at least one query.
        n: Cutoff of the first recall (default 5).
        k: Cutoff of the second recall (default 50).

    Returns:
        The mean metrics. Queries with nothing relevant count, as zeros.

    Raises:
        InvalidInputError: ``rankings`` is empty, or see :func:`per_query_metrics`.
    """
    if not rankings:
        raise InvalidInputError("rankings", "no queries to evaluate")
    return _mean(list(per_query_metrics(qrels, rankings, n=n, k=k).values()), n=n, k=k)


def _mean(metrics: Sequence[RankingMetrics], *, n: int, k: int) -> RankingMetrics:
    count = len(metrics)
    return RankingMetrics(
        ndcg_at_10=sum(m.ndcg_at_10 for m in metrics) / count,
        mrr_at_10=sum(m.mrr_at_10 for m in metrics) / count,
        recall_at_n=sum(m.recall_at_n for m in metrics) / count,
        recall_at_k=sum(m.recall_at_k for m in metrics) / count,
        n=n,
        k=k,
    )


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Per-query latency in milliseconds (percentiles by linear interpolation, as numpy does).

    Attributes:
        p50_ms: Median.
        p95_ms: 95th percentile.
        mean_ms: Mean.
        count: Number of queries timed.
    """

    p50_ms: float
    p95_ms: float
    mean_ms: float
    count: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencySummary:
        """Summarise latencies given in milliseconds (at least one)."""
        import numpy as np

        if not samples_ms:
            raise InvalidInputError("samples_ms", "no latencies to summarise")
        values = np.asarray(samples_ms, dtype=np.float64)
        return cls(
            p50_ms=float(np.percentile(values, 50)),
            p95_ms=float(np.percentile(values, 95)),
            mean_ms=float(values.mean()),
            count=len(values),
        )

    def as_dict(self) -> dict[str, float]:
        """``{"p50_ms", "p95_ms", "mean_ms", "count"}``."""
        return {
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "mean_ms": self.mean_ms,
            "count": self.count,
        }


def _ir_measures() -> Any:
    """Import ir-measures, or say which extra installs it."""
    try:
        import ir_measures
    except ImportError as exc:
        raise ImportError(
            "evaluation needs ir-measures, from the 'eval' extra: pip install 'rag-rerank[eval]'"
        ) from exc
    return ir_measures
