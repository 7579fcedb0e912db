"""The demo corpus shipped with the package, and the ``rag-rerank demo`` run over it.

The corpus (``rag_rerank/data/demo_corpus.jsonl``) is 250-odd short passages written for this
demo on varied topics, with keyword traps: Apple the company next to apples the fruit, Python the
language next to pythons the snakes, Mercury the planet, the metal and the singer, river banks and
savings banks. The questions (``demo_questions.jsonl``) each name the passage that answers them,
so the demo can show where that passage sat in the vector store's order and where the reranker
put it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .rag import PipelineResults, RerankPipeline

__all__ = [
    "DEMO_COLLECTION",
    "DemoPassage",
    "DemoQuestion",
    "index_demo_corpus",
    "load_demo_corpus",
    "load_demo_questions",
    "print_comparison",
]

DEMO_COLLECTION = "rag_rerank_demo"
_TINY_MODEL_PARAMETERS = 5_000_000


@dataclass(frozen=True, slots=True)
class DemoPassage:
    """One passage of the demo corpus: ``id`` (e.g. ``"apple-fruit-03"``), ``topic``, ``text``."""

    id: str
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class DemoQuestion:
    """A demo question and the ids of the passages that answer it."""

    question: str
    relevant: tuple[str, ...]


def _read_jsonl(name: str) -> list[dict[str, Any]]:
    text = resources.files("rag_rerank").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_demo_corpus() -> list[DemoPassage]:
    """The demo passages, in file order."""
    return [
        DemoPassage(row["id"], row["topic"], row["text"])
        for row in _read_jsonl("demo_corpus.jsonl")
    ]


def load_demo_questions() -> list[DemoQuestion]:
    """The demo questions, each with the ids of its relevant passages."""
    return [
        DemoQuestion(row["question"], tuple(row["relevant"]))
        for row in _read_jsonl("demo_questions.jsonl")
    ]


def index_demo_corpus(pipeline: RerankPipeline) -> int:
    """Add the demo corpus to ``pipeline`` (ids are the passage ids); returns chunks written."""
    corpus = load_demo_corpus()
    summary = pipeline.add(
        [p.text for p in corpus],
        metadatas=[{"topic": p.topic} for p in corpus],
        ids=[p.id for p in corpus],
    )
    return summary.added


def parameter_count(model: Any) -> int:
    """Parameters of a torch module (for the demo's header)."""
    return sum(int(p.numel()) for p in model.parameters())


def tiny_model_note(parameters: int) -> str | None:
    """A warning when the model is far too small to rank well (e.g. a random test model)."""
    if parameters >= _TINY_MODEL_PARAMETERS:
        return None
    return (
        f"note: this model has only {parameters:,} parameters (a test model?); its ranking is "
        "only as good as its weights. Use a trained cross-encoder such as BAAI/bge-reranker-v2-m3 "
        "to see real reranking."
    )


def print_comparison(
    console: Any, results: PipelineResults, relevant: tuple[str, ...], top: int
) -> tuple[int | None, int | None]:
    """Print retrieval order and reranked order side by side for one question.

    Returns the best retrieval rank and the best rerank rank of a relevant passage (``None`` when
    it was not among the candidates).
    """
    from rich.table import Table
    from rich.text import Text

    def doc_id(result: Any) -> str:
        return str(result.metadata.get("doc_id", result.id))

    by_retrieval = sorted(results.candidates, key=lambda r: r.retrieval_rank)
    table = Table(
        title=f"[bold]{results.query}[/bold]",
        caption=f"{len(results.candidates)} candidates; ★ = the passage that answers the question",
        show_lines=True,
    )
    table.add_column("#", justify="right")
    table.add_column("vector store order (distance)", ratio=1)
    table.add_column("reranked order (score, from #)", ratio=1)
    for i in range(min(top, len(by_retrieval))):
        left, right = by_retrieval[i], results.candidates[i]
        left_cell = Text()
        left_cell.append(("★ " if doc_id(left) in relevant else "") + doc_id(left), style="bold")
        left_cell.append(f" ({left.distance:.3f})\n", style="dim")
        left_cell.append(_cut(left.document))
        color = "green" if results.threshold is None or right.score >= results.threshold else "red"
        right_cell = Text()
        right_cell.append(("★ " if doc_id(right) in relevant else "") + doc_id(right), style="bold")
        right_cell.append(f" ({right.score:.4f}", style=color)
        right_cell.append(f", from #{right.retrieval_rank})\n", style="dim")
        right_cell.append(_cut(right.document))
        table.add_row(str(i + 1), left_cell, right_cell)
    console.print(table)
    hits = [c for c in results.candidates if doc_id(c) in relevant]
    if not hits:
        console.print("  the answering passage was not among the candidates\n")
        return None, None
    before = min(c.retrieval_rank for c in hits)
    after = min(c.rank for c in hits)
    console.print(f"  answering passage: vector store #{before} -> reranked #{after}\n")
    return before, after


def _cut(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
