"""Several queries in one call: their documents flattened into one list of pairs (one scoring
call), the logits split back and ranked per query, and one pruning job for every query's
results. The pieces :meth:`~rag_rerank.api.BaseReranker.rerank_many` is made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidInputError, InvalidInputTypeError
from .checks import check_documents, check_query
from .pruning import PruneJob, PruneOptions
from .results import RerankResult, select

if TYPE_CHECKING:
    from .calibration import Calibration

__all__ = ["flatten_queries", "prune_job_of_many", "split_select", "unflat_like"]


def flatten_queries(
    queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
) -> tuple[list[str], list[str], list[int]]:
    """``(queries, documents, bounds)``: one (query, document) pair per document of every query,
    checked (errors name ``queries[i]`` / ``documents_per_query[i][j]``); query ``i``'s pairs are
    ``bounds[i]:bounds[i + 1]``."""
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise InvalidInputTypeError("queries", "expected a list of query strings")
    if isinstance(documents_per_query, str) or not isinstance(documents_per_query, Sequence):
        raise InvalidInputTypeError("documents_per_query", "expected a list of document lists")
    if len(queries) != len(documents_per_query):
        raise InvalidInputError(
            "documents_per_query",
            f"has {len(documents_per_query)} lists for {len(queries)} queries",
        )
    flat_queries: list[str] = []
    flat_docs: list[str] = []
    bounds = [0]
    for i, (query, documents) in enumerate(zip(queries, documents_per_query, strict=True)):
        check_query(query, f"queries[{i}]")
        docs = check_documents(documents, f"documents_per_query[{i}]")
        flat_queries.extend([query] * len(docs))
        flat_docs.extend(docs)
        bounds.append(len(flat_docs))
    return flat_queries, flat_docs, bounds


def split_select(
    logits: np.ndarray,
    documents_per_query: Sequence[Sequence[str]],
    bounds: list[int],
    top_n: int | None,
    threshold: float | None,
    calibration: Calibration | None,
) -> list[list[RerankResult]]:
    """The flat ``logits`` of :func:`flatten_queries` ranked per query (:func:`select`)."""
    return [
        select(logits[start:end], documents, top_n, threshold, calibration)
        for documents, start, end in zip(documents_per_query, bounds[:-1], bounds[1:], strict=True)
    ]


def prune_job_of_many(
    queries: Sequence[str], ranked: list[list[RerankResult]], options: PruneOptions
) -> tuple[PruneJob, list[RerankResult]]:
    """One job for every query's results, each result pruned against its own query, and the
    results it was made of, flat (to pass to :meth:`PruneJob.apply`)."""
    per_result = [query for query, results in zip(queries, ranked, strict=True) for _ in results]
    flat = [result for results in ranked for result in results]
    return PruneJob.of(per_result, flat, options), flat


def unflat_like(
    flat: list[RerankResult], like: list[list[RerankResult]]
) -> list[list[RerankResult]]:
    """``flat`` cut back into lists as long as those of ``like``."""
    out, at = [], 0
    for results in like:
        out.append(flat[at : at + len(results)])
        at += len(results)
    return out
