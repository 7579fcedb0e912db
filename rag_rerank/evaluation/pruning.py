"""What pruning removes and what it keeps, on a labelled set of multi-sentence documents.

The set (:func:`load_prune_set`) is built from the demo corpus: the passages of one topic, in
file order, are joined in groups of at most :data:`SENTENCES_PER_DOCUMENT` into one document
(each demo passage is one sentence), and each question of ``demo_prune_questions.jsonl`` names
the passage that answers it, which becomes its answer sentence: character offsets into its
document. The measures (:func:`measure_pruning`) are the share of the LLM's context tokens that
pruning removed and the share of questions whose answer sentence survived it. Pure functions: the
pruning itself is the caller's (:mod:`rag_rerank.cli.evaluate`, ``benchmarks/bench_prune.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "SENTENCES_PER_DOCUMENT",
    "PruneExample",
    "PruneMeasures",
    "answer_survives",
    "approximate_tokens",
    "build_prune_set",
    "load_prune_set",
    "measure_pruning",
]

SENTENCES_PER_DOCUMENT = 5
"""Most passages (sentences) of one topic joined into one document of the labelled set."""

Span = tuple[int, int]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class PruneExample:
    """A question, the document that holds its answer and the answer sentence in it.

    Attributes:
        question: The question text.
        document_id: ``"<first passage id>..<last passage id>"`` of the joined passages.
        document: The document: the passages joined by single spaces.
        answer: Character offsets ``(start, end)`` of the answer sentence in ``document``.
        answer_id: The demo passage that answers the question.
    """

    question: str
    document_id: str
    document: str
    answer: Span
    answer_id: str


@dataclass(frozen=True, slots=True)
class PruneMeasures:
    """Tokens before and after pruning, and answers kept, over a labelled set.

    Attributes:
        questions: Questions measured.
        tokens_before: Context tokens of the whole documents.
        tokens_after: Context tokens of what pruning kept.
        answers_kept: Questions whose answer sentence survived whole.
    """

    questions: int
    tokens_before: int
    tokens_after: int
    answers_kept: int

    @property
    def tokens_removed(self) -> float:
        """Share of the context tokens pruning removed, in [0, 1] (0.0 without tokens)."""
        if not self.tokens_before:
            return 0.0
        return 1.0 - self.tokens_after / self.tokens_before

    @property
    def answer_survival(self) -> float:
        """Share of questions whose answer sentence survived, in [0, 1] (NaN without questions)."""
        return self.answers_kept / self.questions if self.questions else math.nan


def approximate_tokens(text: str) -> int:
    """A fast approximate LLM token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def build_prune_set(
    passages: Sequence[dict[str, Any]],
    questions: Sequence[dict[str, Any]],
    sentences_per_document: int = SENTENCES_PER_DOCUMENT,
) -> list[PruneExample]:
    """Join the passages of each topic into documents and mark each question's answer in its own.

    Args:
        passages: Rows ``{"id", "topic", "text"}`` (the demo corpus's), one sentence each; the
            passages of a topic are split into as few groups of at most
            ``sentences_per_document`` as can be, of near-equal size, in order.
        questions: Rows ``{"question", "answer"}``; ``answer`` is a passage id.
        sentences_per_document: Most passages per document (default 5).

    Returns:
        One example per question, in question order.

    Raises:
        ValueError: A question names a passage that is not there.
    """
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for row in passages:
        by_topic.setdefault(row["topic"], []).append(row)
    where: dict[str, tuple[str, str, Span]] = {}
    for rows in by_topic.values():
        groups = math.ceil(len(rows) / sentences_per_document)
        size, extra = divmod(len(rows), groups)
        start = 0
        for group in range(groups):
            members = rows[start : start + size + (group < extra)]
            start += len(members)
            document_id = f"{members[0]['id']}..{members[-1]['id']}"
            document = " ".join(row["text"] for row in members)
            offset = 0
            for row in members:
                where[row["id"]] = (document_id, document, (offset, offset + len(row["text"])))
                offset += len(row["text"]) + 1
    examples = []
    for row in questions:
        if row["answer"] not in where:
            raise ValueError(f"question {row['question']!r}: no passage {row['answer']!r}")
        document_id, document, answer = where[row["answer"]]
        examples.append(PruneExample(row["question"], document_id, document, answer, row["answer"]))
    return examples


def load_prune_set() -> list[PruneExample]:
    """The labelled set shipped with the package: the demo corpus joined by topic
    (:func:`build_prune_set`) and ``demo_prune_questions.jsonl`` (62 questions)."""
    return build_prune_set(_read("demo_corpus.jsonl"), _read("demo_prune_questions.jsonl"))


def answer_survives(text: str, answer: Span, kept: Sequence[Span]) -> bool:
    """Whether every non-space character of ``text[answer[0]:answer[1]]`` lies inside one of the
    ``kept`` spans (character offsets into ``text``, end exclusive)."""
    start, end = answer
    covered = [text[i].isspace() for i in range(start, end)]
    for kept_start, kept_end in kept:
        for i in range(max(start, kept_start), min(end, kept_end)):
            covered[i - start] = True
    return all(covered)


def measure_pruning(
    examples: Sequence[PruneExample],
    kept: Sequence[Sequence[Span] | None],
    count_tokens: Callable[[str], int] = approximate_tokens,
) -> PruneMeasures:
    """Tokens removed and answers kept when pruning kept ``kept[i]`` of ``examples[i].document``.

    Args:
        examples: The labelled set (:func:`load_prune_set`).
        kept: Per example, the kept spans (character offsets into its document, in order), or
            ``None`` for a document left whole (pruning off).
        count_tokens: Tokens of a text (default :func:`approximate_tokens`); the pruned text's
            count is the sum over its kept spans.

    Raises:
        ValueError: ``kept`` is not one entry per example.
    """
    if len(kept) != len(examples):
        raise ValueError(f"kept has {len(kept)} entries for {len(examples)} examples")
    before = after = answers = 0
    for example, spans in zip(examples, kept, strict=True):
        text = example.document
        whole = count_tokens(text)
        before += whole
        if spans is None:
            after += whole
            answers += 1
            continue
        after += sum(count_tokens(text[start:end]) for start, end in spans)
        answers += answer_survives(text, example.answer, spans)
    return PruneMeasures(len(examples), before, after, answers)


def _read(name: str) -> list[dict[str, Any]]:
    text = resources.files("rag_rerank").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
