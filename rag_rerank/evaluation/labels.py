"""Labelled (query, document, 0|1) pairs for calibration: from a JSONL file (:func:`load_labels`),
or from a BEIR-layout dataset whose qrels label ``k`` retrieved candidates per query
(:func:`labels_from_beir`), and the reranker's logits of them (:func:`pair_logits`)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..api import BaseReranker
from ..api.checks import find_lone_surrogate
from ..errors import CalibrationError

if TYPE_CHECKING:
    from .datasets import BeirDataset

__all__ = ["LabelledPair", "json_objects", "labels_from_beir", "load_labels", "pair_logits"]


def json_objects(
    text: str, fail: Callable[[str, int], Exception], expected: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each non-blank line of a JSON Lines ``text`` as an object, with its 1-based number.

    Lines end at ``\\n`` only: U+2028 and U+0085 are valid inside a JSON string.

    Raises:
        Exception: ``fail(message, number)`` for a line that is not JSON (``"not JSON: ..."``),
            nested too deeply, not an object (``expected``, which says what a line should hold),
            or with a lone surrogate in a string (the field named).
    """
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"not JSON: {exc.msg}", number) from None
        except RecursionError:
            raise fail("nested too deeply to read", number) from None
        if not isinstance(record, dict):
            raise fail(expected, number)
        where = find_lone_surrogate(record, "")
        if where is not None:
            raise fail(f"{where}: contains a lone surrogate (not valid Unicode text)", number)
        yield number, record


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """One judged pair: ``label`` is 1 (relevant) or 0."""

    query: str
    document: str
    label: int


def load_labels(path: str | os.PathLike[str]) -> list[LabelledPair]:
    """Read ``{"query": str, "document": str, "label": 0|1}`` lines (blank lines skipped).

    Raises:
        CalibrationError: The file cannot be read, a line is not a JSON object, a query or
            document is missing or empty, or a label is not 0 or 1 (file and line named); or the
            file has no labelled pair.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read the labels: {exc}", source) from None
    pairs: list[LabelledPair] = []
    expected = 'expected {"query", "document", "label"}'
    for number, record in json_objects(text, lambda m, n: CalibrationError(m, source, n), expected):
        for name in ("query", "document"):
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                raise CalibrationError(
                    f"{name!r} must be a non-empty string: a query needs a labelled document",
                    source,
                    number,
                )
        label = record.get("label")
        if isinstance(label, bool) or label not in (0, 1):
            raise CalibrationError(f"'label' must be 0 or 1, got {label!r}", source, number)
        pairs.append(LabelledPair(record["query"], record["document"], int(label)))
    if not pairs:
        raise CalibrationError("no labelled pairs in the file", source)
    return pairs


def labels_from_beir(
    dataset: BeirDataset,
    *,
    k: int = 50,
    max_queries: int | None = None,
    embedding_function: Any = None,
    show_progress: bool = True,
) -> list[LabelledPair]:
    """The ``k`` candidates retrieved per query from Chroma (as
    :func:`~rag_rerank.evaluation.evaluate` retrieves them), each labelled 1 when the qrels
    grade it >= 1, else 0 (unjudged candidates count as not relevant, as in BEIR).

    Queries whose qrels mark nothing relevant are left out with a warning: with no relevant
    labelled pair, their candidates are negatives only by default, not by judgement.

    Raises:
        CalibrationError: No query has a relevant document in the qrels (the file named).
    """
    from ..rag.store import open_client, retrieve
    from .runs import index_corpus

    qrels_path = dataset.path / "qrels" / f"{dataset.split}.tsv"
    query_ids = list(dataset.queries)[:max_queries]
    unjudged = [q for q in query_ids if not any(g >= 1 for g in dataset.qrels[q].values())]
    if unjudged:
        warnings.warn(
            f"{qrels_path}: left out {len(unjudged)} queries with no relevant document "
            f"({', '.join(unjudged[:5])}{', ...' if len(unjudged) > 5 else ''})",
            UserWarning,
            stacklevel=2,
        )
        query_ids = [q for q in query_ids if q not in set(unjudged)]
    if not query_ids:
        raise CalibrationError("no query has a relevant document in the qrels", qrels_path)
    client = open_client(None)
    collection, _ = index_corpus(
        dataset, client, embedding_function=embedding_function, show_progress=show_progress
    )
    try:
        pairs = []
        for query_id in query_ids:
            depth = min(k, len(dataset.corpus))
            retrieved = retrieve(collection, dataset.queries[query_id], depth, None)
            grades = dataset.qrels[query_id]
            for doc_id, document in zip(retrieved.ids, retrieved.documents, strict=True):
                label = int(grades.get(doc_id, 0) >= 1)
                pairs.append(LabelledPair(retrieved.query, document, label))
    finally:
        client.delete_collection(collection.name)
    return pairs


def pair_logits(reranker: BaseReranker, pairs: Sequence[LabelledPair]) -> np.ndarray:
    """The reranker's relevance logits (``raw_score``) of ``pairs``, in order, from one
    :meth:`~rag_rerank.api.BaseReranker.rerank_many` call (a local
    :class:`~rag_rerank.Reranker`, a :class:`~rag_rerank.RemoteReranker` or any subclass of
    :class:`~rag_rerank.api.BaseReranker`)."""
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.query, []).append(i)
    queries = list(groups)
    documents = [[pairs[i].document for i in groups[q]] for q in queries]
    ranked = reranker.rerank_many(queries, documents)
    logits = np.empty(len(pairs), dtype=np.float64)
    for query, results in zip(queries, ranked, strict=True):
        for result in results:
            logits[groups[query][result.index]] = result.raw_score
    return logits
