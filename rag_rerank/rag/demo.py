"""The demo corpus shipped with the package, for ``rag-rerank demo`` and the notebooks.

The corpus (``rag_rerank/data/demo_corpus.jsonl``) is 250-odd short passages written for this
demo on varied topics, with keyword traps: Apple the company next to apples the fruit, Python the
language next to pythons the snakes, Mercury the planet, the metal and the singer, river banks and
savings banks. The questions (``demo_questions.jsonl``) each name the passage that answers them,
so the demo can show where that passage sat in the vector store's order and where the reranker
put it. The comparison itself is drawn by :func:`rag_rerank.render.print_comparison`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .pipeline import RerankPipeline

__all__ = [
    "DEMO_COLLECTION",
    "DemoPassage",
    "DemoQuestion",
    "index_demo_corpus",
    "load_demo_corpus",
    "load_demo_questions",
    "offline_hint",
    "tiny_model_note",
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
    return [json.loads(line) for line in text.split("\n") if line.strip()]


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


def tiny_model_note(parameters: int) -> str | None:
    """A warning when the model is far too small to rank well (e.g. a random test model).

    Args:
        parameters: The model's parameter count (:attr:`Reranker.num_parameters
            <rag_rerank.Reranker.num_parameters>`); below 5 million earns a note.
    """
    if parameters >= _TINY_MODEL_PARAMETERS:
        return None
    return (
        f"note: this model has only {parameters:,} parameters (a test model?); its ranking is "
        "only as good as its weights. Use a trained cross-encoder such as BAAI/bge-reranker-v2-m3 "
        "to see real reranking."
    )


def offline_hint(model: str) -> str | None:
    """One line for a hub ``model`` that cannot be downloaded because the hub is out of reach:
    why, that ``rag-rerank demo --train`` makes a demo reranker offline, and how to point at a
    local copy instead. ``None`` for a
    local folder, or when the hub can be reached (then the loader's own error says more)."""
    from ..api.references import TINY_MODEL_HINT, local_copy_hint, looks_like_path
    from ..core.hub import hub_unreachable

    if looks_like_path(model):
        return None
    reason = hub_unreachable()
    if reason is None:
        return None
    return (
        f"{reason}, so {model} cannot be downloaded. `rag-rerank demo --train` builds a demo "
        "reranker from the offline embedding model and the demo corpus in a few minutes "
        f"(cached for the next run). {local_copy_hint(model)} A quick look with a random test "
        f"model: `{TINY_MODEL_HINT}`"
    )
