"""Measure what the reranker buys on a labelled dataset: retrieval order vs reranked order.

Load a dataset in BEIR layout (:func:`load_beir`), index its corpus in an embedded Chroma
collection, retrieve ``k`` candidates per query, rerank them with a :class:`~rag_rerank.Reranker`,
and score both orders with NDCG@10, MRR@10, Recall@``top_n`` and Recall@``k``, plus per-query
latency (p50/p95) of retrieval and of reranking (:func:`evaluate`).

The metrics come from `ir-measures <https://ir-measur.es>`_, which runs the reference
implementations (``trec_eval`` through pytrec_eval for NDCG and recall, the MS MARCO script for
MRR@10), so the numbers are the ones BEIR papers and leaderboards report. Needs the ``eval`` extra.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, InvalidInputTypeError, RerankError

if TYPE_CHECKING:
    from ..core import Reranker

__all__ = [
    "BeirDataset",
    "BeirDocument",
    "DatasetError",
    "EvaluationReport",
    "LatencySummary",
    "QueryRun",
    "RankingMetrics",
    "compute_metrics",
    "evaluate",
    "index_corpus",
    "load_beir",
    "per_query_metrics",
]

# Cutoffs fixed by the issue: NDCG and MRR are read at 10, the depth BEIR and MS MARCO report.
METRIC_DEPTH = 10


class DatasetError(RerankError, ValueError):
    """A dataset file is missing or malformed.

    Attributes:
        path: The file (or folder) at fault.
        line: 1-based line number in ``path``, or ``None`` when the whole file is at fault.
    """

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True, slots=True)
class BeirDocument:
    """One corpus entry.

    Attributes:
        doc_id: The BEIR ``_id``.
        title: The title (``""`` when the entry has none).
        text: The passage text.
    """

    doc_id: str
    title: str
    text: str

    @property
    def content(self) -> str:
        """Title and text joined by a space, as BEIR feeds them to its models (no title: text)."""
        return f"{self.title} {self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A BEIR-layout dataset, one split of it.

    Attributes:
        path: The dataset folder.
        split: The qrels split loaded (``qrels/<split>.tsv``).
        corpus: Documents by id, in file order.
        queries: Query texts by id: only the queries the split judges, in qrels order (as BEIR
            does).
        qrels: Relevance grades by query id, then document id. Grades are integers; ``>= 1`` is
            relevant (higher is more relevant), ``<= 0`` is judged not relevant.
    """

    path: Path
    split: str
    corpus: Mapping[str, BeirDocument]
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]

    @property
    def name(self) -> str:
        """The dataset folder's name."""
        return self.path.name


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Load a dataset in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

    ``corpus.jsonl`` lines are ``{"_id", "title" (optional), "text"}``; ``queries.jsonl`` lines are
    ``{"_id", "text"}``; other keys (``metadata``) are ignored. The qrels file has three
    tab-separated columns, ``query-id  corpus-id  score``, with an optional header line; scores are
    integer grades (graded relevance is kept). Blank lines are skipped.

    Args:
        path: The dataset folder.
        split: Which qrels file to load (``test``, ``dev``, ``train``...).

    Returns:
        The dataset, restricted to the queries the split judges.

    Raises:
        DatasetError: A file is missing, a line is not valid JSON or lacks a field, an id repeats,
            a grade is not an integer, or the qrels name a query or document that does not exist.
            The message names the file and the line.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(folder, "no such dataset folder")
    corpus_path = folder / "corpus.jsonl"
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path):
        if not required.is_file():
            raise DatasetError(required, "missing file (a BEIR dataset needs it)")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        known = ", ".join(splits) if splits else "none"
        raise DatasetError(
            qrels_path, f"missing file: no qrels for split {split!r} (found: {known})"
        )

    corpus: dict[str, BeirDocument] = {}
    for line, record, doc_id in _read_jsonl(corpus_path):
        title = record.get("title", "")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise DatasetError(corpus_path, f"'title' must be a string, got {_kind(title)}", line)
        text = _text_field(record, corpus_path, line)
        if not (title.strip() or text.strip()):
            raise DatasetError(corpus_path, f"document {doc_id!r} has neither title nor text", line)
        corpus[doc_id] = BeirDocument(doc_id, title, text)
    if not corpus:
        raise DatasetError(corpus_path, "the corpus has no documents")

    all_queries: dict[str, str] = {}
    for line, record, query_id in _read_jsonl(queries_path):
        text = _text_field(record, queries_path, line)
        if not text.strip():
            raise DatasetError(queries_path, f"query {query_id!r} has an empty 'text'", line)
        all_queries[query_id] = text

    qrels = _read_qrels(qrels_path, all_queries, corpus)
    queries = {query_id: all_queries[query_id] for query_id in qrels}
    return BeirDataset(folder, split, corpus, queries, qrels)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Yield (line number, record, id) for each non-blank line, checking JSON and ``_id``."""
    seen: dict[str, int] = {}
    for line, text in _text_lines(path):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"bad JSON: {exc.msg} (column {exc.colno})", line) from None
        if not isinstance(record, dict):
            raise DatasetError(path, f"expected a JSON object, got {_kind(record)}", line)
        raw_id = record.get("_id")
        # Some BEIR exports write numeric ids; the qrels hold them as text, so compare as text.
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not raw_id:
            raise DatasetError(path, "missing or empty '_id' (a non-empty string)", line)
        if raw_id in seen:
            raise DatasetError(
                path, f"duplicate _id {raw_id!r} (first on line {seen[raw_id]})", line
            )
        seen[raw_id] = line
        yield line, record, raw_id


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each non-blank line, checking it is UTF-8."""
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(path, f"not UTF-8 ({exc.reason})", line) from None
            if text.strip():
                yield line, text


def _text_field(record: Mapping[str, Any], path: Path, line: int) -> str:
    text = record.get("text")
    if not isinstance(text, str):
        raise DatasetError(path, f"missing 'text' (a string), got {_kind(text)}", line)
    return text


def _read_qrels(
    path: Path, queries: Mapping[str, str], corpus: Mapping[str, BeirDocument]
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    header_seen = False
    for line, text in _text_lines(path):
        columns = text.rstrip("\r\n").split("\t")
        if len(columns) != 3:
            raise DatasetError(
                path,
                f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                f"got {len(columns)}",
                line,
            )
        query_id, doc_id, grade_text = (c.strip() for c in columns)
        try:
            grade = int(grade_text)
        except ValueError:
            # BEIR files start with a header (query-id, corpus-id, score); a number there
            # is a bad grade, not a header.
            if not qrels and not header_seen and not _is_number(grade_text):
                header_seen = True
                continue
            raise DatasetError(
                path, f"score must be an integer grade, got {grade_text!r}", line
            ) from None
        if query_id not in queries:
            raise DatasetError(path, f"unknown query id {query_id!r} (not in queries.jsonl)", line)
        if doc_id not in corpus:
            raise DatasetError(path, f"unknown document id {doc_id!r} (not in corpus.jsonl)", line)
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged:
            raise DatasetError(path, f"query {query_id!r} judges document {doc_id!r} twice", line)
        judged[doc_id] = grade
    if not qrels:
        raise DatasetError(path, "no relevance judgements")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


# --------------------------------------------------------------------------- metrics


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
    ir_measures = _require("ir_measures")

    _check_cutoff(n, "n")
    _check_cutoff(k, "k")
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


def _check_cutoff(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputTypeError(name, f"expected int, got {type(value).__name__}")
    if value < 1:
        raise InvalidInputError(name, f"must be at least 1, got {value}")


# --------------------------------------------------------------------------- latency


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


# --------------------------------------------------------------------------- evaluation


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

    Each entry's text is :attr:`BeirDocument.content` (title and text).

    Args:
        dataset: The dataset whose corpus to index.
        client: A chromadb client (``chromadb.EphemeralClient()`` or ``PersistentClient(path)``).
        name: Collection name. An existing collection of that name is reused when it was built
            from the same ``corpus.jsonl`` with the same embedding function, else rebuilt.
            ``None``: a fresh, unique name (the caller deletes the collection when done).
        embedding_function: A chromadb embedding function; default
            :func:`rag_rerank.embeddings.default_embedding_function` (all-MiniLM-L6-v2).
        show_progress: Show a progress bar over the documents.

    Returns:
        ``(collection, reused)``: the collection and whether an existing one was reused.
    """
    from tqdm.auto import tqdm

    if embedding_function is None:
        from ..rag.embeddings import default_embedding_function

        embedding_function = default_embedding_function()
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
    collection = client.create_collection(
        name,
        embedding_function=embedding_function,
        metadata={_FINGERPRINT_KEY: fingerprint} if fingerprint else None,
    )
    documents = list(dataset.corpus.values())
    batch = min(256, client.get_max_batch_size())
    with tqdm(total=len(documents), desc="indexing", unit="doc", disable=not show_progress) as bar:
        for start in range(0, len(documents), batch):
            chunk = documents[start : start + batch]
            collection.add(ids=[d.doc_id for d in chunk], documents=[d.content for d in chunk])
            bar.update(len(chunk))
    return collection, False


_FINGERPRINT_KEY = "rag_rerank_fingerprint"


def evaluate(
    dataset: BeirDataset,
    reranker: Reranker,
    *,
    k: int = 50,
    top_n: int = 5,
    embedding_function: Any = None,
    persist_directory: str | Path | None = None,
    max_queries: int | None = None,
    show_progress: bool = True,
) -> EvaluationReport:
    """Retrieve ``k`` candidates per query from Chroma, rerank them, and score both orders.

    Queries run one at a time, each timed on its own (retrieval includes embedding the query).
    One untimed warm-up query goes first so that one-off start-up costs do not land in the
    percentiles. The reranker reorders all ``k`` candidates (no threshold), so Recall@k is the
    same for both orders and the other metrics show what reranking changes.

    Args:
        dataset: From :func:`load_beir`.
        reranker: The reranker to evaluate.
        k: Candidates to retrieve per query (default 50; capped at the corpus size).
        top_n: Cutoff of the first recall, the passages that would go to the LLM (default 5).
        embedding_function: A chromadb embedding function (default all-MiniLM-L6-v2).
        persist_directory: Keep the Chroma collection in this folder and reuse it on the next run
            while ``corpus.jsonl`` and the embedding function are unchanged (default: in memory,
            deleted at the end).
        max_queries: Evaluate only the first this many queries (default all).
        show_progress: Show progress bars (indexing, then queries).

    Returns:
        The report, with the metrics of both orders, the latencies and every query's rankings.

    Raises:
        InvalidInputError: ``k``, ``top_n`` or ``max_queries`` is below 1, or ``top_n > k``.
    """
    from tqdm.auto import tqdm

    _check_cutoff(k, "k")
    _check_cutoff(top_n, "top_n")
    if top_n > k:
        raise InvalidInputError("top_n", f"must not exceed k ({k}), got {top_n}")
    if max_queries is not None:
        _check_cutoff(max_queries, "max_queries")
    chromadb = _require("chromadb")
    query_ids = list(dataset.queries)[:max_queries]
    depth = min(k, len(dataset.corpus))

    if persist_directory is None:
        client = chromadb.EphemeralClient()
        name = None
    else:
        client = chromadb.PersistentClient(path=str(persist_directory))
        name = _collection_name(dataset.name)
    collection, reused = index_corpus(
        dataset,
        client,
        name=name,
        embedding_function=embedding_function,
        show_progress=show_progress,
    )
    try:
        _run_query(collection, reranker, dataset, query_ids[0], depth)  # warm-up, untimed
        runs = [
            _run_query(collection, reranker, dataset, query_id, depth)
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
        model=reranker.model_name,
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
    collection: Any, reranker: Reranker, dataset: BeirDataset, query_id: str, depth: int
) -> QueryRun:
    query = dataset.queries[query_id]
    start = time.perf_counter()
    found = collection.query(query_texts=[query], n_results=depth, include=[])
    retrieval_ms = (time.perf_counter() - start) * 1000.0
    retrieved = tuple(found["ids"][0])
    texts = [dataset.corpus[doc_id].content for doc_id in retrieved]
    start = time.perf_counter()
    results = reranker.rerank(query, texts)
    rerank_ms = (time.perf_counter() - start) * 1000.0
    return QueryRun(
        query_id=query_id,
        retrieved=retrieved,
        reranked=tuple(retrieved[r.index] for r in results),
        rerank_scores=tuple(r.score for r in results),
        retrieval_ms=retrieval_ms,
        rerank_ms=rerank_ms,
    )


def _require(module: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"evaluation needs {module}, from the 'eval' extra: pip install 'rag-rerank[eval]'"
        ) from exc


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
