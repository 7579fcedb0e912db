"""Batch reranking on Ray Data: scores for every row of a Dataset, one model load per worker."""

from __future__ import annotations

from typing import Any

from ..api import RerankerOptions
from ..api.checks import check_positive_int
from ..errors import InvalidInputError
from .runtime import ray

__all__ = ["rerank_dataset"]

_BATCH_ROWS = 256


class _Scorer:
    """The stateful ``map_batches`` worker: loads the model once, then scores batch after batch.

    Each batch's pairs go to the engine together, so they are cut into token-budget batches in
    length order; the scores come back in row order.
    """

    def __init__(
        self,
        options: dict[str, Any],
        query_column: str,
        documents_column: str | None,
        document_column: str | None,
        top_n: int | None,
    ) -> None:
        from ..core import Reranker

        self.reranker = Reranker(RerankerOptions(**options))
        self.query_column = query_column
        self.documents_column = documents_column
        self.document_column = document_column
        self.top_n = top_n

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        queries = batch.column(self.query_column).to_pylist()
        if self.document_column is not None:
            documents = batch.column(self.document_column).to_pylist()
            pair_scores = self.reranker.score_pairs(list(zip(queries, documents, strict=True)))
            return batch.append_column("score", pa.array(pair_scores, pa.float64()))
        assert self.documents_column is not None
        lists = [list(d or []) for d in batch.column(self.documents_column).to_pylist()]
        ranked = self.reranker.rerank_many(queries, lists)
        scores: list[list[float]] = []
        for results in ranked:
            aligned = [0.0] * len(results)
            for r in results:
                aligned[r.index] = r.score
            scores.append(aligned)
        batch = batch.append_column("scores", pa.array(scores, pa.list_(pa.float64())))
        if self.top_n is not None:
            kept = [results[: self.top_n] for results in ranked]
            top_docs = [[r.document for r in k] for k in kept]
            top_indices = [[r.index for r in k] for k in kept]
            batch = batch.append_column("top_documents", pa.array(top_docs, pa.list_(pa.string())))
            batch = batch.append_column("top_indices", pa.array(top_indices, pa.list_(pa.int64())))
        return batch


def rerank_dataset(
    ds: ray.data.Dataset,
    model: str | None = None,
    *,
    query_column: str = "query",
    documents_column: str | None = None,
    document_column: str | None = None,
    top_n: int | None = None,
    concurrency: int = 1,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    batch_rows: int = _BATCH_ROWS,
    options: RerankerOptions | None = None,
    **reranker_options: Any,
) -> ray.data.Dataset:
    """Scores for every row of ``ds``, computed by ``concurrency`` workers (lazy, like any
    Dataset transform).

    Rows are either ``{query, documents: [...]}`` (``documents_column``): each output row gains
    ``"scores"``, a list aligned with its documents; or ``{query, document}``
    (``document_column``): each gains ``"score"``. Scores are in [0, 1], the same as
    :meth:`Reranker.score <rag_rerank.Reranker.score>` on the same model. Every input column is
    kept.

    Args:
        ds: The dataset.
        model: Hub id or folder of the cross-encoder (every node must reach it); default
            ``options.model``.
        query_column: Column of query strings.
        documents_column: Column of document lists (give this or ``document_column``).
        document_column: Column of single documents.
        top_n: With ``documents_column``: also add ``"top_documents"`` (the best ``top_n``,
            best first) and ``"top_indices"`` (their positions in the row's list).
        concurrency: Workers, each with its own model.
        gpus_per_worker: GPUs each worker reserves (fractions allowed).
        cpus_per_worker: CPUs each worker reserves (fractions allowed).
        batch_rows: Rows handed to a worker at once (their pairs share token-budget batches).
        options: Reranker options; ``model`` and ``reranker_options`` are applied over them.
        **reranker_options: Any :class:`~rag_rerank.RerankerOptions` field (``dtype="fp32"``).

    Raises:
        InvalidInputError: A bad column choice, count or option (``field`` names it).

    Example:
        >>> ds = ray.data.read_parquet("pairs.parquet")  # doctest: +SKIP
        >>> scored = rerank_dataset(ds, "BAAI/bge-reranker-v2-m3", document_column="passage",
        ...                         concurrency=4, gpus_per_worker=1.0)  # doctest: +SKIP
    """
    if (documents_column is None) == (document_column is None):
        raise InvalidInputError(
            "documents_column", "give documents_column or document_column (exactly one)"
        )
    if top_n is not None and document_column is not None:
        raise InvalidInputError("top_n", "needs documents_column (rows with a list of documents)")
    check_positive_int(top_n, "top_n", optional=True)
    check_positive_int(concurrency, "concurrency")
    check_positive_int(batch_rows, "batch_rows")
    for name, value in (("gpus_per_worker", gpus_per_worker), ("cpus_per_worker", cpus_per_worker)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InvalidInputError(name, f"must be a number >= 0, got {value!r}")
    if model is not None:
        reranker_options["model"] = model
    resolved = RerankerOptions.from_kwargs(options, **reranker_options)
    return ds.map_batches(
        _Scorer,
        fn_constructor_kwargs={
            "options": resolved.to_dict(),
            "query_column": query_column,
            "documents_column": documents_column,
            "document_column": document_column,
            "top_n": top_n,
        },
        batch_format="pyarrow",
        batch_size=batch_rows,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_gpus=gpus_per_worker,
        num_cpus=cpus_per_worker,
    )
