"""Runs on a dataset: index its corpus in Chroma, retrieve and rerank every query through the
RAG pipeline's own store and retrieve -> rerank path, and report both orders.

>>> from rag_rerank import Reranker
>>> from rag_rerank.evaluation import evaluate, load_beir
>>> dataset = load_beir("scifact", split="test")  # doctest: +SKIP
>>> report = evaluate(dataset, Reranker("BAAI/bge-reranker-v2-m3"), k=50, top_n=5)  # doctest: +SKIP
>>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import RerankerLike, check_positive_int
from ..errors import InvalidInputError, InvalidInputTypeError
from ..rag.pipeline import RerankPipeline
from ..rag.store import open_client, open_collection, resolve_embedding_function, write_chunks
from .datasets import BeirDataset
from .metrics import LatencySummary, RankingMetrics, compute_metrics

__all__ = ["EvaluationReport", "QueryRun", "evaluate", "index_corpus"]

_FINGERPRINT_KEY = "rag_rerank_fingerprint"


@dataclass(frozen=True, slots=True)
class QueryRun:
    """What happened to one query.

    Attributes:
        query_id: The BEIR query id.
        retrieved: Document ids in retrieval order (nearest first), ``k`` of them at most.
        reranked: The same ids in the reranker's order (best first).
        rerank_scores: The reranker's scores in [0, 1], aligned with ``reranked``.
        retrieval_ms: Time to embed the query and search the collection.
        rerank_ms: Time to rerank the retrieved documents.
    """

    query_id: str
    retrieved: tuple[str, ...]
    reranked: tuple[str, ...]
    rerank_scores: tuple[float, ...]
    retrieval_ms: float
    rerank_ms: float


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Retrieval order vs reranked order on one dataset split.

    Attributes:
        dataset: The dataset folder's name.
        split: The qrels split.
        model: The reranker's model name.
        k: Candidates retrieved per query (fewer when the corpus is smaller).
        top_n: The cutoff of the first recall: how many passages would go to the LLM.
        num_documents: Documents indexed.
        num_queries: Queries evaluated.
        queries_without_relevant: Evaluated queries whose qrels mark nothing relevant (they score
            0 in both orders).
        retrieval: Mean metrics of the retrieval order.
        reranked: Mean metrics of the reranked order.
        retrieval_latency: Per-query retrieval latency.
        rerank_latency: Per-query reranking latency.
        runs: One :class:`QueryRun` per evaluated query, in qrels order.
        index_reused: Whether a persisted Chroma collection was reused instead of rebuilt.
    """

    dataset: str
    split: str
    model: str
    k: int
    top_n: int
    num_documents: int
    num_queries: int
    queries_without_relevant: int
    retrieval: RankingMetrics
    reranked: RankingMetrics
    retrieval_latency: LatencySummary
    rerank_latency: LatencySummary
    runs: tuple[QueryRun, ...] = field(repr=False)
    index_reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (per-query rankings left out; they are in ``runs``)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "model": self.model,
            "k": self.k,
            "top_n": self.top_n,
            "num_documents": self.num_documents,
            "num_queries": self.num_queries,
            "queries_without_relevant": self.queries_without_relevant,
            "metrics": {
                "retrieval": self.retrieval.as_dict(),
                "reranked": self.reranked.as_dict(),
            },
            "latency": {
                "retrieval": self.retrieval_latency.as_dict(),
                "reranking": self.rerank_latency.as_dict(),
            },
        }

    def table(self) -> str:
        """A plain-text before/after table of the metrics and the latencies."""
        before, after = self.retrieval.as_dict(), self.reranked.as_dict()
        lines = [
            f"{'metric':<12}{'retrieval':>11}{'reranked':>11}{'change':>10}",
            *(
                f"{name:<12}{before[name]:>11.4f}{after[name]:>11.4f}"
                f"{after[name] - before[name]:>+10.4f}"
                for name in before
            ),
            "",
            f"{'latency/query':<14}{'p50 ms':>9}{'p95 ms':>9}",
            f"{'retrieval':<14}{self.retrieval_latency.p50_ms:>9.1f}"
            f"{self.retrieval_latency.p95_ms:>9.1f}",
            f"{'reranking':<14}{self.rerank_latency.p50_ms:>9.1f}"
            f"{self.rerank_latency.p95_ms:>9.1f}",
        ]
        return "\n".join(lines)


def index_corpus(
    dataset: BeirDataset,
    client: Any,
    *,
    name: str | None = None,
    embedding_function: Any = None,
    show_progress: bool = True,
) -> tuple[Any, bool]:
    """Index the corpus in a Chroma collection: one entry per document, id = the BEIR id.

    Each entry's text is :attr:`BeirDocument.content` (title and text), written through the RAG
    store (:func:`rag_rerank.rag.store.write_chunks`).

    Args:
        dataset: The dataset whose corpus to index.
        client: A chromadb client (:func:`rag_rerank.rag.store.open_client`, or
            ``chromadb.EphemeralClient()`` / ``PersistentClient(path)``).
        name: Collection name. An existing collection of that name is reused when it was built
            from the same ``corpus.jsonl`` with the same embedding function, else rebuilt.
            ``None`` (default): a fresh, unique name (the caller deletes the collection when done).
        embedding_function: A chromadb embedding function; default
            :func:`rag_rerank.rag.embeddings.default_embedding_function` (all-MiniLM-L6-v2).
        show_progress: Show a progress bar over the documents (default on).

    Returns:
        ``(collection, reused)``: the collection and whether an existing one was reused.
    """
    embedding_function = resolve_embedding_function(embedding_function)
    # Hashing the corpus is only worth it for a collection that may be reused.
    fingerprint = "" if name is None else _fingerprint(dataset, embedding_function)
    if name is None:
        # Ephemeral clients share one in-memory store per process: a unique name avoids clashes.
        name = f"beir-{uuid.uuid4().hex}"
    elif name in {c.name for c in client.list_collections()}:
        try:
            existing = client.get_collection(name, embedding_function=embedding_function)
        except Exception:  # stored with a conflicting embedding config: rebuild
            existing = None
        if (
            existing is not None
            and (existing.metadata or {}).get(_FINGERPRINT_KEY) == fingerprint
            and existing.count() == len(dataset.corpus)
        ):
            return existing, True
        client.delete_collection(name)
    collection = open_collection(
        client,
        name,
        embedding_function,
        metadata={_FINGERPRINT_KEY: fingerprint} if fingerprint else None,
    )
    rows = [(d.doc_id, d.content, None) for d in dataset.corpus.values()]
    write_chunks(collection, rows, show_progress=show_progress, desc="indexing", unit="doc")
    return collection, False


def evaluate(
    dataset: BeirDataset,
    reranker: RerankerLike,
    *,
    k: int = 50,
    top_n: int = 5,
    embedding_function: Any = None,
    persist_directory: str | Path | None = None,
    max_queries: int | None = None,
    show_progress: bool = True,
) -> EvaluationReport:
    """Retrieve ``k`` candidates per query from Chroma, rerank them, and score both orders.

    Retrieval and reranking are :meth:`RerankPipeline.retrieve
    <rag_rerank.rag.RerankPipeline.retrieve>` and :meth:`RerankPipeline.rerank
    <rag_rerank.rag.RerankPipeline.rerank>` over the indexed collection, so the numbers describe
    the pipeline users run. Queries run one at a time, each timed on its own (retrieval includes
    embedding the query). One untimed warm-up query goes first so that one-off start-up costs do
    not land in the percentiles. The reranker reorders all ``k`` candidates (no threshold), so
    Recall@k is the same for both orders and the other metrics show what reranking changes.

    Args:
        dataset: From :func:`load_beir`.
        reranker: The reranker to evaluate: anything satisfying :class:`~rag_rerank.RerankerLike`
            (a :class:`~rag_rerank.Reranker`, a :class:`~rag_rerank.RemoteReranker`...).
        k: Candidates to retrieve per query (default 50; capped at the corpus size).
        top_n: Cutoff of the first recall, the passages that would go to the LLM (default 5).
        embedding_function: A chromadb embedding function (default all-MiniLM-L6-v2).
        persist_directory: Keep the Chroma collection in this folder and reuse it on the next run
            while ``corpus.jsonl`` and the embedding function are unchanged (default: in memory,
            deleted at the end).
        max_queries: Evaluate only the first this many queries (default all).
        show_progress: Show progress bars (indexing, then queries; default on).

    Returns:
        The report, with the metrics of both orders, the latencies and every query's rankings.

    Raises:
        InvalidInputError: ``k``, ``top_n`` or ``max_queries`` is not an integer >= 1, or
            ``top_n > k``.
        InvalidInputTypeError: ``reranker`` does not satisfy :class:`~rag_rerank.RerankerLike`.
    """
    from tqdm.auto import tqdm

    check_positive_int(k, "k")
    check_positive_int(top_n, "top_n")
    if top_n > k:
        raise InvalidInputError("top_n", f"must not exceed k ({k}), got {top_n}")
    check_positive_int(max_queries, "max_queries", optional=True)
    if not isinstance(reranker, RerankerLike):
        raise InvalidInputTypeError(
            "reranker", f"must satisfy rag_rerank.RerankerLike, got {type(reranker).__name__}"
        )
    query_ids = list(dataset.queries)[:max_queries]
    depth = min(k, len(dataset.corpus))

    client = open_client(persist_directory)
    name = None if persist_directory is None else _collection_name(dataset.name)
    collection, reused = index_corpus(
        dataset,
        client,
        name=name,
        embedding_function=embedding_function,
        show_progress=show_progress,
    )
    try:
        pipeline = RerankPipeline(collection=collection, reranker=reranker)
        _run_query(pipeline, dataset, query_ids[0], depth)  # warm-up, untimed
        runs = [
            _run_query(pipeline, dataset, query_id, depth)
            for query_id in tqdm(query_ids, desc="queries", unit="query", disable=not show_progress)
        ]
    finally:
        if persist_directory is None:
            client.delete_collection(collection.name)  # free the in-memory store

    qrels = {query_id: dataset.qrels[query_id] for query_id in query_ids}
    retrieval = compute_metrics(qrels, {r.query_id: r.retrieved for r in runs}, n=top_n, k=k)
    reranked = compute_metrics(qrels, {r.query_id: r.reranked for r in runs}, n=top_n, k=k)
    return EvaluationReport(
        dataset=dataset.name,
        split=dataset.split,
        model=str(getattr(reranker, "model_name", type(reranker).__name__)),
        k=k,
        top_n=top_n,
        num_documents=len(dataset.corpus),
        num_queries=len(runs),
        queries_without_relevant=sum(
            1 for query_id in query_ids if not any(g >= 1 for g in qrels[query_id].values())
        ),
        retrieval=retrieval,
        reranked=reranked,
        retrieval_latency=LatencySummary.from_samples([r.retrieval_ms for r in runs]),
        rerank_latency=LatencySummary.from_samples([r.rerank_ms for r in runs]),
        runs=tuple(runs),
        index_reused=reused,
    )


def _run_query(
    pipeline: RerankPipeline, dataset: BeirDataset, query_id: str, depth: int
) -> QueryRun:
    query = dataset.queries[query_id]
    start = time.perf_counter()
    retrieved = pipeline.retrieve(query, depth)
    retrieval_ms = (time.perf_counter() - start) * 1000.0
    start = time.perf_counter()
    results = pipeline.rerank(retrieved, top_n=None)
    rerank_ms = (time.perf_counter() - start) * 1000.0
    return QueryRun(
        query_id=query_id,
        retrieved=retrieved.ids,
        reranked=tuple(c.id for c in results.candidates),
        rerank_scores=tuple(c.score for c in results.candidates),
        retrieval_ms=retrieval_ms,
        rerank_ms=rerank_ms,
    )


def _collection_name(dataset_name: str) -> str:
    # Chroma names: 3-512 characters of [a-zA-Z0-9._-], starting and ending alphanumeric.
    cleaned = re.sub(r"[^a-zA-Z0-9._-]+", "-", dataset_name).strip("._-")[:400]
    return f"beir-{cleaned or 'dataset'}"


def _fingerprint(dataset: BeirDataset, embedding_function: Any) -> str:
    digest = hashlib.sha256()
    with (dataset.path / "corpus.jsonl").open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    try:
        config = json.dumps(
            [embedding_function.name(), embedding_function.get_config()], sort_keys=True
        )
    except Exception:  # a custom function without a config: its class name
        config = type(embedding_function).__qualname__
    digest.update(config.encode())
    return digest.hexdigest()
