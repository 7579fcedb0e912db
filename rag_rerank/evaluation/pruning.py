"""What pruning removes and what it keeps, on a labelled set of multi-sentence documents.

The set (:func:`load_prune_set`) is built from the demo corpus: the passages of one topic, in
file order, are joined in groups of at most :data:`SENTENCES_PER_DOCUMENT` into one document
(each demo passage is one sentence), and each question of ``demo_prune_questions.jsonl`` names
the passage that answers it, which becomes its answer sentence: character offsets into its
document. The measures (:func:`measure_pruning`, pure) are the share of the LLM's context tokens
that pruning removed and the share of questions whose answer sentence survived it.
:func:`evaluate_pruning` runs a reranker over the set with pruning off and with each method
(``rag-rerank eval --prune-set``, ``benchmarks/bench_prune.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from ..api.context import approximate_tokens
from ..api.pruning import PruneMethod, PruneOptions

__all__ = [
    "SENTENCES_PER_DOCUMENT",
    "PruneExample",
    "PruneMeasures",
    "PruneRun",
    "answer_survives",
    "build_prune_set",
    "evaluate_pruning",
    "load_prune_set",
    "measure_pruning",
    "prune_table",
]

SENTENCES_PER_DOCUMENT = 5
"""Most passages (sentences) of one topic joined into one document of the labelled set."""

Span = tuple[int, int]


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
        count_tokens: Tokens of a text (default :func:`~rag_rerank.api.context.approximate_tokens`,
            the token budget's count); the pruned text's
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


@dataclass(frozen=True, slots=True)
class PruneRun:
    """One pass of a reranker over the labelled set.

    Attributes:
        method: ``"off"`` (no pruning), ``"sentences"`` or ``"head"`` (see
            :attr:`PruneOptions.method <rag_rerank.PruneOptions.method>`).
        measures: Tokens removed and answers kept.
        seconds: Wall time of reranking (and pruning) every question's document, the best of
            the repeats.
    """

    method: str
    measures: PruneMeasures
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the method, the measures and their shares, the seconds."""
        return {
            "method": self.method,
            **dataclasses.asdict(self.measures),
            "tokens_removed": self.measures.tokens_removed,
            "answer_survival": self.measures.answer_survival,
            "seconds": self.seconds,
        }


def evaluate_pruning(
    reranker: Any,
    examples: Sequence[PruneExample],
    methods: Sequence[str] = ("off", "sentences", "head"),
    *,
    options: PruneOptions | None = None,
    repeats: int = 3,
    count_tokens: Callable[[str], int] = approximate_tokens,
) -> list[PruneRun]:
    """Rerank each question's document with pruning off and with each method, and measure.

    All questions go in one :meth:`~rag_rerank.Reranker.rerank_many` call per run (their
    documents share the engine's batches), through a view of ``reranker`` without a score
    cache, so every run pays for its model passes.

    Args:
        reranker: A :class:`~rag_rerank.Reranker` (``"head"`` needs a pruning head).
        examples: The labelled set (:func:`load_prune_set`).
        methods: ``"off"``, ``"sentences"``, ``"head"``, in the order to report them.
        options: Pruning options besides the method (default :class:`PruneOptions`'s).
        repeats: Runs per method, the methods taking turns; ``seconds`` is the fastest
            (default 3).
        count_tokens: Tokens of a text (default: the token budget's approximate count).
    """
    view = reranker.with_options(cache=None)
    queries = [e.question for e in examples]
    documents = [[e.document] for e in examples]
    base = options or PruneOptions()
    view.rerank_many(queries, documents)  # untimed: CPU bf16 kernels are built per new shape
    best = dict.fromkeys(methods, math.inf)
    kept: dict[str, list[Any]] = {}
    for _ in range(repeats):  # methods take turns, so a busy moment of the machine is shared
        for method in methods:
            prune = None
            if method != "off":
                prune = dataclasses.replace(base, method=cast(PruneMethod, method))
            started = time.perf_counter()
            ranked = view.rerank_many(queries, documents, prune=prune)
            best[method] = min(best[method], time.perf_counter() - started)
            kept[method] = [results[0].kept_spans for results in ranked]
    runs = [
        PruneRun(method, measure_pruning(examples, kept[method], count_tokens), best[method])
        for method in methods
    ]
    return runs


def prune_table(runs: Sequence[PruneRun]) -> str:
    """The runs as a text table: tokens removed, answers kept, seconds and the time each method
    adds to the run without pruning (``off``, when there is one)."""
    off = next((run.seconds for run in runs if run.method == "off"), None)
    lines = [
        f"{'method':<10} {'tokens removed':>14} {'answers kept':>12} {'seconds':>8} {'added':>7}"
    ]
    for run in runs:
        added = "-" if off is None or run.method == "off" else f"{run.seconds / off - 1:+.0%}"
        m = run.measures
        lines.append(
            f"{run.method:<10} {m.tokens_removed:>14.1%} {m.answer_survival:>12.1%} "
            f"{run.seconds:>8.3f} {added:>7}"
        )
    return "\n".join(lines)


def _read(name: str) -> list[dict[str, Any]]:
    text = resources.files("rag_rerank").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
