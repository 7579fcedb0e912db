"""Datasets in BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

>>> from rag_rerank.evaluation import load_beir
>>> dataset = load_beir("scifact", split="test")  # doctest: +SKIP
>>> len(dataset.corpus), len(dataset.queries)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetError

__all__ = ["BeirDataset", "BeirDocument", "DatasetError", "load_beir"]


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
