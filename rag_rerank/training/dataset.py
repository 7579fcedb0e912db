"""Training rows: queries with their positive and negatives, from the corpus or a labels file,
scored by a teacher when distilling; and the vector store that finds the hard negatives."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..api.training import TrainingOptions
from ..errors import CalibrationError, TrainingError
from .pairs import TrainingQuery, make_queries, pick_negatives, split_held_out

__all__ = ["PassageStore", "TrainingData", "build_training_data", "labelled_queries"]

_ADD_BATCH = 256
_TIE_WINDOW = 64  # extra results fetched so that ties at the k-th place are all seen


class PassageStore:
    """The passages in an in-memory Chroma collection, embedded with the pipeline's embedding
    function: :meth:`nearest` is the vector store's order, for hard negatives and the baseline."""

    def __init__(self, passages: Sequence[str], embedding_function: Any = None) -> None:
        from ..rag.store import open_client, open_collection

        self.passages = list(passages)
        self._client = open_client(None)
        self._name = f"rag_rerank_train_{id(self):x}"
        self._collection = open_collection(self._client, self._name, embedding_function)
        for start in range(0, len(self.passages), _ADD_BATCH):
            chunk = self.passages[start : start + _ADD_BATCH]
            ids = [str(start + i) for i in range(len(chunk))]
            self._collection.add(ids=ids, documents=chunk)

    def nearest(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """For each query, the indices of its ``k`` nearest passages, nearest first; passages at
        the same distance in passage order, so that the same seed gives the same negatives (the
        index alone breaks ties arbitrarily, differently from one build to the next)."""
        k = min(k, len(self.passages))
        window = min(len(self.passages), max(4 * k, k + _TIE_WINDOW))
        out: list[list[int]] = []
        for start in range(0, len(queries), _ADD_BATCH):
            found = self._collection.query(
                query_texts=list(queries[start : start + _ADD_BATCH]),
                n_results=window,
                include=["distances"],
            )
            for ids, distances in zip(found["ids"], found["distances"], strict=True):
                ranked = sorted(zip((round(d, 6) for d in distances), map(int, ids), strict=True))
                out.append([i for _, i in ranked[:k]])
        return out

    def close(self) -> None:
        """Drop the collection."""
        self._client.delete_collection(self._name)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What training reads and what the evaluation holds out.

    Attributes:
        columns: The dataset's columns (``query``, ``document``/``positive``/``negative``,
            ``label``), as sentence-transformers' cross-encoder losses take them.
        train_queries: Queries trained on.
        held_out: Queries kept for the evaluation, never trained on.
        relevant: For each held-out query (by position), the indices of its relevant passages.
    """

    columns: dict[str, list[Any]]
    train_queries: list[TrainingQuery]
    held_out: list[TrainingQuery]
    relevant: list[set[int]]


def labelled_queries(
    path: str | os.PathLike[str], passages: list[str]
) -> tuple[list[TrainingQuery], dict[int, set[int]], dict[int, set[int]]]:
    """The queries of a labels file (``{"query", "document", "label"}`` lines, the calibration
    format), each with its first relevant document as positive. Labelled documents are appended
    to ``passages`` when not there yet.

    Returns:
        ``(queries, relevant, judged_negatives)``: both maps are by query position.

    Raises:
        TrainingError: The file is not in that format (file and line named, option ``labels``),
            or no query has a relevant document.
    """
    from ..evaluation.labels import load_labels

    try:
        pairs = load_labels(path)
    except CalibrationError as exc:
        error = TrainingError(str(exc), option="labels")  # the message names file and line
        error.path, error.line = exc.path, exc.line
        raise error from None
    position = {text: i for i, text in enumerate(passages)}
    by_query: dict[str, tuple[set[int], set[int]]] = {}
    for pair in pairs:
        if pair.document not in position:
            position[pair.document] = len(passages)
            passages.append(pair.document)
        good, bad = by_query.setdefault(pair.query, (set(), set()))
        (good if pair.label else bad).add(position[pair.document])
    queries: list[TrainingQuery] = []
    relevant: dict[int, set[int]] = {}
    negatives: dict[int, set[int]] = {}
    for query, (good, bad) in by_query.items():
        if good:
            first = min(good)
            relevant[len(queries)] = good
            negatives[len(queries)] = bad
            queries.append(TrainingQuery(query, first, passages[first], "labels"))
    if not queries:
        raise TrainingError("no query has a document labelled 1", path, option="labels")
    return queries, relevant, negatives


def build_training_data(
    passages: list[str],
    store: PassageStore,
    *,
    labelled: tuple[list[TrainingQuery], dict[int, set[int]], dict[int, set[int]]] | None,
    teacher: Any,
    options: TrainingOptions,
) -> TrainingData:
    """Queries (generated, or ``labelled`` ones from :func:`labelled_queries`), split into
    training and held-out ones, and the training rows: ``(query, document, label)`` with 1/0
    labels, or with the teacher's logits (``mse``), or ``(query, positive, negative, teacher
    margin)`` (``margin-mse``)."""
    seed, hard, easy = options.seed, options.hard_negatives, options.random_negatives
    if labelled is not None:
        queries, relevant_by, negatives_by = labelled
    else:
        queries = make_queries(passages, seed)
        relevant_by = {i: {q.passage} for i, q in enumerate(queries)}
        negatives_by = {}
    if not queries:
        raise TrainingError("no query could be made from the passages", option="corpus")
    numbered = {id(q): i for i, q in enumerate(queries)}
    train, held = split_held_out(queries, options.held_out, seed)
    rng = random.Random(seed)
    nearest = store.nearest([q.query for q in train], hard + 1)
    groups: list[tuple[str, str, list[str]]] = []
    for query, near in zip(train, nearest, strict=True):
        relevant = relevant_by[numbered[id(query)]]
        negatives = sorted(negatives_by.get(numbered[id(query)], set()))
        near = [i for i in near if i not in relevant]
        negatives += pick_negatives(
            query.passage, near, len(passages), hard=hard, easy=easy, rng=rng
        )
        negatives = [i for i in dict.fromkeys(negatives) if i not in relevant]
        groups.append((query.query, query.positive, [passages[i] for i in negatives]))
    columns = _rows(groups, teacher, options.resolved_loss(teacher is not None))
    return TrainingData(columns, train, held, [relevant_by[numbered[id(q)]] for q in held])


def _rows(
    groups: list[tuple[str, str, list[str]]], teacher: Any, loss: str
) -> dict[str, list[Any]]:
    if teacher is None:
        rows: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
        for query, positive, negatives in groups:
            for document, label in [(positive, 1.0)] + [(n, 0.0) for n in negatives]:
                rows["query"].append(query)
                rows["document"].append(document)
                rows["label"].append(label)
        return rows
    from tqdm.auto import tqdm

    docs = [[positive, *negatives] for _, positive, negatives in groups]
    scored = []
    for (query, _, _), documents in zip(
        groups, tqdm(docs, desc="teacher", unit="query", leave=False), strict=True
    ):
        logits = [0.0] * len(documents)
        for result in teacher.rerank(query, documents):
            logits[result.index] = result.raw_score
        scored.append(logits)
    if loss == "mse":
        rows = {"query": [], "document": [], "label": []}
        for (query, _, _), documents, logits in zip(groups, docs, scored, strict=True):
            rows["query"] += [query] * len(documents)
            rows["document"] += documents
            rows["label"] += logits
        return rows
    rows = {"query": [], "positive": [], "negative": [], "label": []}
    for (query, positive, negatives), logits in zip(groups, scored, strict=True):
        for negative, logit in zip(negatives, logits[1:], strict=True):
            rows["query"].append(query)
            rows["positive"].append(positive)
            rows["negative"].append(negative)
            rows["label"].append(logits[0] - logit)
    return rows
